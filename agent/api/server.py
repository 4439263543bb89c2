"""Serving the API: always on a root-only Unix socket, on TCP with TLS when configured.

Every listener is guarded (``Guard``): a cap on open connections per listener and per
TCP peer (more are closed as soon as they are accepted), a deadline from connecting (TLS
handshake included) to a complete request head, and one for idle keep-alive connections.
Running out of descriptors in accept is logged once and retried (asyncio backs off), and
the caps are lowered at start to leave descriptors for the reconciler's kernel thread."""
import asyncio
import ctypes
import errno
import gc
import logging
import os
import socket
import ssl
import time

from aiohttp import web

from agent.api import tokens as tokensmod
from agent.api.app import Api
from agent.api.xapi import Sessions
from agent.errors import ConfigError

log = logging.getLogger(__name__)

RESERVED_DESCRIPTORS = 64   # kept free for the kernel thread, XAPI and status files
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_RESOURCE_MESSAGE = "socket.accept() out of system resource"  # asyncio's words
STARVED_QUIET = 5.0   # seconds without a failed accept that end an episode
UNIX_SEND_BUFFER = 512 << 10   # SO_SNDBUF of a Unix socket connection (the kernel doubles it)


def tcp_setup(config):
    """(tokens, ssl context or None) for the TCP listener of ``config``; ConfigError for
    a token file or TLS files that cannot be used. Only TCP needs them: the caller serves
    the Unix socket whatever this says."""
    settings = config.api
    if not settings.listen or settings.insecure:
        return [], None
    tokens = tokensmod.load(settings.tokens)
    if not tokens:
        raise ConfigError("the token file %s has no token: TCP clients could never "
                          "authenticate" % settings.tokens)
    return tokens, tls_context(settings.tls_cert, settings.tls_key)


def build(config, state, tokens=()):
    """An Api for ``config`` (its [xapi] and [api] sections) accepting ``tokens`` on TCP
    (from tcp_setup)."""
    settings = config.api
    sessions = Sessions(config.xapi.url, config.xapi.username, config.xapi.password,
                        timeout=config.xapi.timeout, long_timeout=config.xapi.long_timeout)
    return Api(sessions, tokens=tokens, state=state, insecure=settings.insecure,
               max_body=settings.max_body, body_timeout=settings.body_timeout)


def tls_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = getattr(ssl, "TLSVersion", None)  # Python 3.7+; 3.6 (Dom0) has the options
    if versions is not None:
        setattr(context, "minimum_version", versions.TLSv1_2)
    else:
        context.options |= ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("cannot load the API's TLS certificate %s / key %s: %s"
                          % (cert, key, exc))
    return context


