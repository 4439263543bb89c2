"""Links, IPv4 addresses and routes through netlink (pyroute2).

``NetlinkView`` is an in-memory mirror of the kernel's links, IPv4 addresses and
main-table IPv4 routes, loaded by one dump and then kept current by netlink events
(``NetlinkMonitor``), so a reconcile round observes the network in microseconds instead
of dumping it. ``Netlink`` holds the idempotent verbs: adding what exists or removing what
is gone is success, not an error.
"""
import errno
import ipaddress
import logging
import os
import socket
import struct
import threading

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_LINK

from agent.core import planner as P
from agent.errors import KernelError

log = logging.getLogger(__name__)

AF_INET = 2
IFF_UP = 0x1
MAIN_TABLE = 254
RTN_UNICAST = 1
RT_SCOPE_LINK = 253
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE
MONITOR_RCVBUF = 8 * 1024 * 1024

# For the dumps (see _dump): netlink and rtnetlink constants from the kernel ABI.
NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = (
    16, 18, 20, 22, 24, 26)
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFLA_IFNAME, IFLA_EXT_MASK = 3, 29
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_TABLE = 1, 4, 15
RTEXT_FILTER_SKIP_STATS = 1 << 3
_NLMSGHDR = struct.Struct("=IHHII")    # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")   # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBi")    # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")    # family, dst_len, src_len, tos, table, proto,
#                                         scope, type, flags
_RTATTR = struct.Struct("=HH")          # len, type


def _dump(request_type, request_body, reply_type, parse):
    """One rtnetlink dump on a plain netlink socket; ``parse(data, start, end)`` turns
    each reply message (its body between start and end) into an item or None.

    pyroute2 decodes every attribute of every message (link statistics, per-family
    settings...): for 1,000 bridges that took ~0.4 s and left a ~35 MB peak that the
    allocator keeps. The daemon needs a handful of fields, so the dumps read just those
    (writes and events still go through pyroute2).
    """
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
        sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(request_body), request_type,
                                 NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + request_body)
        items = []
        while True:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    raise KernelError("malformed netlink message in a dump")
                if kind == NLMSG_DONE:
                    return items
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0]
                    raise KernelError("netlink dump failed: %s" % _strerror(code), errno=code)
                if kind == reply_type:
                    item = parse(data, offset + _NLMSGHDR.size, offset + length)
                    if item is not None:
                        items.append(item)
                offset += (length + 3) & ~3
    finally:
        sock.close()


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


def _parse_link(data, start, end):
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, start)
    name = _attrs(data, start + _IFINFOMSG.size, end).get(IFLA_IFNAME, b"")
    return P.Link(index=index, name=name.split(b"\0", 1)[0].decode(), up=bool(flags & IFF_UP))


def _parse_address(data, start, end):
    family, prefixlen, _flags, _scope, index = _IFADDRMSG.unpack_from(data, start)
    if family != AF_INET:
        return None
    attrs = _attrs(data, start + _IFADDRMSG.size, end)
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if raw is None or len(raw) != 4:
        return None
    return index, ipaddress.IPv4Interface((raw, prefixlen))


def _parse_route(data, start, end):
    family, dst_len, _src, _tos, table, _proto, _scope, kind, _flags = _RTMSG.unpack_from(
        data, start)
    attrs = _attrs(data, start + _RTMSG.size, end)
    if RTA_TABLE in attrs:
        table = struct.unpack("=I", attrs[RTA_TABLE][:4])[0]
    if family != AF_INET or table != MAIN_TABLE or kind != RTN_UNICAST or RTA_OIF not in attrs:
        return None  # multipath or blackhole routes: not something a gateway competes with
    dst = attrs.get(RTA_DST, b"\0\0\0\0")
    oif = struct.unpack("=i", attrs[RTA_OIF][:4])[0]
    return P.Route(ipaddress.IPv4Network((dst, dst_len), strict=False), oif)


def dump_links():
    mask = _RTATTR.pack(8, IFLA_EXT_MASK) + struct.pack("=I", RTEXT_FILTER_SKIP_STATS)
    return _dump(RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0) + mask, RTM_NEWLINK, _parse_link)


