"""The HTTP API (aiohttp): networks, VMs, gateways, health, doctor and metrics under /v1.

- Every request body and query is validated against the OpenAPI document
  (agent/api/openapi.py) before a handler runs; the service layer then checks what only
  XAPI can tell (names taken, subnets overlapping, networks in use).
- One error body everywhere: {"error": {"code", "message", "details"}}; an unexpected
  exception is logged with its traceback and answered with a plain 500 body.
- Transports: on the Unix socket the peer must be root (SO_PEERCRED) and needs no token;
  on TCP a bearer token is required (scope read for GET, admin for changes) unless the
  configuration says insecure in so many words.
- XAPI calls block: they run in a thread pool, each thread with its own session. Two
  creations of one name at once give one 201 and one 409.
"""
import asyncio
import json
import logging
import socket
import struct
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

import agent
from agent.api import openapi
from agent.api import tokens as tokensmod
from agent.api.xapi import XapiUnavailable
from agent.core import desired, model
from agent.errors import AgentError
from agent.service import doctor
from agent.service.errors import Conflict, InvalidInput, NotFound, XapiCallFailed
from agent.service.networks import Networks
from agent.service.vms import Vms

log = logging.getLogger(__name__)

STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409, XapiCallFailed: 502,
          XapiUnavailable: 503}
KEY_TRANSPORT = "xgw_transport"


class State(object):
    """What the API reads from the daemon around it; this default knows nothing (the
    daemon passes its own, tests pass theirs)."""

    def gateways(self):
        return []

    def xapi(self):
        return {"configured": False, "connected": False, "reason": None}

    def metrics(self):
        return []

    def kernel_checks(self):
        return []