async def start(api, socket_path, listen="", ssl_context=None, guard=None):
    """Serve ``api`` on the Unix socket (and on ``listen`` if given); returns the
    AppRunner (``await runner.cleanup()`` stops it)."""
    guard = guard or Guard()
    app = api.app()
    app.middlewares.insert(0, guard.middleware)
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           keepalive_timeout=guard.idle_timeout)
    await runner.setup()
    guard.install(asyncio.get_event_loop())
    try:
        directory = os.path.dirname(socket_path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        listener = guard.listener(socket.AF_UNIX, "unix")
        old = os.umask(0o177)  # the socket is born root-only, never briefly open
        try:
            listener.bind(socket_path)
        finally:
            os.umask(old)
        os.chmod(socket_path, 0o600)
        await _Site(runner, listener, "unix:" + socket_path).start()
        log.info("API on unix:%s", socket_path)
        if listen:
            await serve_tcp(runner, listen, ssl_context, guard)
    except Exception:
        await runner.cleanup()
        raise
    return runner


async def serve_tcp(runner, listen, ssl_context=None, guard=None):
    """Add the TCP listener on ``listen`` (HOST:PORT) to a started runner; OSError when
    the port cannot be had (the Unix socket keeps being served)."""
    guard = guard or Guard()
    host, _, port = listen.rpartition(":")
    infos = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    listener = guard.listener(family, "tcp")
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError:
        listener.close()
        raise
    await _Site(runner, listener, "%s://%s" % ("https" if ssl_context else "http", listen),
                ssl_context).start()
    log.info("API on %s://%s%s", "https" if ssl_context else "http", listen,
             "" if ssl_context else " WITHOUT TLS OR TOKENS (insecure is set)")


class _Site(web.BaseSite):
    """A site on a listening socket made here (a guarded one)."""

    def __init__(self, runner, sock, name, ssl_context=None, backlog=128):
        super(_Site, self).__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._sock = sock
        self._name = name

    @property
    def name(self):
        return self._name

    async def start(self):
        await super(_Site, self).start()
        loop = asyncio.get_event_loop()
        self._sock.listen(self._backlog)
        self._sock.setblocking(False)
        server = self._runner.server
        if self._sock.family == socket.AF_UNIX:
            self._server = await loop.create_unix_server(server, sock=self._sock,
                                                         backlog=self._backlog)
        else:
            self._server = await loop.create_server(server, sock=self._sock,
                                                    ssl=self._ssl_context,
                                                    backlog=self._backlog)


class Guard(object):
    """Connection limits of the API's listeners (see the module's text)."""

    def __init__(self, settings=None):
        self.max_connections = getattr(settings, "max_connections", 128)
        self.per_peer = getattr(settings, "max_connections_per_peer", 16)
        self.header_timeout = getattr(settings, "header_timeout", 10.0)
        self.idle_timeout = getattr(settings, "idle_timeout", 60.0)
        self.open = {}            # fd -> _Conn
        self.counts = {}          # listener name -> open connections
        self.peers = {}           # TCP peer address -> open connections
        self.refused = {"listener": 0, "peer": 0}
        self.timeouts = 0
        self.accept_failures = 0
        self._starved = False  # accepts fail for want of descriptors (an episode)
        self._starved_at = self._starved_from = 0
        self._peak = 0
        self._loop = None
        self._budgeted = False

    # ---- set-up -------------------------------------------------------------------
    def install(self, loop):
        """Once per loop: asyncio's own log line for an accept out of descriptors becomes
        ours (said once per episode), and the caps fit the descriptor limit."""
        if self._loop is loop:
            return
        self._loop = loop
        previous = loop.get_exception_handler()

        def handler(loop, context):
            if str(context.get("message", "")).startswith(ACCEPT_RESOURCE_MESSAGE):
                return  # the listener said it once already; asyncio retries in a second
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
        loop.set_exception_handler(handler)
        self._fit_descriptors()

    def _fit_descriptors(self):
        try:
            import resource
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            in_use = len(os.listdir("/proc/self/fd"))
        except (ImportError, OSError, ValueError):
            return
        if soft == resource.RLIM_INFINITY:
            return
        room = (soft - in_use - RESERVED_DESCRIPTORS) // 2  # two listeners
        if room < self.max_connections:
            fitted = max(room, 4)
            log.warning("the descriptor limit is %d: the API takes at most %d connections "
                        "per listener (max_connections = %d); raise LimitNOFILE for more",
                        soft, fitted, self.max_connections)
            self.max_connections = fitted

    def listener(self, family, name):
        sock = _Listener(family, socket.SOCK_STREAM)
        sock.guard, sock.guard_name = self, name
        self.counts.setdefault(name, 0)
        return sock

    # ---- connections (called by the listeners, in the loop) -----------------------
    def admit(self, listener, conn, address):
        """None, or why ``conn`` is refused."""
        if self._starved and time.monotonic() - self._starved_at > STARVED_QUIET:
            self._starved = False
            log.warning("accepting API connections again (%d accepts failed meanwhile)",
                        self.accept_failures - self._starved_from)
        name = listener.guard_name
        if self.counts[name] >= self.max_connections:
            self.refused["listener"] += 1
            return "listener"
        peer = address[0] if isinstance(address, tuple) else None
        if peer is not None and self.peers.get(peer, 0) >= self.per_peer:
            self.refused["peer"] += 1
            return "peer"
        conn.guard, conn.guard_name, conn.guard_peer = self, name, peer
        conn.guard_fd = conn.fileno()
        conn.guard_timer = conn.guard_deadline = None
        self.counts[name] += 1
        if peer is not None:
            self.peers[peer] = self.peers.get(peer, 0) + 1
        self.open[conn.guard_fd] = conn
        self._peak = max(self._peak, len(self.open))
        self._arm(conn, self.header_timeout)
        return None

    def starved(self, listener, exc):
        self._starved_at = time.monotonic()
        self.accept_failures += 1
        if not self._starved:
            self._starved = True
            self._starved_from = self.accept_failures - 1
            log.error("cannot accept API connections on %s: %s (%d open); retrying every "
                      "second, said once until it works again for %.0f s", listener.guard_name,
                      exc.strerror or exc, len(self.open), STARVED_QUIET)

    def release(self, conn):
        if self.open.get(conn.guard_fd) is conn:
            del self.open[conn.guard_fd]
        self._cancel(conn)
        self.counts[conn.guard_name] -= 1
        peer = conn.guard_peer
        if peer is not None:
            left = self.peers.get(peer, 1) - 1
            if left > 0:
                self.peers[peer] = left
            else:
                self.peers.pop(peer, None)
        if not self.open and self._peak >= 16:
            # once the transports and protocols are gone too (they are still alive here)
            self._peak = 0
            (self._loop or asyncio.get_event_loop()).call_later(1.0, self._after_burst)

    def _after_burst(self):
        if not self.open:
            _give_back_memory()

    def _arm(self, conn, seconds):
        """``conn`` must send a request head within ``seconds``. A deadline, not a timer
        per request: the connection's one timer, when it fires, ends the connection or
        waits on for a deadline moved since (a timer made and cancelled per request cost
        ~5% of a /v1/health answer)."""
        loop = self._loop or asyncio.get_event_loop()
        deadline = conn.guard_deadline = loop.time() + seconds
        timer = conn.guard_timer
        if timer is not None and conn.guard_timer_at > deadline:   # a shorter wait now
            timer.cancel()
            timer = None
        if timer is None:
            self._schedule(loop, conn, deadline)

    def _schedule(self, loop, conn, when):
        # the time kept beside the timer: TimerHandle.when() is Python 3.7+
        conn.guard_timer, conn.guard_timer_at = loop.call_at(when, self._expire, conn), when

    def _disarm(self, conn):
        """No deadline while a request is served (its timer stays, and finds none)."""
        conn.guard_deadline = None

    def _cancel(self, conn):
        timer, conn.guard_timer = getattr(conn, "guard_timer", None), None
        conn.guard_deadline = None
        if timer is not None:
            timer.cancel()

    def _expire(self, conn):
        """The connection's timer: past its deadline (no complete request head in time),
        end the connection (its reader sees EOF and the transport closes it); before it,
        wait on; while a request is served, nothing (the end of the request arms it)."""
        conn.guard_timer = None
        deadline = conn.guard_deadline
        if deadline is None:
            return
        loop = self._loop or asyncio.get_event_loop()
        if loop.time() < deadline:
            self._schedule(loop, conn, deadline)
            return
        conn.guard_deadline = None
        self.timeouts += 1
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _conn_of(self, request):
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return None
        try:
            return self.open.get(sock.fileno())
        except OSError:
            return None

    @web.middleware
    async def middleware(self, request, handler):
        """A request head arrived: no deadline while it is served; afterwards the
        connection has idle_timeout for the next one."""
        conn = self._conn_of(request)
        if conn is not None:
            self._disarm(conn)
        try:
            return await handler(request)
        finally:
            if conn is not None and self.open.get(conn.guard_fd) is conn:
                self._arm(conn, self.idle_timeout)

    def metrics(self):
        """(name, kind, help, samples) for the daemon's /metrics."""
        return [
            ("xgw_api_connections", "gauge", "Open API connections, by listener.",
             [('{listener="%s"}' % n, c) for n, c in sorted(self.counts.items())]),
            ("xgw_api_connections_refused_total", "counter",
             "API connections closed at once: a listener's or a peer's cap was reached.",
             [('{cap="%s"}' % k, v) for k, v in sorted(self.refused.items())]),
            ("xgw_api_connection_timeouts_total", "counter",
             "API connections closed for a request head not sent in time.",
             [("", self.timeouts)]),
            ("xgw_api_accept_failures_total", "counter",
             "Accepts that failed for want of descriptors or memory.",
             [("", self.accept_failures)]),
        ]


class _Listener(socket.socket):
    """A listening socket whose accept() admits through its Guard."""

    def accept(self):
        try:
            fd, address = self._accept()
        except OSError as exc:
            if exc.errno in OUT_OF_RESOURCES:
                self.guard.starved(self, exc)
            raise
        conn = _Conn(self.family, self.type, self.proto, fileno=fd)
        if self.guard.admit(self, conn, address) is not None:
            socket.socket.close(conn)
            # asyncio ends this batch of accepts quietly and comes back for more
            raise ConnectionAbortedError(errno.ECONNABORTED, "over the connection cap")
        if self.family == socket.AF_UNIX:
            _unix_send_buffer(conn)
        return conn, address


def _unix_send_buffer(conn):
    """Let one send() take a whole large answer on the Unix socket: /v1/gateways at
    1,000 gateways is ~300 KB, above the default buffer (net.core.wmem_default, ~208 KB),
    so each answer was a partial send, the rest copied into asyncio's buffer and sent on
    the next turn of the loop (GET /v1/gateways, 200: 4,250 -> 5,700 req/s). It is a
    limit, not memory set aside: the kernel holds what a client has not read yet, as
    asyncio's buffer held it before. TCP keeps the kernel's autotuning, which setting
    SO_SNDBUF would turn off."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UNIX_SEND_BUFFER)
    except OSError as exc:  # not expected; the default buffer works, only slower
        log.debug("cannot enlarge an API connection's send buffer: %s", exc)


class _Conn(socket.socket):
    """An accepted connection that gives its place back when closed."""

    def close(self):
        guard = self.__dict__.pop("guard", None)
        if guard is not None:
            guard.release(self)
        socket.socket.close(self)


def _give_back_memory():
    """After a burst of connections (each TLS one holds buffers of a few hundred KB),
    hand the freed heap back to the system (glibc; elsewhere nothing)."""
    gc.collect()  # asyncio's SSL protocols and transports refer to each other
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