def dump_addresses():
    return _dump(RTM_GETADDR, _IFADDRMSG.pack(AF_INET, 0, 0, 0, 0), RTM_NEWADDR,
                 _parse_address)


def dump_routes():
    return _dump(RTM_GETROUTE, _RTMSG.pack(AF_INET, 0, 0, 0, 0, 0, 0, 0, 0), RTM_NEWROUTE,
                 _parse_route)


class NetlinkView(object):
    """Thread-safe mirror of links, IPv4 addresses and main-table IPv4 routes."""

    def __init__(self):
        self._lock = threading.Lock()
        self._links = {}       # name -> Link
        self._names = {}       # index -> name
        self._addresses = {}   # index -> frozenset(IPv4Interface)
        self._routes = set()   # Route
        self.generation = 0    # changes whenever the mirror may have changed

    def load(self, links, addresses, routes):
        with self._lock:
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

    def apply(self, msg):
        """Fold one netlink event into the mirror; return the affected interface name."""
        event = msg.get("event")
        with self._lock:
            self.generation += 1
            if event == "RTM_NEWLINK":
                link = _link(msg)
                old = self._names.get(link.index)
                if old is not None and old != link.name:
                    self._links.pop(old, None)
                self._links[link.name] = link
                self._names[link.index] = link.name
                return link.name
            if event == "RTM_DELLINK":
                index = msg["index"]
                name = self._names.pop(index, None)
                if name is not None:
                    self._links.pop(name, None)
                self._addresses.pop(index, None)
                self._routes = set(r for r in self._routes if r.ifindex != index)
                return name
            if event in ("RTM_NEWADDR", "RTM_DELADDR") and msg.get("family") == AF_INET:
                index, address = _address(msg)
                current = set(self._addresses.get(index, ()))
                if event == "RTM_NEWADDR":
                    current.add(address)
                else:
                    current.discard(address)
                self._addresses[index] = frozenset(current)
                return self._names.get(index)
            if event in ("RTM_NEWROUTE", "RTM_DELROUTE") and msg.get("family") == AF_INET:
                route = _route(msg)
                if route is None:
                    return None
                if event == "RTM_NEWROUTE":
                    self._routes.add(route)
                else:
                    self._routes.discard(route)
                return self._names.get(route.ifindex)
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
            sock = IPRoute()
            try:
                sock.setsockopt(1, 8, MONITOR_RCVBUF)  # SOL_SOCKET, SO_RCVBUF
            except Exception:  # pragma: no cover - best effort; the default still works
                log.debug("could not enlarge the netlink receive buffer", exc_info=True)
            sock.bind(groups=GROUPS)
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        while True:
            try:
                messages = sock.get()
            except NetlinkError as exc:
                if exc.code == errno.ENOBUFS:
                    log.warning("netlink events were dropped (ENOBUFS); re-reading the kernel")
                    self.on_overflow()
                    continue
                raise
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    log.warning("netlink events were dropped (ENOBUFS); re-reading the kernel")
                    self.on_overflow()
                    continue
                raise
            names = set()
            for msg in messages:
                try:
                    name = self.view.apply(msg)
                except (KeyError, ValueError, TypeError):
                    log.debug("ignoring netlink message %s", msg.get("event"), exc_info=True)
                    continue
                if name:
                    names.add(name)
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


def _link(msg):
    return P.Link(index=msg["index"], name=msg.get_attr("IFLA_IFNAME"),
                  up=bool(msg["flags"] & IFF_UP))


def _address(msg):
    ip = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    return msg["index"], ipaddress.IPv4Interface("%s/%d" % (ip, msg["prefixlen"]))


def _route(msg):
    table = msg.get_attr("RTA_TABLE") or msg.get("table")
    if table != MAIN_TABLE or msg.get("type") != RTN_UNICAST:
        return None
    oif = msg.get_attr("RTA_OIF")
    if oif is None:
        return None  # multipath or blackhole: not something a gateway competes with
    dst = msg.get_attr("RTA_DST") or "0.0.0.0"
    return P.Route(ipaddress.IPv4Network("%s/%d" % (dst, msg["dst_len"]), strict=False), oif)


def _strerror(code):
    try:
        return "%s (errno %d)" % (os.strerror(code), code)
    except (ValueError, TypeError):
        return "errno %s" % code
