"""Transports for the simulator: HTTP on a TCP port, and a Unix socket (as xapi's
/var/lib/xcp/xapi, which ``XenAPI.xapi_local()`` uses). XML-RPC: POST to ``/`` or
``/RPC2``; the reply is always HTTP 200 with xapi's status struct, except for malformed
requests (500). JSON-RPC 1.0 and 2.0: POST to ``/jsonrpc``; a XenAPI failure is, as xapi
sends it, ``"error": [CODE, params...]`` in 1.0 and ``"error": {"code": 1, "message":
CODE, "data": [params...]}`` in 2.0.
"""
import http.server
import json
import os
import socket
import socketserver
import threading
import xmlrpc.client


class _Handler(http.server.BaseHTTPRequestHandler):
    engine = None  # set per server class
    protocol_version = "HTTP/1.1"

    def setup(self):
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every call (not on Unix sockets).
        if self.request.family in (socket.AF_INET, socket.AF_INET6):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        http.server.BaseHTTPRequestHandler.setup(self)

    def handle(self):
        try:
            http.server.BaseHTTPRequestHandler.handle(self)
        except (BrokenPipeError, ConnectionResetError):
            # the client went away, mid-call or between two calls on its connection (a
            # daemon stopped or killed): nobody to answer, and, as for xapi, no error
            pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/jsonrpc":
            self._jsonrpc(body)
            return
        try:
            params, method = xmlrpc.client.loads(body, use_builtin_types=False)
        except Exception:  # malformed XML: xapi answers 500 too
            self.send_error(500, "malformed XML-RPC request")
            return
        if method is None or self.path not in ("/", "/RPC2"):
            self.send_error(500, "not an XML-RPC call")
            return
        reply = self.server.engine.call(method, params)
        data = xmlrpc.client.dumps((reply,), methodresponse=True, allow_none=False).encode()
        self._send(data, "text/xml")

    def _jsonrpc(self, body):
        """As xapi's api_server.ml with rpclib's Jsonrpc.version_id_and_call_of_string:
        a request it cannot take (no method, a 1.0 call without a params list, any call
        without an id, params of a 2.0 call neither a list, an object nor null) raises
        Malformed_method_request, which xapi answers with HTTP 500."""
        try:
            request = json.loads(body.decode("utf-8"))
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise ValueError("no method")
            version = request.get("jsonrpc")
            if version not in (None, "2.0"):
                raise ValueError("jsonrpc must be 2.0 or absent")
            params = request.get("params")
            if version is None and not isinstance(params, list):
                raise ValueError("a 1.0 call needs a params list")
            if params is None:
                params = []              # rpclib: a 2.0 call without params has none
            elif isinstance(params, dict):
                params = [params]        # rpclib: a 2.0 by-name call is one struct
            elif not isinstance(params, list):
                raise ValueError("params must be a list")
            if request.get("id") is None:
                raise ValueError("no id")
        except (ValueError, UnicodeDecodeError):
            self.send_error(500, "Malformed_method_request")
            return
        reply = self.server.engine.call(request["method"], params, protocol="json")
        v2 = version == "2.0"
        out = {"id": request["id"]}
        if reply["Status"] == "Success":
            out["result"] = reply["Value"]
            if not v2:
                out["error"] = None
        elif v2:
            code = reply["ErrorDescription"]
            out["error"] = {"code": 1, "message": code[0], "data": code[1:]}
        else:
            out.update(result=None, error=reply["ErrorDescription"])
        if v2:
            out["jsonrpc"] = "2.0"
        self._send(json.dumps(out).encode("utf-8"), "application/json")

    def _send(self, data, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self):
        return str(self.client_address or "unix")

    def log_message(self, *args):  # quiet: tests and demos read the engine, not logs
        pass


class _Connections(object):
    """Tracks open connections, so that a shutdown resets them as a dying xapi would
    (a client blocked in event.from must notice)."""

    def process_request(self, request, client_address):
        self.__dict__.setdefault("open_requests", set()).add(request)
        super(_Connections, self).process_request(request, client_address)

    def shutdown_request(self, request):
        self.__dict__.get("open_requests", set()).discard(request)
        super(_Connections, self).shutdown_request(request)

    def reset_connections(self):
        for request in list(self.__dict__.get("open_requests", ())):
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _TCPServer(_Connections, socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _UnixServer(_Connections, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = self.socket.accept()
        return request, ("unix", 0)


def serve(engine, host=None, port=0, unix_path=None):
    """Start listeners in background threads; returns (servers, address) where address
    is the TCP (host, port) or None."""
    servers = []
    address = None
    if host is not None:
        tcp = _TCPServer((host, port), _Handler)
        tcp.engine = engine
        servers.append(tcp)
        address = tcp.server_address
    if unix_path is not None:
        if os.path.exists(unix_path):
            os.unlink(unix_path)
        unix = _UnixServer(unix_path, _Handler)
        unix.engine = engine
        servers.append(unix)
    for server in servers:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="xapisim")
        thread.daemon = True
        thread.start()
    return servers, address


def shutdown(servers):
    """Stop listening and reset every open connection (what a xapi restart looks like)."""
    for server in servers:
        server.shutdown()
        server.reset_connections()
        server.server_close()
