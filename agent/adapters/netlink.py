"""Links, IPv4 addresses and routes through netlink.

``NetlinkView`` is an in-memory mirror of the kernel's links, IPv4 addresses and
main-table IPv4 routes, loaded by one dump and then kept current by netlink events
(``NetlinkMonitor``), so a reconcile round observes the network in microseconds instead
of dumping it. Dumps and events are the same rtnetlink messages, and one decoder
(``decode``) reads both. ``Netlink`` holds the idempotent verbs: adding what exists or
removing what is gone is success, not an error. Address and route changes go out as raw
rtnetlink requests, many in one send (``Netlink.apply``): the kernel handles them one
after the other and acknowledges each, so one that fails does not stop the others, and
each failure is reported for its own request. pyroute2 (one event loop, one send and one
receive per call: ~0.6-0.9 ms each) is left for the route lookups of ``source_address``.
"""
import contextlib
import errno
import ipaddress
import itertools
import logging
import os
import socket
import struct
import threading
from collections import namedtuple

from agent.core import planner as P
from agent.errors import KernelError, NetlinkDumpInterrupted

log = logging.getLogger(__name__)

# Netlink and rtnetlink constants from the kernel ABI.
NETLINK_ROUTE = 0
AF_UNSPEC, AF_INET = 0, 2
IFF_UP = 0x1
MAIN_TABLE = 254
RTN_UNICAST = 1
RT_SCOPE_LINK = 253
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_DUMP_INTR, NLM_F_DUMP = 0x1, 0x2, 0x10, 0x300
NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x4, 0x200, 0x400
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE
IFLA_IFNAME, IFLA_LINKINFO, IFLA_EXT_MASK = 3, 18, 29
IFLA_INFO_KIND = 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_PREFSRC, RTA_TABLE = 1, 4, 7, 15
RTPROT_STATIC = 4       # as pyroute2 (and ``ip route add ... proto static``) mark a route
RT_SCOPE_UNIVERSE = 0
RTEXT_FILTER_SKIP_STATS = 1 << 3
SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE = 1, 8, 33
MONITOR_RCVBUF = 8 * 1024 * 1024
RECV_SIZE = 1 << 16     # a dump reply is at most 32 KiB, an event one message
DUMP_TIMEOUT = 5.0      # seconds without a reply before a dump fails
DUMP_ATTEMPTS = 5       # takes of a dump the kernel flags as interrupted, before giving up
BATCH = 64              # requests per send: their acknowledgements (one message each) must
#                         fit the socket's receive buffer, or the kernel drops them
REQUEST_TIMEOUT = 5.0   # seconds without an acknowledgement before a request counts as failed
_NLMSGHDR = struct.Struct("=IHHII")    # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")   # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBi")    # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")    # family, dst_len, src_len, tos, table, proto,
#                                         scope, type, flags
_RTATTR = struct.Struct("=HH")          # len, type

Header = namedtuple("Header", "length type flags seq pid")


# ---- the decoder: one for dumps and events ---------------------------------------------
_LINK_ATTRS = frozenset((IFLA_IFNAME, IFLA_LINKINFO))   # what decode keeps of a link


