"""The API's two middlewares, and the one error body they answer with.

- ``errors``: maps what a handler raised to HTTP. An AgentError takes the status of its
  class, or of its nearest parent in ``STATUS`` (a LockTimeout is a TransientKernelError
  is a KernelError...); anything else is a bug: logged with its traceback and answered
  with the one 500 body, ``internal_error()``.
- ``auth``: on the Unix socket the peer must be root (SO_PEERCRED) and needs no token; on
  TCP a bearer token with the scope the OpenAPI document names for the route (``x-scope``)
  is required, unless the configuration says insecure in so many words.
"""
import logging
import socket
import struct

from aiohttp import web

from agent.api import openapi
from agent.api import tokens as tokensmod
from agent.errors import AgentError, ConfigError, GatewayInvalid, KernelError, StateError
from agent.errors import TransientKernelError
from agent.service.errors import Busy, Conflict, InvalidInput, NotFound, XapiCallFailed
from agent.service.errors import XapiUnavailable

log = logging.getLogger(__name__)

# An error class's status; a class not named here takes its nearest parent's.
STATUS = {AgentError: 500, InvalidInput: 400, GatewayInvalid: 400, NotFound: 404,
          Conflict: 409, XapiCallFailed: 502, XapiUnavailable: 503, Busy: 503,
          KernelError: 500, TransientKernelError: 503, StateError: 500, ConfigError: 500}

_HTTP_CODES = {400: "invalid_input", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "timeout", 409: "conflict",
               413: "payload_too_large", 415: "unsupported_media_type"}


class Fail(Exception):
    """An error answered with the API's error body from inside a handler."""

    def __init__(self, status, code, message):
        super(Fail, self).__init__(message)
        self.status, self.code, self.message = status, code, message


def status_of(exc):
    """The HTTP status of an AgentError: its class's, or its nearest parent's."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def internal_error(request):
    """Log the exception being handled as a bug, and return (500, the one error dict)."""
    log.exception("%s %s failed", request.method, request.path)
    return 500, {"code": "internal_error", "message": "internal error; the daemon's log "
                 "(journalctl -u xapi-gateway) has the details", "details": {}}


def failure(request, exc):
    """(status, error dict) for an exception a handler raised."""
    if isinstance(exc, Fail):
        return exc.status, {"code": exc.code, "message": exc.message, "details": {}}
    if isinstance(exc, AgentError):
        return status_of(exc), exc.to_dict()
    return internal_error(request)


def error_response(status, code, message, details=None, headers=None):
    return web.json_response({"error": {"code": code, "message": message,
                                        "details": details or {}}},
                             status=status, headers=headers)


def errors(counts):
    """The error middleware; ``counts`` (HTTP status -> requests) feeds /metrics."""
    @web.middleware
    async def middleware(request, handler):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = _http_error(exc)
        except Exception as exc:  # noqa: B902 - never a traceback to the client
            status, error = failure(request, exc)
            response = web.json_response({"error": error}, status=status)
        counts[response.status] = counts.get(response.status, 0) + 1
        return response
    return middleware


def auth(tokens, insecure):
    @web.middleware
    async def middleware(request, handler):
        scope = scope_of(request)
        if scope is None:
            return await handler(request)
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None and sock.family == socket.AF_UNIX:
            uid = _peer_uid(sock)
            if uid not in (0, None):
                return error_response(403, "forbidden", "the API socket is for root only",
                                      {"uid": uid})
            return await handler(request)
        if insecure:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        kind, _, presented = header.partition(" ")
        token = tokensmod.match(tokens, presented.strip()) \
            if kind.lower() == "bearer" and presented.strip() else None
        if token is None:
            return error_response(401, "unauthorized", "a valid bearer token is required: "
                                  "Authorization: Bearer <token> (tokens are in the daemon's "
                                  "token file)", headers={"WWW-Authenticate": "Bearer"})
        if not tokensmod.allows(token, scope):
            log.warning("token %s (scope %s) refused for %s %s", token.label, token.scope,
                        request.method, request.path)
            return error_response(403, "forbidden", "this token is read-only; %s %s needs an "
                                  "admin token" % (request.method, request.path),
                                  {"scope": token.scope})
        return await handler(request)
    return middleware


def scope_of(request):
    """The scope a request needs, as the OpenAPI document says for its route (``x-scope``:
    None, read or admin). A request that matches no route needs read for GET and admin
    otherwise, so that probing without a token learns nothing."""
    route = request.match_info.route
    resource = getattr(route, "resource", None)
    path = getattr(resource, "canonical", None)
    method = "get" if request.method == "HEAD" else request.method.lower()
    op = openapi.PATHS.get(path, {}).get(method)
    if op is not None:
        return op["x-scope"]
    return "read" if request.method in ("GET", "HEAD") else "admin"


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
    return error_response(status, _HTTP_CODES.get(status, "internal_error"), message)


def _peer_uid(sock):
    try:
        data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", data)[1]
    except (OSError, AttributeError):
        return None