class Api(object):
    def __init__(self, sessions, tokens=(), state=None, insecure=False, max_body=1 << 20,
                 body_timeout=30.0, workers=4):
        self.sessions = sessions
        self.tokens = list(tokens)
        self.state = state or State()
        self.insecure = insecure
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="api")
        self.requests = {}      # HTTP status -> count, for /metrics
        self._busy = set()      # ("network"|"vm", name) being created right now

    # ---- the application ---------------------------------------------------------------
    def app(self):
        app = web.Application(middlewares=[self._errors, self._auth],
                              client_max_size=self.max_body)
        r = app.router
        r.add_get("/v1/health", self.health)
        r.add_get("/v1/openapi.json", self.openapi)
        r.add_get("/metrics", self.metrics)
        r.add_get("/v1/doctor", self.doctor)
        r.add_get("/v1/gateways", self.gateways)
        r.add_get("/v1/gateways/{name}", self.gateway)
        r.add_get("/v1/networks", self.list_networks)
        r.add_post("/v1/networks", self.create_network)
        r.add_get("/v1/networks/{key}", self.get_network)
        r.add_delete("/v1/networks/{key}", self.delete_network)
        r.add_put("/v1/networks/{key}/gateway", self.set_gateway)
        r.add_delete("/v1/networks/{key}/gateway", self.remove_gateway)
        r.add_get("/v1/vms", self.list_vms)
        r.add_post("/v1/vms", self.create_vm)
        r.add_get("/v1/vms/{key}", self.get_vm)
        r.add_delete("/v1/vms/{key}", self.delete_vm)
        r.add_post("/v1/vms/{key}/start", self.start_vm)
        r.add_post("/v1/vms/{key}/shutdown", self.shutdown_vm)
        r.add_post("/v1/vms/{key}/himn", self.attach_himn)
        r.add_post("/v1/topology/plan", self.topology_plan)
        r.add_post("/v1/topology/apply", self.topology_apply)
        r.add_post("/v1/topology/destroy", self.topology_destroy)
        r.add_get("/v1/diagram", self.diagram)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app):
        self.executor.shutdown(wait=False)

    # ---- middlewares -------------------------------------------------------------------
    @web.middleware
    async def _errors(self, request, handler):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = _http_error(exc)
        except _Fail as exc:
            response = _error(exc.status, exc.code, exc.message)
        except AgentError as exc:
            response = _error(STATUS.get(type(exc), 400), exc.code, str(exc), exc.details)
        except Exception:  # noqa: B902 - never a traceback to the client
            log.exception("%s %s failed", request.method, request.path)
            response = _error(500, "internal_error", "internal error; the daemon's log "
                              "(journalctl -u xapi-gateway) has the details")
        self.requests[response.status] = self.requests.get(response.status, 0) + 1
        return response

    @web.middleware
    async def _auth(self, request, handler):
        scope = _scope(request)
        if scope is None:
            return await handler(request)
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None and sock.family == socket.AF_UNIX:
            uid = _peer_uid(sock)
            if uid not in (0, None):
                return _error(403, "forbidden", "the API socket is for root only",
                              {"uid": uid})
            return await handler(request)
        if self.insecure:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        kind, _, presented = header.partition(" ")
        token = tokensmod.match(self.tokens, presented.strip()) \
            if kind.lower() == "bearer" and presented.strip() else None
        if token is None:
            return _error(401, "unauthorized", "a valid bearer token is required: "
                          "Authorization: Bearer <token> (tokens are in the daemon's token "
                          "file)", headers={"WWW-Authenticate": "Bearer"})
        if not tokensmod.allows(token, scope):
            log.warning("token %s (scope %s) refused for %s %s", token.label, token.scope,
                        request.method, request.path)
            return _error(403, "forbidden", "this token is read-only; %s %s needs an admin "
                          "token" % (request.method, request.path), {"scope": token.scope})
        return await handler(request)

    # ---- helpers -----------------------------------------------------------------------
    async def _xapi(self, operation):
        loop = asyncio.get_event_loop()
        return await loop.run_in_executor(self.executor, self.sessions.run, operation)

    async def _body(self, request, schema_name):
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="send JSON with Content-Type: "
                                                    "application/json")
        try:
            raw = await asyncio.wait_for(request.read(), self.body_timeout)
        except asyncio.TimeoutError:
            raise _Fail(408, "timeout", "the request body did not arrive within %d s"
                        % self.body_timeout)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput("the body is not valid JSON: %s" % exc, field="body")
        try:
            openapi.validate(openapi.SCHEMAS[schema_name], body)
        except openapi.Invalid as exc:
            raise InvalidInput(str(exc), field=exc.field)
        return body

    def _claim(self, kind, name):
        if (kind, name) in self._busy:
            raise Conflict("a %s named %s is being created right now" % (kind, name),
                           field="name", name=name)
        self._busy.add((kind, name))

    # ---- handlers: the daemon ----------------------------------------------------------
    async def health(self, request):
        xapi = self.state.xapi()
        counts = {}
        for gw in self.state.gateways():
            counts[gw["state"]] = counts.get(gw["state"], 0) + 1
        bad = (xapi["configured"] and not xapi["connected"]) or counts.get("error")
        return _json({"status": "degraded" if bad else "ok", "version": agent.__version__,
                      "xapi": xapi, "gateways": counts})

    async def openapi(self, request):
        return _json(openapi.document())

    async def metrics(self, request):
        lines = list(self.state.metrics())
        lines.append("# HELP xgw_api_requests_total API requests answered, by HTTP status.")
        lines.append("# TYPE xgw_api_requests_total counter")
        for status, count in sorted(self.requests.items()):
            lines.append('xgw_api_requests_total{status="%d"} %d' % (status, count))
        return web.Response(text="\n".join(lines) + "\n",
                            content_type="text/plain", charset="utf-8")

    async def doctor(self, request):
        try:
            checks = await self._xapi(doctor.xapi_checks)
        except XapiUnavailable as exc:
            checks = [doctor.Check("xapi", doctor.FAIL, str(exc))]
        loop = asyncio.get_event_loop()
        checks = list(checks) + list(await loop.run_in_executor(self.executor,
                                                                self.state.kernel_checks))
        return _json({"ok": not any(c.status == doctor.FAIL for c in checks),
                      "checks": [dict(c._asdict()) for c in checks]})

    async def gateways(self, request):
        return _json([_gateway_view(g) for g in self.state.gateways()])

    async def gateway(self, request):
        name = request.match_info["name"]
        for gw in self.state.gateways():
            if name in (gw["name"], gw["bridge"]):
                return _json(_gateway_view(gw))
        raise NotFound("no gateway named %s (or on bridge %s)" % (name, name), gateway=name)

    # ---- handlers: networks ------------------------------------------------------------
    async def list_networks(self, request):
        return _json(await self._xapi(lambda x: [
            network_view(x, ref, rec) for ref, rec in sorted(
                x.network.get_all_records().items(), key=lambda i: i[1]["name_label"])]))

    async def get_network(self, request):
        key = request.match_info["key"]
        return _json(await self._xapi(lambda x: network_view(x, *Networks(x).find(key))))

    async def create_network(self, request):
        body = await self._body(request, "NetworkCreate")
        self._claim("network", body["name"])
        try:
            def create(x):
                rec = Networks(x).create(body["name"], gateway=body.get("gateway"),
                                         vlan=body.get("vlan"),
                                         description=body.get("description", ""))
                return network_view(x, x.network.get_by_uuid(rec["uuid"]), rec)
            view = await self._xapi(create)
        finally:
            self._busy.discard(("network", body["name"]))
        log.info("network %s created (%s)", view["name"], view["uuid"])
        return _json(view, status=201)

    async def delete_network(self, request):
        key = request.match_info["key"]
        await self._xapi(lambda x: Networks(x).delete(key))
        log.info("network %s deleted", key)
        return web.Response(status=204)

    async def set_gateway(self, request):
        key = request.match_info["key"]
        body = await self._body(request, "GatewaySpec")
        return _json(await self._xapi(lambda x: self._set_gateway(x, key, body)))

    async def remove_gateway(self, request):
        key = request.match_info["key"]
        return _json(await self._xapi(lambda x: self._set_gateway(x, key, None)))

    @staticmethod
    def _set_gateway(x, key, gateway):
        rec = Networks(x).set_gateway(key, gateway)
        return network_view(x, x.network.get_by_uuid(rec["uuid"]), rec)

    # ---- handlers: VMs -----------------------------------------------------------------
    async def list_vms(self, request):
        return _json(await self._xapi(lambda x: Vms(x).list()))

    async def get_vm(self, request):
        key = request.match_info["key"]
        return _json(await self._xapi(lambda x: Vms(x).get(key)))

    async def create_vm(self, request):
        body = await self._body(request, "VmCreate")
        self._claim("vm", body["name"])
        try:
            if _wants_stream(request):
                return await self._stream(request, lambda x, progress: Vms(x).create(
                    progress=progress, **body), created=True)
            view = await self._xapi(lambda x: Vms(x).create(**body))
        finally:
            self._busy.discard(("vm", body["name"]))
        log.info("VM %s created (%s)", view["name"], view["uuid"])
        return _json(view, status=201)

    async def _stream(self, request, operation, created=False):
        """Run ``operation(xenapi, progress)`` and answer with NDJSON: one
        {"progress": sentence} line per step as it happens, then one last line with the
        status the plain request would have had: {"status": 201, "result": ...} or
        {"status": 409, "error": {...}}."""
        loop = asyncio.get_event_loop()
        queue = asyncio.Queue()
        future = loop.run_in_executor(self.executor, self.sessions.run, lambda x: operation(
            x, lambda text: loop.call_soon_threadsafe(queue.put_nowait, text)))
        response = web.StreamResponse(status=200, headers={
            "Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait([getter, future],
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            await response.write(_line({"progress": getter.result()}))
        while not queue.empty():
            await response.write(_line({"progress": queue.get_nowait()}))
        try:
            final = {"status": 201 if created else 200, "result": future.result()}
        except AgentError as exc:
            final = {"status": STATUS.get(type(exc), 400), "error": exc.to_dict()}
        except Exception:  # noqa: B902 - never a traceback to the client
            log.exception("%s %s failed", request.method, request.path)
            final = {"status": 500, "error": {"code": "internal_error", "message":
                                              "internal error; see the daemon's log",
                                              "details": {}}}
        await response.write(_line(final))
        await response.write_eof()
        return response

    async def delete_vm(self, request):
        key = request.match_info["key"]
        force = _query_bool(request, "force")
        result = await self._xapi(lambda x: Vms(x).destroy(key, force=force))
        log.info("VM %s destroyed with %d disk(s)", key, len(result["disks_destroyed"]))
        return _json(result)

    async def start_vm(self, request):
        key = request.match_info["key"]
        return _json(await self._xapi(lambda x: Vms(x).start(key)))

    async def shutdown_vm(self, request):
        key = request.match_info["key"]
        body = await self._body(request, "Shutdown") if request.body_exists else {}
        return _json(await self._xapi(lambda x: Vms(x).shutdown(key, force=body.get(
            "force", False))))

    async def attach_himn(self, request):
        key = request.match_info["key"]
        return _json(await self._xapi(lambda x: Vms(x).attach_himn(key)))


    # ---- handlers: topologies ----------------------------------------------------------
    async def _topology(self, request):
        """The request's topology document, parsed and validated by agent.topology.model
        (the document's own, stricter schema: field paths like vms[2].nics[1])."""
        from agent.topology import model as topomodel
        body = await self._body(request, "Topology")
        return topomodel.parse(body)

    async def topology_plan(self, request):
        from agent.topology import plan as planner
        topology = await self._topology(request)
        prune = _query_bool(request, "prune")
        actions = await self._xapi(lambda x: planner.plan(x, topology, prune=prune))
        return _json({"topology": topology.name, "summary": planner.summary(actions),
                      "changes": any(a.changes() for a in actions),
                      "actions": [a.to_dict() for a in actions]})

    async def topology_apply(self, request):
        from agent.topology import apply as applier
        topology = await self._topology(request)
        prune = _query_bool(request, "prune")
        sr_check = request.query.get("sr_check", "warn")
        if sr_check not in ("warn", "refuse", "off"):
            raise InvalidInput("sr_check must be warn, refuse or off", field="sr_check")
        return await self._run_topology(request, topology, lambda x, progress: applier.apply(
            x, topology, progress=progress, prune=prune, sr_check=sr_check))

    async def topology_destroy(self, request):
        from agent.topology import apply as applier
        topology = await self._topology(request)
        return await self._run_topology(request, topology, lambda x, progress: (
            applier.destroy(x, topology, progress=progress)))

    async def _run_topology(self, request, topology, operation):
        self._claim("topology", topology.name)
        try:
            if _wants_stream(request):
                return await self._stream(request, operation)
            return _json(await self._xapi(lambda x: operation(x, None)))
        finally:
            self._busy.discard(("topology", topology.name))

    async def diagram(self, request):
        from agent.topology import diagram
        fmt = request.query.get("format", "mermaid")
        topology = request.query.get("topology")
        text = await self._xapi(lambda x: diagram.render(x, fmt, topology))
        return web.Response(text=text, content_type="text/plain", charset="utf-8")


# ---- views -----------------------------------------------------------------------------
def network_view(x, ref, rec):
    config = rec["other_config"]
    gateway = desired.gateway_view(rec)
    vlan = None
    for pif in rec["PIFs"]:
        tag = int(x.PIF.get_VLAN(pif))
        if tag >= 0:
            vlan = tag
    vms = sorted(set(x.VM.get_name_label(x.VIF.get_VM(vif)) for vif in rec["VIFs"]))
    return {"uuid": rec["uuid"], "name": rec["name_label"],
            "description": rec["name_description"], "bridge": rec["bridge"], "vlan": vlan,
            "gateway": gateway,
            "himn": config.get("is_host_internal_management_network") == "true",
            "vms": vms, "topology": config.get(desired.TOPOLOGY_MARK)}


def _gateway_view(status):
    return {k: v for k, v in status.items() if k != "since_monotonic"}


# ---- responses -------------------------------------------------------------------------
class _Fail(Exception):
    """An error answered with the API's error body from inside a handler."""

    def __init__(self, status, code, message):
        super(_Fail, self).__init__(message)
        self.status, self.code, self.message = status, code, message


def _wants_stream(request):
    return "application/x-ndjson" in request.headers.get("Accept", "")


def _line(data):
    return (json.dumps(data) + "\n").encode("utf-8")


def _json(data, status=200):
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, indent=1))


def _error(status, code, message, details=None, headers=None):
    return web.json_response({"error": {"code": code, "message": message,
                                        "details": details or {}}},
                             status=status, headers=headers)


_HTTP_CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "timeout", 409: "conflict",
               413: "payload_too_large", 415: "unsupported_media_type"}


def _http_error(exc):
    status = exc.status_code
    if status < 400:
        return exc
    if status == 404:
        message = "no such route; the API is described at /v1/openapi.json"
    elif status == 405:
        message = "this route does not take that method"
    elif status == 413:
        message = "the body is larger than the limit of this API"
    else:
        message = exc.text or exc.reason
    return _error(status, _HTTP_CODES.get(status, "internal_error"), message)


def _scope(request):
    """The scope a request needs: None for health and the document, read for GETs,
    admin for changes."""
    if request.path in ("/v1/health", "/v1/openapi.json"):
        return None
    return "read" if request.method in ("GET", "HEAD") else "admin"


def _peer_uid(sock):
    try:
        data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", data)[1]
    except (OSError, AttributeError):
        return None


def _query_bool(request, name):
    value = request.query.get(name, "false")
    if value not in ("true", "false"):
        raise InvalidInput("%s must be true or false" % name, field=name)
    return value == "true"