def messages(data):
    """(Header, body start, body end) of each netlink message in one datagram."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        header = Header(*_NLMSGHDR.unpack_from(data, offset))
        if header.length < _NLMSGHDR.size or offset + header.length > len(data):
            raise KernelError("malformed netlink message (length %d at offset %d of %d)"
                              % (header.length, offset, len(data)))
        yield header, offset + _NLMSGHDR.size, offset + header.length
        offset += (header.length + 3) & ~3


def decode(kind, data, start, end):
    """What the daemon keeps of one rtnetlink message (body between start and end), or
    None for what it ignores:

    - RTM_NEWLINK/DELLINK -> ``Link``; not the AF_BRIDGE copies a bridge sends about its
      ports (an RTM_DELLINK of those means "left the bridge", not "gone");
    - RTM_NEWADDR/DELADDR -> (ifindex, IPv4Interface) for IPv4 (the local address of a
      point-to-point one; a label changes nothing);
    - RTM_NEWROUTE/DELROUTE -> ``Route`` for IPv4 unicast routes of the main table with
      one output interface (multipath, blackhole, local and other tables are not
      something a gateway competes with).
    """
    if kind in (RTM_NEWLINK, RTM_DELLINK):
        family, _type, index, flags, _change = IFINFOMSG.unpack_from(data, start)
        if family != AF_UNSPEC:
            return None
        attrs = _attrs(data, start + IFINFOMSG.size, end, _LINK_ATTRS)
        name = attrs.get(IFLA_IFNAME)
        if name is None:
            return None
        info = attrs.get(IFLA_LINKINFO)  # nested; absent for loopback and physical NICs
        kind = None if info is None else _attrs(info, 0, len(info)).get(IFLA_INFO_KIND)
        return P.Link(index=index, name=bytes(name).split(b"\0", 1)[0].decode(),
                      up=bool(flags & IFF_UP),
                      kind=None if kind is None else bytes(kind).split(b"\0", 1)[0].decode())
    if kind in (RTM_NEWADDR, RTM_DELADDR):
        family, prefixlen, _flags, _scope, index = _IFADDRMSG.unpack_from(data, start)
        if family != AF_INET:
            return None
        attrs = _attrs(data, start + _IFADDRMSG.size, end)
        raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if raw is None or len(raw) != 4:
            return None
        return index, ipaddress.IPv4Interface((bytes(raw), prefixlen))
    if kind in (RTM_NEWROUTE, RTM_DELROUTE):
        family, dst_len, _src, _tos, table, _proto, _scope, rtype, _flags = \
            _RTMSG.unpack_from(data, start)
        if family != AF_INET:
            return None
        attrs = _attrs(data, start + _RTMSG.size, end)
        if RTA_TABLE in attrs:  # the header's byte says 252 for tables above 255
            table = struct.unpack("=I", bytes(attrs[RTA_TABLE][:4]))[0]
        if table != MAIN_TABLE or rtype != RTN_UNICAST or RTA_OIF not in attrs:
            return None
        dst = bytes(attrs.get(RTA_DST, b"\0\0\0\0"))
        oif = struct.unpack("=i", bytes(attrs[RTA_OIF][:4]))[0]
        return P.Route(ipaddress.IPv4Network((dst, dst_len), strict=False), oif)
    return None


def _attrs(data, pos, end, wanted=None):
    """{type: raw value} of the rtattrs between pos and end (of the types in ``wanted``
    alone, when given: a link's message carries ~40, statistics among them, of which a
    Link needs two; copying them all was most of decoding a new bridge's event)."""
    attrs = {}
    unpack, head = _RTATTR.unpack_from, _RTATTR.size
    while pos + head <= end:
        rta_len, rta_type = unpack(data, pos)
        if rta_len < head:
            break
        if wanted is None or rta_type in wanted:
            attrs[rta_type] = data[pos + head:pos + rta_len]
        pos += (rta_len + 3) & ~3
    return attrs


# ---- dumps -------------------------------------------------------------------------------
_sequence = itertools.count(1)


def message(kind, flags, body, port=0):
    """(sequence number, bytes) of one rtnetlink request of type ``kind`` with ``flags``
    (NLM_F_REQUEST added) and ``body``, numbered from this process's one counter."""
    seq = next(_sequence) & 0xFFFFFFFF
    return seq, _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, NLM_F_REQUEST | flags,
                               seq, port) + body


def _dump(request_type, request_body, reply_type, attempts=DUMP_ATTEMPTS,
          timeout=DUMP_TIMEOUT):
    """The decoded items of one rtnetlink dump, taken on a plain netlink socket.

    pyroute2 decodes every attribute of every message (link statistics, per-family
    settings...): for 1,000 bridges that took ~0.4 s and left a ~35 MB peak that the
    allocator keeps. The daemon needs a handful of fields, so it reads just those. A dump
    the kernel flags as interrupted (the table changed while it was read) is taken again.
    """
    for attempt in range(1, attempts + 1):
        try:
            return _dump_once(request_type, request_body, reply_type, timeout)
        except NetlinkDumpInterrupted:
            if attempt == attempts:
                raise
            log.debug("netlink dump %d interrupted; taking it again", request_type)
        except socket.timeout:
            raise KernelError("netlink dump: no reply from the kernel within %.0f s" % timeout,
                              errno=errno.ETIMEDOUT)
        except OSError as exc:
            raise KernelError("netlink dump: %s" % _strerror(exc.errno), errno=exc.errno)


