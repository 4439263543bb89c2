"""Links, IPv4 addresses and routes through netlink.

``NetlinkView`` is an in-memory mirror of the kernel's links, IPv4 addresses and
main-table IPv4 routes, loaded by one dump and then kept current by netlink events
(``NetlinkMonitor``), so a reconcile round observes the network in microseconds instead
of dumping it. Dumps and events are the same rtnetlink messages, and one decoder
(``decode``) reads both. ``Netlink`` holds the idempotent verbs (through pyroute2):
adding what exists or removing what is gone is success, not an error.
"""
import errno
import ipaddress
import itertools
import logging
import os
import socket
import struct
import threading
from collections import namedtuple

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

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
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE
IFLA_IFNAME, IFLA_LINKINFO, IFLA_EXT_MASK = 3, 18, 29
IFLA_INFO_KIND = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_TABLE = 1, 4, 15
RTEXT_FILTER_SKIP_STATS = 1 << 3
SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE = 1, 8, 33
MONITOR_RCVBUF = 8 * 1024 * 1024
RECV_SIZE = 1 << 16     # a dump reply is at most 32 KiB, an event one message
DUMP_TIMEOUT = 5.0      # seconds without a reply before a dump fails
DUMP_ATTEMPTS = 5       # takes of a dump the kernel flags as interrupted, before giving up
_NLMSGHDR = struct.Struct("=IHHII")    # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")   # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBi")    # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")    # family, dst_len, src_len, tos, table, proto,
#                                         scope, type, flags
_RTATTR = struct.Struct("=HH")          # len, type

Header = namedtuple("Header", "length type flags seq pid")


# ---- the decoder: one for dumps and events ---------------------------------------------
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
        family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, start)
        if family != AF_UNSPEC:
            return None
        attrs = _attrs(data, start + _IFINFOMSG.size, end)
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


def _attrs(data, pos, end):
    """{type: raw value} of the rtattrs between pos and end."""
    attrs = {}
    while pos + _RTATTR.size <= end:
        rta_len, rta_type = _RTATTR.unpack_from(data, pos)
        if rta_len < _RTATTR.size:
            break
        attrs[rta_type] = data[pos + _RTATTR.size:pos + rta_len]
        pos += (rta_len + 3) & ~3
    return attrs


# ---- dumps -------------------------------------------------------------------------------
_sequence = itertools.count(1)


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
        seq, port = next(_sequence) & 0xFFFFFFFF, sock.getsockname()[0]
        sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(request_body), request_type,
                                 NLM_F_REQUEST | NLM_F_DUMP, seq, port) + request_body)
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
    return _dump(RTM_GETLINK, _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + mask, RTM_NEWLINK)


def dump_addresses():
    return _dump(RTM_GETADDR, _IFADDRMSG.pack(AF_INET, 0, 0, 0, 0), RTM_NEWADDR)


def dump_routes():
    return _dump(RTM_GETROUTE, _RTMSG.pack(AF_INET, 0, 0, 0, 0, 0, 0, 0, 0), RTM_NEWROUTE)


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
        """(generation, links, addresses, routes): copies for one planning round."""
        with self._lock:
            return (self.generation, dict(self._links), dict(self._addresses),
                    set(self._routes))

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
        self._ready = threading.Event()
        self._error = None
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
        self._ready.set()
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    log.warning("netlink events were dropped (ENOBUFS); re-reading the kernel")
                    self.on_overflow()
                    continue
                raise
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
        self._ipr = IPRoute()

    def close(self):
        self._ipr.close()

    def dump(self):
        """(links, [(index, IPv4Interface)], routes) as the kernel has them now."""
        return dump_links(), dump_addresses(), dump_routes()

    def add_address(self, ifindex, address):
        self._call(("add address", address), errno.EEXIST,
                   self._ipr.addr, "add", index=ifindex, address=str(address.ip),
                   prefixlen=address.network.prefixlen,
                   broadcast=str(address.network.broadcast_address))

    def remove_address(self, ifindex, address):
        self._call(("remove address", address), errno.EADDRNOTAVAIL,
                   self._ipr.addr, "del", index=ifindex, address=str(address.ip),
                   prefixlen=address.network.prefixlen)

    def add_route(self, ifindex, network, source):
        self._call(("add route", network), errno.EEXIST,
                   self._ipr.route, "add", dst=str(network.network_address),
                   dst_len=network.prefixlen, oif=ifindex, prefsrc=str(source),
                   scope=RT_SCOPE_LINK, table=MAIN_TABLE)

    def source_address(self, network):
        """The address this host sends from towards ``network`` (an IPv4Network), as
        ``ip route get`` says for its first host (for 0.0.0.0/0: towards the default
        route's next hop); None when the host has no route there. A lookup: nothing is
        sent, nothing is changed."""
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

    @staticmethod
    def _call(what, benign, func, *args, **kwargs):
        try:
            func(*args, **kwargs)
        except NetlinkError as exc:
            if exc.code == benign:
                return
            if exc.code == errno.ENODEV:
                # The bridge went away between observation and now: the next round (on
                # the RTM_DELLINK event) drops it; nothing to do.
                return
            raise KernelError("%s %s: %s" % (what[0], what[1], _strerror(exc.code)),
                              errno=exc.code)


def _strerror(code):
    try:
        return "%s (errno %d)" % (os.strerror(code), code)
    except (ValueError, TypeError):
        return "errno %s" % code
