#!/usr/bin/env python3
"""A small HTTP/1.1 load generator for the daemon's API (the API half of bench/).

    python3 bench/apiload.py unix:/run/xapi-gateway/api.sock /v1/gateways [--seconds 5]
    python3 bench/apiload.py tcp:127.0.0.1:8080 /v1/health --header "Authorization: ..."
    python3 bench/apiload.py --trivial unix:/tmp/t.sock   # a trivial server to measure
                                                           # this client's own ceiling
    python3 bench/apiload.py --trivial-aiohttp unix:/tmp/a.sock   # aiohttp alone

Closed loop over raw sockets, in one thread (``selectors``): ``--connections`` keep-alive
connections, each with one request in flight; a request's latency is from its send to the
last byte of its answer. Bodies are counted and dropped, never parsed, so that a large
answer costs this side a ``recv_into`` per buffer, not Python work per byte. It prints
one JSON object: requests, req/s, p50/p99/max (ms), statuses, bytes, and the ETag seen
(``--conditional`` sends If-None-Match with the first answer's ETag: the 304 case).

Only plain HTTP: the API's TCP listener serves TLS unless ``insecure``; the benchmark
measures the Unix socket (the CLI's and a local controller's way in) and, for TCP, an
insecure listener on 127.0.0.1 in a namespace of its own.
"""
import argparse
import json
import os
import selectors
import socket
import ssl
import sys
import time

BUFFER = 1 << 20


def connect(target):
    """A connected, non-blocking socket to ``unix:PATH``, ``tcp:HOST:PORT`` or
    ``tls:HOST:PORT`` (TLS: handshake done, the certificate not verified: the
    benchmark's own self-signed one)."""
    kind, _, address = target.partition(":")
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
    elif kind in ("tcp", "tls"):
        host, _, port = address.rpartition(":")
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if kind == "tls":
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock)
    else:
        raise SystemExit("apiload: target is unix:PATH, tcp:HOST:PORT or tls:HOST:PORT, "
                         "not %r" % target)
    sock.setblocking(False)
    return sock


def receive(sock, buf):
    """Bytes read into ``buf`` (0: the peer closed), None when a TLS socket has no whole
    record yet."""
    try:
        return sock.recv_into(buf)
    except ssl.SSLWantReadError:
        return None


def request_bytes(path, headers):
    lines = ["GET %s HTTP/1.1" % path, "Host: localhost"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class Conn(object):
    """One keep-alive connection: its request, and the parse state of the answer."""
    __slots__ = ("sock", "request", "sent_at", "head", "remaining", "status", "got")

    def __init__(self, sock, request):
        self.sock, self.request = sock, request
        self.head, self.remaining, self.status, self.sent_at, self.got = b"", None, None, 0.0, 0


def head_of(data):
    """(status, content length, headers dict) of a response head (bytes, no CRLFCRLF)."""
    lines = data.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if status in (204, 304) or 100 <= status < 200:
        length = 0
    elif b"content-length" in headers:
        length = int(headers[b"content-length"])
    else:
        raise SystemExit("apiload: an answer without Content-Length (%d)" % status)
    return status, length, headers


def one(target, path, headers=()):
    """(status, headers, body) of one request, on a connection of its own (blocking)."""
    sock = connect(target)
    sock.setblocking(True)
    try:
        sock.sendall(request_bytes(path, headers))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("apiload: the server closed the connection")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status, length, fields = head_of(head)
        while len(body) < length:
            chunk = sock.recv(BUFFER)
            if not chunk:
                raise SystemExit("apiload: the server closed the connection")
            body += chunk
        return status, fields, body
    finally:
        sock.close()


def run(target, path, headers=(), connections=4, seconds=5.0, warmup=0.5):
    """Load ``path`` for ``seconds`` (after ``warmup``); a dict of figures."""
    request = request_bytes(path, headers)
    selector = selectors.DefaultSelector()
    conns = []
    for _ in range(connections):
        conn = Conn(connect(target), request)
        conns.append(conn)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    latencies, statuses, received = [], {}, [0]
    clock = time.perf_counter
    measure_from = clock() + warmup
    stop = measure_from + seconds

    def readable(conn):
        """Read what ``conn`` has; when its answer is complete, note it, send again."""
        while True:
            n = receive(conn.sock, buf)
            if n is None:
                return
            if n == 0:
                raise SystemExit("apiload: the server closed a connection (after %d "
                                 "answers)" % len(latencies))
            conn.got += n
            if conn.remaining is None:  # still reading the head
                conn.head += bytes(view[:n])
                end = conn.head.find(b"\r\n\r\n")
                if end >= 0:
                    conn.status, length, _ = head_of(conn.head[:end])
                    conn.remaining = length - (len(conn.head) - end - 4)
            else:
                conn.remaining -= n
            if conn.remaining is not None and conn.remaining <= 0:
                if conn.remaining < 0:
                    raise SystemExit("apiload: more bytes than announced")
                done = clock()
                if done >= measure_from:
                    latencies.append(done - conn.sent_at)
                    statuses[conn.status] = statuses.get(conn.status, 0) + 1
                    received[0] += conn.got
                conn.head, conn.remaining, conn.got = b"", None, 0
                conn.sent_at = clock()
                conn.sock.send(request)
            # a TLS socket may hold decrypted bytes that select() cannot see
            if not isinstance(conn.sock, ssl.SSLSocket) or not conn.sock.pending():
                return

    for conn in conns:
        conn.sent_at = clock()
        conn.sock.send(request)
    while clock() < stop:
        for key, _ in selector.select(0.5):
            readable(key.data)
    elapsed = clock() - measure_from
    for conn in conns:
        selector.unregister(conn.sock)
        conn.sock.close()
    latencies.sort()

    def pct(q):
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(q / 100.0 * len(latencies)))] * 1000.0
    return {"path": path, "connections": connections, "seconds": round(elapsed, 3),
            "requests": len(latencies), "rps": len(latencies) / elapsed if elapsed else 0.0,
            "p50_ms": pct(50), "p99_ms": pct(99),
            "max_ms": latencies[-1] * 1000.0 if latencies else None,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "mb_per_s": received[0] / elapsed / 1e6 if elapsed else 0.0}