def _dump_once(request_type, request_body, reply_type, timeout):
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        port = sock.getsockname()[0]
        seq, data = message(request_type, NLM_F_DUMP, request_body, port)
        sock.send(data)
        return collect(lambda: sock.recv(RECV_SIZE), seq, port, reply_type)
    finally:
        sock.close()


def collect(recv, seq, port, reply_type):
    """Read the replies to the dump request ``seq`` sent from ``port`` through ``recv()``
    (one datagram a call) up to NLMSG_DONE; return the decoded ``reply_type`` items.

    Messages of another request or socket are skipped. Raises NetlinkDumpInterrupted when
    the kernel flagged a reply NLM_F_DUMP_INTR, and KernelError for an error reply."""
    items = []
    while True:
        data = recv()
        if not data:
            raise KernelError("netlink dump: the socket closed before the end of the dump")
        for header, start, end in messages(data):
            if header.seq != seq or header.pid != port:
                continue
            if header.flags & NLM_F_DUMP_INTR:
                raise NetlinkDumpInterrupted(
                    "netlink dump interrupted: the kernel's tables changed while read")
            if header.type == NLMSG_DONE:
                return items
            if header.type == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, start)[0]
                if code == 0:
                    continue  # an acknowledgement
                raise KernelError("netlink dump failed: %s" % _strerror(code), errno=code)
            if header.type == reply_type:
                item = decode(header.type, data, start, end)
                if item is not None:
                    items.append(item)


def dump_links():
    mask = _RTATTR.pack(8, IFLA_EXT_MASK) + struct.pack("=I", RTEXT_FILTER_SKIP_STATS)
    return _dump(RTM_GETLINK, IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + mask, RTM_NEWLINK)


def dump_addresses():
    return _dump(RTM_GETADDR, _IFADDRMSG.pack(AF_INET, 0, 0, 0, 0), RTM_NEWADDR)


def dump_routes():
    return _dump(RTM_GETROUTE, _RTMSG.pack(AF_INET, 0, 0, 0, 0, 0, 0, 0, 0), RTM_NEWROUTE)


# ---- requests: address and route changes ---------------------------------------------------
def attr(kind, value):
    """One rtnetlink attribute (its header, ``value``, the padding to 4 bytes)."""
    return _RTATTR.pack(_RTATTR.size + len(value), kind) + value + b"\0" * (-len(value) % 4)


def request(op):
    """(message type, flags, body, errno that means "already so") of the rtnetlink
    request that applies one planner operation (AddAddress, RemoveAddress, AddRoute): the
    same messages ``ip address add``, ``ip address del`` and ``ip route add ... proto
    static scope link src`` send."""
    if isinstance(op, (P.AddAddress, P.RemoveAddress)):
        address = op.address
        ip = address.ip.packed
        body = (_IFADDRMSG.pack(AF_INET, address.network.prefixlen, 0, RT_SCOPE_UNIVERSE,
                                op.ifindex) + attr(IFA_LOCAL, ip) + attr(IFA_ADDRESS, ip))
        if isinstance(op, P.AddAddress):
            body += attr(IFA_BROADCAST, address.network.broadcast_address.packed)
            return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, errno.EEXIST
        return RTM_DELADDR, 0, body, errno.EADDRNOTAVAIL
    if isinstance(op, P.AddRoute):
        network = op.network
        body = (_RTMSG.pack(AF_INET, network.prefixlen, 0, 0, MAIN_TABLE, RTPROT_STATIC,
                            RT_SCOPE_LINK, RTN_UNICAST, 0)
                + attr(RTA_DST, network.network_address.packed)
                + attr(RTA_OIF, struct.pack("=i", op.ifindex))
                + attr(RTA_PREFSRC, op.source.packed)
                + attr(RTA_TABLE, struct.pack("=I", MAIN_TABLE)))
        return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, errno.EEXIST
    raise TypeError("not a netlink operation: %r" % (op,))


def _describe(op):
    if isinstance(op, P.AddRoute):
        return "add route %s" % op.network
    return "%s address %s" % ("add" if isinstance(op, P.AddAddress) else "remove", op.address)


