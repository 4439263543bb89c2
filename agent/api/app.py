"""The HTTP API (aiohttp): the routes under /v1 and their thin handlers.

- A handler parses (agent.api.body: JSON, nesting-limited, validated against the OpenAPI
  document), calls the service layer (which checks what only XAPI can tell: names taken,
  subnets overlapping, networks in use, and builds the views), and answers.
- agent.api.middleware authenticates (scope per route from the OpenAPI document) and maps
  errors to HTTP: one error body everywhere, {"error": {"code", "message", "details"}}.
- XAPI calls block: they run in a thread pool, each thread with its own session
  (agent.api.xapi), each call with a timeout.
"""
import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

import agent
from agent.api import body as bodymod
from agent.api import middleware, openapi, rendered
from agent.api.middleware import Fail
from agent.service import doctor
from agent.service.errors import InvalidInput, NotFound, XapiUnavailable

log = logging.getLogger(__name__)


class State(object):
    """What the API reads from the daemon around it; this default knows nothing (the
    daemon passes its own, tests pass theirs)."""

    def gateways(self):
        return []

    def published_gateways(self):
        """The gateways' statuses as a tuple that is never changed: the same object as
        long as they are the same (what the API renders is kept per object; see
        agent.api.rendered). This default takes a new one each time."""
        return tuple(self.gateways())

    def links(self):
        """The daemon's link statuses (dicts: network, name, bridge, parent, parent_name,
        tag, state, reason, since)."""
        return []

    def xapi(self):
        return {"configured": False, "connected": False, "reason": None}

    def metrics(self):
        return []

    def problems(self):
        """What is wrong with the daemon (sentences; /v1/health is degraded if any)."""
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
        # made once per published tuple of statuses (agent.api.rendered)
        self._gateways_body = rendered.Memo(lambda gws: rendered.render(
            [_gateway_view(g) for g in gws]))
        self._state_counts = rendered.Memo(_state_counts)
        self._health = (None, None)  # (the last health answer's data, its Body)

    # ---- the application ---------------------------------------------------------------
    def app(self):
        app = web.Application(middlewares=[middleware.errors(self.requests),
                                           middleware.auth(self.tokens, self.insecure)],
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
        r.add_put("/v1/networks/{key}/link", self.set_link)
        r.add_delete("/v1/networks/{key}/link", self.remove_link)
        r.add_get("/v1/links", self.links)
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
            raise Fail(408, "timeout", "the request body did not arrive within %d s"
                       % self.body_timeout)
        return bodymod.parse(raw, schema_name)

    # ---- handlers: the daemon ----------------------------------------------------------
    async def health(self, request):
        xapi = dict(self.state.xapi())
        stalled = self.sessions.stalled() if xapi["configured"] else None
        xapi["stalled"] = stalled is not None
        if stalled:
            xapi["reason"] = stalled
        counts = self._state_counts(self.state.published_gateways())
        problems = list(self.state.problems())
        bad = (xapi["configured"] and not (xapi["connected"] and not stalled)) or \
            counts.get("error") or problems
        data = {"status": "degraded" if bad else "ok", "version": agent.__version__,
                "xapi": xapi, "gateways": counts, "problems": problems}
        if data != self._health[0]:  # rendered again only when it says something else
            self._health = (data, rendered.render(data))
        return rendered.answer(request, self._health[1])

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
        return rendered.answer(request, self._gateways_body(self.state.published_gateways()))

    async def gateway(self, request):
        name = request.match_info["name"]
        for gw in self.state.published_gateways():
            if name in (gw["name"], gw["bridge"]):
                return _json(_gateway_view(gw))
        raise NotFound("no gateway named %s (or on bridge %s)" % (name, name), gateway=name)

    async def links(self, request):
        return _json([dict(ln) for ln in self.state.links()])

    # ---- handlers: networks ------------------------------------------------------------
    def _live(self, views_):
        """Network views with the daemon's state of their link where the daemon has seen
        that very link (same parent and tag); otherwise the records' verdict stays."""
        live = {ln["network"]: ln for ln in self.state.links()}
        for view in views_:
            link, seen = view.get("link"), live.get(view["uuid"])
            if link and seen and (seen["parent"], seen["tag"]) == (link["parent"],
                                                                   link["tag"]):
                link["state"], link["reason"] = seen["state"], seen["reason"]
        return views_

    async def list_networks(self, request):
        return _json(self._live(await self._xapi(_network_views)))

    async def get_network(self, request):
        key = request.match_info["key"]
        return _json(self._live([await self._xapi(lambda x: _networks(x).view(key))])[0])

    async def create_network(self, request):
        body = await self._body(request, "NetworkCreate")

        def create(x):
            networks = _networks(x)
            return networks.view(networks.create(
                body["name"], gateway=body.get("gateway"), vlan=body.get("vlan"),
                description=body.get("description", ""), link=body.get("link"),
                span=body.get("span", "host"), vni=body.get("vni"),
                transport=body.get("transport"))["uuid"])
        view = await self._xapi(create)
        log.info("network %s created (%s)", view["name"], view["uuid"])
        return _json(view, status=201)

    async def set_link(self, request):
        key = request.match_info["key"]
        body = await self._body(request, "LinkSpec")
        return _json(self._live([await self._xapi(lambda x: self._set_link(x, key, body))])[0])

    async def remove_link(self, request):
        key = request.match_info["key"]
        return _json(await self._xapi(lambda x: self._set_link(x, key, None)))

    @staticmethod
    def _set_link(x, key, link):
        networks = _networks(x)
        view = networks.view(networks.set_link(key, link)["uuid"])
        log.info("network %s: link %s", view["name"], "dropped" if link is None else
                 "VLAN %s of %s" % (link["tag"], link["parent"]))
        return view

    async def delete_network(self, request):
        key = request.match_info["key"]
        await self._xapi(lambda x: _networks(x).delete(key))
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
        networks = _networks(x)
        return networks.view(networks.set_gateway(key, gateway)["uuid"])

    # ---- handlers: VMs -----------------------------------------------------------------
    async def list_vms(self, request):
        return _json(await self._xapi(lambda x: _vms(x).list()))

    async def get_vm(self, request):
        key = request.match_info["key"]
        return _json(await self._xapi(lambda x: _vms(x).get(key)))

    async def create_vm(self, request):
        body = await self._body(request, "VmCreate")
        if _wants_stream(request):
            return await self._stream(request, lambda x, progress: _vms(x).create(
                progress=progress, **body), created=True)
        view = await self._xapi(lambda x: _vms(x).create(**body))
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
        except Exception as exc:  # noqa: B902 - never a traceback to the client
            status, error = middleware.failure(request, exc)
            final = {"status": status, "error": error}
        await response.write(_line(final))
        await response.write_eof()
        return response

    async def delete_vm(self, request):
        key = request.match_info["key"]
        force = _query_bool(request, "force")
        result = await self._xapi(lambda x: _vms(x).destroy(key, force=force))
        log.info("VM %s destroyed with %d disk(s)", key, len(result["disks_destroyed"]))
        return _json(result)

    async def start_vm(self, request):
        key = request.match_info["key"]
        return _json(await self._xapi(lambda x: _vms(x).start(key)))

    async def shutdown_vm(self, request):
        key = request.match_info["key"]
        body = await self._body(request, "Shutdown") if request.body_exists else {}
        return _json(await self._xapi(lambda x: _vms(x).shutdown(key, force=body.get(
            "force", False))))

    async def attach_himn(self, request):
        key = request.match_info["key"]
        return _json(await self._xapi(lambda x: _vms(x).attach_himn(key)))


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
        from agent.service import steps

        def claimed(x, progress):  # one apply or destroy of a topology at a time
            with steps.pool(x).claim("topology", topology.name, lambda: None):
                return operation(x, progress)
        if _wants_stream(request):
            return await self._stream(request, claimed)
        return _json(await self._xapi(lambda x: claimed(x, None)))

    async def diagram(self, request):
        from agent.topology import diagram
        fmt = request.query.get("format", "mermaid")
        topology = request.query.get("topology")
        text = await self._xapi(lambda x: diagram.render(x, fmt, topology))
        return web.Response(text=text, content_type="text/plain", charset="utf-8")


# ---- responses ------------------------------------------------------------------------
# The service layer of networks and VMs (XenAPI, its XML-RPC, xml.dom, the views: ~1.5 MB
# resident) is imported on the first request that needs it: a daemon that only keeps its
# gateways (no XAPI, or an API never asked about networks) never loads it.
def _networks(x):
    from agent.service.networks import Networks
    return Networks(x)


def _vms(x):
    from agent.service.vms import Vms
    return Vms(x)


def _network_views(x):
    from agent.service import views
    return views.networks(x)


def _gateway_view(status):
    return {k: v for k, v in status.items() if k != "since_monotonic"}


def _state_counts(statuses):
    """{state: how many gateways are in it}."""
    counts = {}
    for gw in statuses:
        counts[gw["state"]] = counts.get(gw["state"], 0) + 1
    return counts


def _wants_stream(request):
    return "application/x-ndjson" in request.headers.get("Accept", "")


def _line(data):
    return (json.dumps(data) + "\n").encode("utf-8")


def _json(data, status=200):
    return web.json_response(data, status=status, dumps=rendered.dumps)


def _query_bool(request, name):
    value = request.query.get(name, "false")
    if value not in ("true", "false"):
        raise InvalidInput("%s must be true or false" % name, field=name)
    return value == "true"