def load(target, path, headers=(), conditional=False, **kw):
    """``run`` after one plain request: with ``conditional``, every request carries
    If-None-Match with that answer's ETag (what a poller that keeps it sends)."""
    status, fields, body = one(target, path, headers)
    etag = fields.get(b"etag", b"").decode("ascii") or None
    headers = list(headers)
    if conditional:
        if etag is None:
            raise SystemExit("apiload: %s answered without an ETag" % path)
        headers.append("If-None-Match: %s" % etag)
    result = run(target, path, headers, **kw)
    result.update({"first_status": status, "body_bytes": len(body), "etag": etag,
                   "conditional": conditional})
    return result


# ---- the trivial server: what this client can do at most ---------------------------------
def trivial_server(target, body=b'{"status":"ok"}'):
    """Serve a fixed answer to every request head on ``target`` (asyncio, one thread)
    until killed: a server that does nothing, to measure the client's ceiling."""
    import asyncio
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body)) + body

    class Trivial(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.data = transport, b""

        def data_received(self, data):
            self.data += data
            while True:
                end = self.data.find(b"\r\n\r\n")
                if end < 0:
                    return
                self.data = self.data[end + 4:]
                self.transport.write(answer)

    loop = asyncio.new_event_loop()
    kind, _, address = target.partition(":")
    if kind == "unix":
        if os.path.exists(address):
            os.unlink(address)
        server = loop.run_until_complete(loop.create_unix_server(Trivial, address))
    else:
        host, _, port = address.rpartition(":")
        server = loop.run_until_complete(loop.create_server(Trivial, host, int(port)))
    sys.stdout.write("serving\n")
    sys.stdout.flush()
    try:
        loop.run_forever()
    finally:
        server.close()


def aiohttp_server(target, body=b'{"status":"ok"}'):
    """aiohttp alone: one route answering fixed bytes, no middleware (what the framework
    costs per request on this CPU, the floor under the daemon's API)."""
    import asyncio
    from aiohttp import web

    async def answer(request):
        return web.Response(body=body, content_type="application/json")
    app = web.Application()
    app.router.add_get("/", answer)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    loop.run_until_complete(runner.setup())
    path = target.partition(":")[2]
    if os.path.exists(path):
        os.unlink(path)
    loop.run_until_complete(web.UnixSite(runner, path).start())
    sys.stdout.write("serving\n")
    sys.stdout.flush()
    loop.run_forever()


def main(argv=None):
    parser = argparse.ArgumentParser(description="HTTP/1.1 load on the daemon's API")
    parser.add_argument("target", help="unix:PATH or tcp:HOST:PORT")
    parser.add_argument("path", nargs="?", default="/v1/health")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--header", action="append", default=[],
                        help="an extra request header, 'Name: value' (repeatable)")
    parser.add_argument("--conditional", action="store_true",
                        help="send If-None-Match with the ETag of a first answer (304s)")
    parser.add_argument("--trivial", action="store_true",
                        help="serve a fixed answer on TARGET instead (the client's ceiling)")
    parser.add_argument("--trivial-aiohttp", action="store_true",
                        help="serve a fixed answer with aiohttp alone on unix:TARGET")
    args = parser.parse_args(argv)
    if args.trivial:
        trivial_server(args.target)
        return 0
    if args.trivial_aiohttp:
        aiohttp_server(args.target)
        return 0
    if not 1 <= args.connections <= 64 or not 0 < args.seconds <= 120:
        parser.error("--connections 1..64, --seconds up to 120")
    result = load(args.target, args.path, args.header, conditional=args.conditional,
                  connections=args.connections, seconds=args.seconds, warmup=args.warmup)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