def acknowledgements(data, pending):
    """Fold the acknowledgements in one datagram into ``pending`` ({seq: None}): each
    NLMSG_ERROR message of a sequence number in it gives that request's code (0 = done,
    else the errno). Other messages (another request's, a late one) are skipped. Returns
    how many requests it answered."""
    answered = 0
    for header, start, _end in messages(data):
        if header.type == NLMSG_ERROR and header.seq in pending and \
                pending[header.seq] is None:
            pending[header.seq] = -struct.unpack_from("=i", data, start)[0]
            answered += 1
    return answered


# ---- the mirror ----------------------------------------------------------------------------
class NetlinkView(object):
    """Thread-safe mirror of links, IPv4 addresses and main-table IPv4 routes."""

    def __init__(self):
        self._lock = threading.Lock()
        self._links = {}       # name -> Link
        self._names = {}       # index -> name
        self._addresses = {}   # index -> frozenset(IPv4Interface)
        self._routes = set()   # Route
        self._replay = None    # during a resync: the events folded in since it began
        self.generation = 0    # changes whenever the mirror may have changed
        self._snapshot = None  # the last snapshot's copies, by generation

    def resync(self, dump):
        """Replace the mirror by ``dump()`` (links, addresses, routes) without losing an
        event: the events that arrive while the dump is read are folded into the old
        mirror as usual and kept, then replayed on top of the dump. (An event the dump
        already shows changes nothing when replayed; one it missed is not lost.)"""
        with self._lock:
            self._replay = []
        try:
            links, addresses, routes = dump()
        except BaseException:
            with self._lock:
                self._replay = None
            raise
        with self._lock:
            replay, self._replay = self._replay, None
            self._load(links, addresses, routes)
            for kind, item in replay:
                self._apply(kind, item)
        if replay:
            log.debug("resync: replayed %d events that arrived during the dump", len(replay))

    def load(self, links, addresses, routes):
        with self._lock:
            self._load(links, addresses, routes)

    def _load(self, links, addresses, routes):
        self.generation += 1
        self._links = {link.name: link for link in links}
        self._names = {link.index: link.name for link in links}
        merged = {}
        for index, address in addresses:
            merged.setdefault(index, set()).add(address)
        self._addresses = {i: frozenset(a) for i, a in merged.items()}
        self._routes = set(routes)

    def snapshot(self):
        """(generation, links, addresses, routes): copies for one planning round (the
        same copies again while the mirror is unchanged: callers must not change them)."""
        with self._lock:
            last = self._snapshot
            if last is None or last[0] != self.generation:
                last = self._snapshot = (self.generation, dict(self._links),
                                         dict(self._addresses), set(self._routes))
            return last

    def link(self, name):
        """The Link named ``name`` as the mirror has it now, or None."""
        with self._lock:
            return self._links.get(name)

    def apply(self, kind, item):
        """Fold one decoded event (``kind``, ``decode(kind, ...)``) into the mirror; return
        the affected interface name (or None)."""
        with self._lock:
            if self._replay is not None:
                self._replay.append((kind, item))
            return self._apply(kind, item)

    def _apply(self, kind, item):
        self.generation += 1
        if kind == RTM_NEWLINK:
            old = self._names.get(item.index)
            was = self._links.get(old) if old is not None else None
            if old is not None and old != item.name:
                self._links.pop(old, None)
            self._links[item.name] = item
            self._names[item.index] = item.name
            if was is not None and was.up and not item.up:
                # A link set down loses its IPv4 routes without an RTM_DELROUTE for them
                # (up again, the kernel announces the connected routes it puts back).
                self._routes = set(r for r in self._routes if r.ifindex != item.index)
            return item.name
        if kind == RTM_DELLINK:
            name = self._names.pop(item.index, None)
            if name is not None:
                self._links.pop(name, None)
            self._addresses.pop(item.index, None)
            self._routes = set(r for r in self._routes if r.ifindex != item.index)
            return name
        if kind in (RTM_NEWADDR, RTM_DELADDR):
            index, address = item
            current = set(self._addresses.get(index, ()))
            if kind == RTM_NEWADDR:
                current.add(address)
            else:
                current.discard(address)
            self._addresses[index] = frozenset(current)
            return self._names.get(index)
        if kind in (RTM_NEWROUTE, RTM_DELROUTE):
            if kind == RTM_NEWROUTE:
                self._routes.add(item)
            else:
                self._routes.discard(item)
            return self._names.get(item.ifindex)
        return None


class NetlinkMonitor(object):
    """Reads link/address/route events in a thread and folds them into a NetlinkView.

    ``on_change(names)`` is called (in the monitor thread) with the set of interface
    names each batch touched; ``on_overflow()`` when the kernel dropped events (ENOBUFS),
    after which the view must be re-dumped.
    """

    def __init__(self, view, on_change, on_overflow):
        self.view = view
        self.on_change = on_change
        self.on_overflow = on_overflow
        self._reading = threading.Event()   # cleared while held (see ``held``)
        self._reading.set()
        self._ready = threading.Event()
        self._error = None
        self._sock = None
        self._thread = threading.Thread(target=self._run, name="netlink-monitor")
        self._thread.daemon = True

    def start(self, timeout=10.0):
        """Start listening; returns once subscribed, so a dump taken afterwards misses
        nothing."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise KernelError("netlink monitor did not start within %.0f s" % timeout)
        if self._error is not None:
            raise KernelError("netlink monitor failed to start: %s" % self._error)

    def is_alive(self):
        return self._thread.is_alive()

    @contextlib.contextmanager
    def held(self):
        """While inside, the monitor reads no events: the kernel queues them in the
        socket's buffer (MONITOR_RCVBUF; overflowing it is the ENOBUFS path: a resync)
        and they are folded into the view, and ``on_change`` called, once it is left.

        A round holds it while it writes. Each address it adds comes back as three or
        four events; decoded there and then, they take turns with the writes for the
        interpreter: 1,000 addresses, ~15-30 ms of the kernel's work, took 40-100 ms
        with the monitor reading along. The round planned from the view it had; the
        events are the next round's news either way. One holder at a time (the kernel
        thread)."""
        self._reading.clear()
        try:
            yield
        finally:
            self._reading.set()

    def fold_pending(self):
        """Fold the events queued in the socket now, without waiting for more, and call
        ``on_change`` for them: for a round the monitor's own thread runs (it reads
        nothing meanwhile). From any other thread, nothing: the monitor folds them."""
        if threading.current_thread() is not self._thread or self._sock is None:
            return
        while True:
            try:
                data = self._read(self._sock, socket.MSG_DONTWAIT)
            except OSError:   # nothing queued (EAGAIN); else the monitor's read meets it
                return
            if data is not None:
                self._fold(data)

    def _read(self, sock, flags=0):
        """One read of events; None when the kernel had dropped some (ENOBUFS: said, and
        the view re-read through ``on_overflow``)."""
        try:
            return sock.recv(RECV_SIZE, flags)
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
        log.warning("netlink events were dropped (ENOBUFS); re-reading the kernel")
        self.on_overflow()
        return None

    def _run(self):
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
            for option in (SO_RCVBUFFORCE, SO_RCVBUF):  # FORCE: above rmem_max, as root
                try:
                    sock.setsockopt(SOL_SOCKET, option, MONITOR_RCVBUF)
                    break
                except OSError:
                    log.debug("could not enlarge the netlink receive buffer", exc_info=True)
            sock.bind((0, GROUPS))
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self._sock = sock
        self._ready.set()
        while True:
            data = self._read(sock)
            if data is None:
                continue
            self._reading.wait()   # held meanwhile: this one too is folded in afterwards
            self._fold(data)

    def _fold(self, data):
        """Fold one read's events into the view; ``on_change`` with the names they
        touched (which may run a round in this thread: Engine.request_here)."""
        names = set()
        try:
            for header, start, end in messages(data):
                item = decode(header.type, data, start, end)
                if item is not None:
                    name = self.view.apply(header.type, item)
                    if name:
                        names.add(name)
        except (KernelError, struct.error, ValueError):
            log.warning("ignoring a malformed netlink event", exc_info=True)
        if names:
            self.on_change(names)


class Netlink(object):
    """Idempotent netlink verbs. Use from one thread only."""

    def __init__(self):
        self._sock = None   # the request socket, opened on first use and kept
        self._ipr = None    # pyroute2, for source_address's lookups only

    def close(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        ipr, self._ipr = self._ipr, None
        if ipr is not None:
            ipr.close()

    def _socket(self):
        if self._sock is None:
            try:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
                sock.settimeout(REQUEST_TIMEOUT)
                sock.bind((0, 0))
            except OSError as exc:
                raise KernelError("netlink: cannot open a socket: %s" % _strerror(exc.errno),
                                  errno=exc.errno)
            self._sock = sock
        return self._sock

    def apply(self, ops):
        """Apply planner operations (AddAddress, RemoveAddress, AddRoute) in order, up to
        BATCH requests per send; returns one entry per operation: None when it is done
        (or was already so, or its link is gone: the next round sees that), else the
        KernelError that says why it failed. One failing operation does not stop the
        others: the kernel acknowledges each request on its own."""
        results = [None] * len(ops)
        for first in range(0, len(ops), BATCH):
            chunk = list(enumerate(ops[first:first + BATCH], first))
            codes = self._send(chunk)
            for (i, op), code in zip(chunk, codes):
                benign = request(op)[3]
                if code in (0, benign, errno.ENODEV):
                    continue
                results[i] = KernelError("%s: %s" % (_describe(op), _strerror(code)),
                                         errno=code)
        return results

    def _send(self, chunk):
        """Send one request per (index, op) of ``chunk`` in one datagram and wait for
        their acknowledgements; returns their codes in order (an errno each, 0 = done)."""
        sock = self._socket()
        pending, order, parts = {}, [], []
        for _i, op in chunk:
            kind, flags, body, _benign = request(op)
            seq, data = message(kind, NLM_F_ACK | flags, body)
            pending[seq] = None
            order.append(seq)
            parts.append(data)
        try:
            sock.send(b"".join(parts))
            waiting = len(order)
            while waiting:
                waiting -= acknowledgements(sock.recv(RECV_SIZE), pending)
        except (OSError, socket.timeout) as exc:
            # Lost acknowledgements (a timeout, a full receive buffer): what is unknown
            # counts as failed, and a fresh socket leaves the late ones behind; the next
            # round observes what the kernel did.
            code = errno.ETIMEDOUT if isinstance(exc, socket.timeout) else \
                (exc.errno or errno.EIO)
            log.warning("netlink requests: %s", _strerror(code))
            self.close()
            return [code if pending[seq] is None else pending[seq] for seq in order]
        return [pending[seq] for seq in order]

    def _one(self, op):
        error = self.apply([op])[0]
        if error is not None:
            raise error

    def dump(self):
        """(links, [(index, IPv4Interface)], routes) as the kernel has them now."""
        return dump_links(), dump_addresses(), dump_routes()

    def add_address(self, ifindex, address):
        self._one(P.AddAddress(None, ifindex, address))

    def remove_address(self, ifindex, address):
        self._one(P.RemoveAddress(None, ifindex, address))

    def add_route(self, ifindex, network, source):
        self._one(P.AddRoute(None, ifindex, network, source))

    def source_address(self, network):
        """The address this host sends from towards ``network`` (an IPv4Network), as
        ``ip route get`` says for its first host (for 0.0.0.0/0: towards the default
        route's next hop); None when the host has no route there. A lookup: nothing is
        sent, nothing is changed."""
        # pyroute2 (~0.13 s to import) only here, when a gateway has inbound sources
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError
        if self._ipr is None:
            self._ipr = IPRoute()
        try:
            if network.prefixlen == 0:
                hops = [m.get_attr("RTA_GATEWAY") for m in
                        self._ipr.get_default_routes(family=socket.AF_INET, table=MAIN_TABLE)]
                hops = [h for h in hops if h]
                if not hops:
                    return None
                target = hops[0]
            else:
                target = str(network.network_address + (1 if network.prefixlen < 31 else 0))
            for msg in self._ipr.route("get", dst=target):
                src = msg.get_attr("RTA_PREFSRC")
                if src:
                    return ipaddress.IPv4Address(src)
        except NetlinkError:
            pass  # ENETUNREACH and the like: no route
        return None


def _strerror(code):
    try:
        return "%s (errno %d)" % (os.strerror(code), code)
    except (ValueError, TypeError):
        return "errno %s" % code
