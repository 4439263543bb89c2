"""Gateway model and the validation of every value a user can give it.

Pure: no I/O. Every parser raises GatewayInvalid naming the field and saying what would
be accepted instead, so config files, ``xe`` values and API bodies get the same messages.

Port forwards have one text form, shared by the config file and XAPI's other_config
(where ``xe network-param-set`` must be able to write it, so no spaces or quotes are
needed; xe splits ``key=value`` at the first '=' only):

    PROTO:PORT=ADDRESS[:TO_PORT][,PROTO:PORT=ADDRESS[:TO_PORT]...]
    tcp:8080=172.16.1.10:80,udp:5353=172.16.1.11:53

PROTO is tcp or udp (any case), PORT the port on the host's own addresses, ADDRESS a host
of the gateway's subnet and TO_PORT its port (default: PORT). Blanks around entries are
ignored; an empty text means no forwards. ``format_forwards`` writes the canonical form:
lower case, sorted by protocol and port, TO_PORT always written.

This module is the one home of what a gateway accepts. The config file, ``xe`` values
(other_config), API bodies and topology files differ in syntax only (text, JSON, YAML):
each hands its values to the parsers here and to ``check_gateway``, so they accept and
refuse the same values with the same sentences. Decided once for all of them: the
protocol in any case (written lower case), the destination port optional (default: the
same port), a subnet outside PRIVATE_RANGES only with ``public``. What gateways may not
share (a subnet, a forwarded port) is agent.core.conflicts'.
"""
import ipaddress
import re
from collections import namedtuple

from agent.errors import GatewayInvalid

# Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no '/', ':' or white space.
# We accept the conservative set XAPI itself produces and admins type.
_IFNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,14}$")
# The host internal management network (HIMN) bridge: XAPI owns its addresses.
RESERVED_BRIDGES = frozenset(["xenapi"])
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
MIN_PREFIX = 8
MAX_PREFIX = 30
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")

# Where a gateway's subnet may be without ``public``: the private ranges of RFC 1918 and
# the shared address space of RFC 6598 (carrier-grade NAT). Anything else may be routed on
# the internet, and a gateway there would hide (or hijack) real hosts from the VMs.
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))

PROTOCOLS = ("tcp", "udp")
# Ports Dom0 serves itself. A forward takes a port on every address of the host (and for
# Dom0's own processes too), so one of these would cut the host off from its
# administrators (SSH) or from XenCenter and the rest of the pool (XAPI).
RESERVED_PORTS = {("tcp", 22): "SSH", ("tcp", 80): "XAPI (HTTP)", ("tcp", 443): "XAPI (HTTPS)"}
_FORWARD_RE = re.compile(r"^([A-Za-z]+):([^=:]*)=([^:]*)(?::(.*))?$")

_TRUE = frozenset(["1", "yes", "true", "on"])
_FALSE = frozenset(["0", "no", "false", "off"])


class Forward(namedtuple("Forward", "proto port to_address to_port")):
    """A published service: connections to ``port`` (``proto``) on the host's own
    addresses go to ``to_address`` (an IPv4Address in the gateway's subnet), ``to_port``."""

    __slots__ = ()

    @property
    def to(self):
        return "%s:%d" % (self.to_address, self.to_port)

    def key(self):
        """``tcp:8080``: what the forward takes on the host."""
        return "%s:%d" % (self.proto, self.port)

    def as_dict(self):
        """The forward as the API and a topology file write it."""
        return {"proto": self.proto, "port": self.port, "to": self.to}

    def __str__(self):
        return "%s:%d=%s" % (self.proto, self.port, self.to)


class Gateway(namedtuple("Gateway", "name bridge address nat source forwards public "
                                   "inbound host")):
    """A desired gateway: ``address`` (an IPv4Interface) on ``bridge``, NAT if ``nat``,
    ``forwards`` (a tuple of Forward, sorted by protocol and port; default none),
    ``public`` (True: its subnet may be outside the private and shared ranges) and
    ``inbound`` (a tuple of IPv4Network, sorted: the sources whose new connections into
    the subnet are routed in, not NATed; default none) and ``host`` (the pool host, uuid
    or name_label, pinned to serve it; "" when not pinned: agent.core.placement decides).

    ``source`` says where it came from ("config", later "xapi:<network uuid>") so that
    status and logs can point the user at the place to fix it.
    """

    __slots__ = ()

    @property
    def network(self):
        return self.address.network

    @property
    def ip(self):
        return self.address.ip

    def describe(self):
        return "%s (%s on %s%s%s%s%s%s)" % (
            self.name, self.address, self.bridge, ", NAT" if self.nat else "",
            ", public" if self.public else "",
            ", forwards %s" % format_forwards(self.forwards) if self.forwards else "",
            ", inbound from %s" % format_inbound(self.inbound) if self.inbound else "",
            ", pinned to host %s" % self.host if self.host else "")


# Callers that predate forwards build Gateway(name, bridge, address, nat, source).
Gateway.__new__.__defaults__ = ((), False, (), "")


def parse_name(value, field="name"):
    value = _text(value, field)
    if not _NAME_RE.match(value):
        raise GatewayInvalid(
            "%s %r is not a valid name: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit" % (field, value), field=field, value=value)
    return value


def parse_bridge(value, field="bridge"):
    value = _text(value, field)
    if not _IFNAME_RE.match(value):
        raise GatewayInvalid(
            "%s %r is not a valid interface name: 1-15 characters, letters, digits, "
            "'.', '_' or '-'" % (field, value), field=field, value=value)
    if value in RESERVED_BRIDGES:
        raise GatewayInvalid(
            "%s %r is the host internal management network, which XAPI manages; "
            "it cannot be a gateway" % (field, value), field=field, value=value)
    return value


HOST_MAX = 255


def parse_host(value, field="host"):
    """A gateway's pin: the pool host meant to serve it, by uuid or name_label (a pool's
    name_labels may hold spaces). Only its syntax is checked here; whether it names a host
    of the pool is agent.core.placement's question, asked with the pool's records. Empty
    (or blank) text is no pin, "" (``host =`` in a file, ``xapi-gateway.host=`` in xe)."""
    if isinstance(value, str) and not value.strip():
        return ""
    value = _text(value, field)
    if len(value) > HOST_MAX or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise GatewayInvalid("%s %r is not a host: give a host's uuid or name_label (at most "
                             "%d characters, no control characters)" % (field, value, HOST_MAX),
                             field=field, value=value)
    return value


# VLAN links between private networks (agent.core.links): a network declared a VLAN of a
# parent network, ``PARENT:TAG`` in its other_config (``xapi-gateway.link``), where PARENT is
# the parent network's uuid; API bodies and topology files give the parent and the tag
# apart (and may name the parent, which the service layer turns into its uuid).
VLAN_TAGS = (1, 4094)
_DIGITS_RE = re.compile(r"^[0-9]+$")
PARENT_MAX = 255


def parse_tag(value, field="tag"):
    """A link's VLAN tag, 1 to 4094 (0 is no tag, 4095 is reserved): an int (not a bool),
    or its decimal digits as text."""
    low, high = VLAN_TAGS
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise GatewayInvalid("%s %r is not a VLAN tag: use a whole number from %d to %d"
                             % (field, value, low, high), field=field, value=repr(value))
    if isinstance(value, str):
        text = _text(value, field)
        if not _DIGITS_RE.match(text):
            raise GatewayInvalid("%s %r is not a VLAN tag: use a whole number from %d to %d"
                                 % (field, text, low, high), field=field, value=text)
        value = int(text)
    if not low <= value <= high:
        raise GatewayInvalid("%s %d is not a VLAN tag: use a whole number from %d to %d (0 "
                             "is untagged, 4095 reserved)" % (field, value, low, high),
                             field=field, value=str(value))
    return value


def parse_parent(value, field="parent"):
    """A link's parent network as given: a uuid (other_config), or in API bodies and
    topology files also a name (a name_label may hold spaces); syntax only (which network
    it is: agent.core.links)."""
    text = _text(value, field)
    if len(text) > PARENT_MAX or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise GatewayInvalid("%s %r is not a network: give the parent network's uuid (or, "
                             "through the API or a topology, its name; at most %d "
                             "characters, no control characters)" % (field, text, PARENT_MAX),
                             field=field, value=text)
    return text


def parse_link(value, field="link"):
    """``PARENT:TAG`` (other_config's form, what ``xe network-param-set`` writes) ->
    (parent uuid as text, tag)."""
    text = _text(value, field)
    parent, sep, tag = text.rpartition(":")
    if not sep or not parent.strip() or not tag.strip():
        raise GatewayInvalid("%s %r is not PARENT:TAG: write the parent network's uuid, a "
                             "colon and the VLAN tag, for example "
                             "3f2d54a0-6c1e-4b7a-9d55-0c4f7e2b8a11:102" % (field, text),
                             field=field, value=text)
    return parse_parent(parent, field + " parent"), parse_tag(tag, field + " tag")


def format_link(parent, tag):
    """The canonical text of a link (what other_config stores)."""
    return "%s:%d" % (parent, tag)


# A VXLAN network identifier: 24 bits on the wire (RFC 7348); 0 is left out, since OVS
# and Xen Orchestra's controller read key 0 as "no key".
VNI_RANGE = (1, (1 << 24) - 1)


def parse_vni(value, field="vni"):
    """A VXLAN network identifier, 1 to 16777215: an int (not a bool), or its decimal
    digits as text (what other_config stores). Whether another network uses it is
    agent.core.tunnels' question, asked with the pool's records."""
    return _whole(value, field, VNI_RANGE, "a VNI")


# Where a private network is one segment: on one host (XAPI's single-server private
# network, the default) or across the pool (XAPI's tunnels, agent.core.tunnels).
SPANS = ("host", "pool")


def parse_span(value, field="span"):
    text = _text(value, field).lower()
    if text not in SPANS:
        raise GatewayInvalid("%s %r is not a span: use host (one host's private network) or "
                             "pool (a private network across the pool's hosts, through "
                             "VXLAN tunnels)" % (field, value.strip()), field=field,
                             value=value.strip())
    return text


def parse_address(value, field="address"):
    """Parse a gateway address such as ``172.16.1.1/24`` into an IPv4Interface."""
    value = _text(value, field)
    if "/" not in value:
        raise GatewayInvalid(
            "%s %r needs a prefix length, for example %s/24" % (field, value, value),
            field=field, value=value)
    try:
        iface = ipaddress.IPv4Interface(value)
    except (ValueError, ipaddress.AddressValueError, ipaddress.NetmaskValueError) as exc:
        raise GatewayInvalid(
            "%s %r is not an IPv4 address with prefix (like 172.16.1.1/24): %s"
            % (field, value, exc), field=field, value=value)
    prefix = iface.network.prefixlen
    if not MIN_PREFIX <= prefix <= MAX_PREFIX:
        raise GatewayInvalid(
            "%s %r has prefix /%d; a gateway subnet must be between /%d and /%d"
            % (field, value, prefix, MIN_PREFIX, MAX_PREFIX), field=field, value=value)
    ip = iface.ip
    for test, what in ((ip.is_loopback, "a loopback"), (ip.is_link_local, "a link-local"),
                       (ip.is_multicast, "a multicast"), (ip.is_unspecified, "the unspecified"),
                       (ip.is_reserved, "a reserved"),
                       (ip in _THIS_NETWORK, "a 'this network' (0.0.0.0/8)")):
        if test:
            raise GatewayInvalid("%s %r is %s address" % (field, value, what),
                                 field=field, value=value)
    if ip == iface.network.network_address:
        raise GatewayInvalid(
            "%s %r is the network address of %s (host bits all zero); use a host address "
            "such as %s/%d" % (field, value, iface.network, iface.network.network_address + 1,
                               prefix), field=field, value=value)
    if ip == iface.network.broadcast_address:
        raise GatewayInvalid(
            "%s %r is the broadcast address of %s; use a host address such as %s/%d"
            % (field, value, iface.network, iface.network.network_address + 1, prefix),
            field=field, value=value)
    return iface


def parse_bool(value, field):
    if isinstance(value, bool):
        return value
    text = _text(value, field).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise GatewayInvalid("%s %r is not a boolean: use yes/no, true/false, on/off or 1/0"
                         % (field, value), field=field, value=value)


def parse_proto(value, field="proto"):
    text = _text(value, field).lower()
    if text not in PROTOCOLS:
        raise GatewayInvalid("%s %r is not a protocol a forward can use: use tcp or udp"
                             % (field, value.strip()), field=field, value=value.strip())
    return text


def parse_port(value, field="port"):
    """A port from 1 to 65535: an int (not a bool), or its decimal digits as text."""
    return _whole(value, field, (1, 65535), "a port")


def _whole(value, field, limits, noun):
    """A whole number within ``limits`` (low, high): an int (not a bool), or its decimal
    digits as text; the errors call it ``noun`` ("a port")."""
    low, high = limits
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise GatewayInvalid("%s must be a whole number from %d to %d, not %s"
                             % (field, low, high, type(value).__name__), field=field,
                             value=repr(value))
    if isinstance(value, str):
        text = _text(value, field)
        if not _DIGITS_RE.match(text) or len(text) > len(str(high)):
            raise GatewayInvalid("%s %r is not %s: use a whole number from %d to %d"
                                 % (field, text, noun, low, high), field=field, value=text)
        value = int(text)
    if not low <= value <= high:
        raise GatewayInvalid("%s %d is out of range: use a whole number from %d to %d"
                             % (field, value, low, high), field=field, value=str(value))
    return value


def parse_target(value, field="to", default_port=None):
    """``ADDRESS:PORT`` (or ``ADDRESS`` when ``default_port`` is given) of a forward's
    destination: (IPv4Address, port). Whether it is in the subnet is check_forwards'."""
    text = _text(value, field)
    address, sep, port = text.partition(":")
    if not sep and default_port is None:
        raise GatewayInvalid("%s %r needs a port: write ADDRESS:PORT, for example "
                             "172.16.1.10:80" % (field, text), field=field, value=text)
    return _ip(address, field, text), parse_port(port, field) if sep else default_port


def parse_forward(proto, port, to, field="forward"):
    """A Forward from its three values (as an API body gives them); errors name
    ``<field>.proto``, ``<field>.port`` or ``<field>.to``."""
    proto = parse_proto(proto, field + ".proto")
    port = parse_port(port, field + ".port")
    to_address, to_port = parse_target(to, field + ".to", default_port=port)
    return Forward(proto, port, to_address, to_port)


def parse_forwards(value, field="forwards"):
    """Forwards from their text form (see the module docstring), syntax only: where the
    destinations are is checked against the gateway's address by check_forwards."""
    if not isinstance(value, str):
        raise GatewayInvalid("%s must be a string, not %s" % (field, type(value).__name__),
                             field=field, value=repr(value))
    if not value.strip():
        return ()
    forwards = []
    for number, entry in enumerate(value.split(","), 1):
        entry = entry.strip()
        try:
            match = _FORWARD_RE.match(entry)
            if match is None:
                raise GatewayInvalid("write PROTO:PORT=ADDRESS:PORT, for example "
                                     "tcp:8080=172.16.1.10:80, and separate entries with "
                                     "single commas")
            proto, port, address, to_port = match.groups()
            proto = parse_proto(proto, "protocol")
            port = parse_port(port, "port")
            to_address = _ip(address, "destination", entry.split("=", 1)[1])
            to_port = port if to_port is None else parse_port(to_port, "destination port")
        except GatewayInvalid as exc:
            raise GatewayInvalid("%s entry %d %r: %s" % (field, number, entry, exc),
                                 field=field, value=entry)
        forwards.append(Forward(proto, port, to_address, to_port))
    return tuple(forwards)


def check_forwards(forwards, address, field="forwards", item_field=None):
    """Forwards checked against the gateway ``address`` (an IPv4Interface), sorted by
    protocol and port. Each destination must be a host of the subnet other than the
    gateway itself (DNAT to the gateway would loop back into Dom0); a (protocol, port)
    may be published once, and not on a port Dom0 serves itself (RESERVED_PORTS).

    Errors name ``field``, or, when ``item_field`` is given (API bodies:
    ``gateway.forwards[%d]``), the forward's own ``.port`` or ``.to``."""
    def name(index, part):
        return field if item_field is None else (item_field % index) + "." + part

    network = address.network
    seen = {}
    for index, fwd in enumerate(forwards):
        service = RESERVED_PORTS.get((fwd.proto, fwd.port))
        if service is not None:
            where = name(index, "port")
            raise GatewayInvalid("%s: %s port %d is Dom0's own %s port; a forward there "
                                 "would cut the host off from it" % (where, fwd.proto,
                                                                     fwd.port, service),
                                 field=where, value=str(fwd))
        problem = None
        if fwd.to_address not in network:
            problem = "outside the gateway's subnet %s" % network
        elif fwd.to_address == address.ip:
            problem = "the gateway's own address; forward to a host of %s" % network
        elif fwd.to_address == network.network_address:
            problem = "the network address of %s" % network
        elif fwd.to_address == network.broadcast_address:
            problem = "the broadcast address of %s" % network
        if problem is not None:
            if not problem.startswith("the gateway's own"):
                problem += "; forward to a host of %s" % network
            where = name(index, "to")
            raise GatewayInvalid("%s: %s forwards to %s, which is %s"
                                 % (where, fwd, fwd.to_address, problem),
                                 field=where, value=str(fwd))
        other = seen.get((fwd.proto, fwd.port))
        if other is not None:
            where = name(index, "port")
            raise GatewayInvalid("%s: %s port %d is forwarded twice (to %s and to %s); "
                                 "forward each port once"
                                 % (where, fwd.proto, fwd.port, other.to, fwd.to),
                                 field=where, value=str(fwd))
        seen[(fwd.proto, fwd.port)] = fwd
    return tuple(sorted(forwards, key=lambda f: (f.proto, f.port)))


def format_forwards(forwards):
    """The canonical text of ``forwards`` (what other_config stores)."""
    return ",".join(str(f) for f in sorted(forwards, key=lambda f: (f.proto, f.port)))


def check_subnet(address, public, field="address"):
    """Refuse a gateway ``address`` (an IPv4Interface) whose subnet is outside
    PRIVATE_RANGES unless ``public`` says the user means it."""
    network = address.network
    if public or any(network.network_address in r and network.broadcast_address in r
                     for r in PRIVATE_RANGES):
        return
    raise GatewayInvalid(
        "%s %s: subnet %s is outside the private ranges (RFC 1918: 10.0.0.0/8, "
        "172.16.0.0/12, 192.168.0.0/16) and the shared range (RFC 6598: 100.64.0.0/10), so "
        "it may be routed on the internet; mark the gateway public to use it anyway"
        % (field, address, network), field=field, value=str(address))


# Inbound sources: which outside networks may open connections into a gateway's subnet
# (routed through the host, not NATed, so the VMs see the real client address).
#
#     xapi-gateway.inbound=192.0.2.0/24,198.51.100.7/32
#
# Each entry is a network in CIDR form with no host bits set (a bare address means /32).
# The whole Internet (0.0.0.0/0) must be asked for by its own word, ``any``: a typo or a
# copied default route must not open every VM to the world.
ANY = "any"
_EVERYWHERE = ipaddress.IPv4Network("0.0.0.0/0")


def parse_inbound(value, field="inbound"):
    """Inbound sources from their text form (comma-separated) or a list of strings (API
    bodies, topology files): a sorted tuple of IPv4Network, syntax and host bits only;
    their relation to the gateway's subnet is check_inbound's."""
    if isinstance(value, (list, tuple)):
        entries = list(value)
    elif isinstance(value, str):
        entries = [] if not value.strip() else value.split(",")
    else:
        raise GatewayInvalid("%s must be a list of networks or their comma-separated text, "
                             "not %s" % (field, type(value).__name__),
                             field=field, value=repr(value))
    networks = []
    for number, entry in enumerate(entries, 1):
        if isinstance(entry, ipaddress.IPv4Network):
            networks.append(entry)
            continue
        if not isinstance(entry, str) or not entry.strip():
            raise GatewayInvalid("%s entry %d is empty or not text: write networks such as "
                                 "192.0.2.0/24, separated by single commas" % (field, number),
                                 field=field, value=repr(entry))
        text = entry.strip()
        if text.lower() == ANY:
            networks.append(_EVERYWHERE)
            continue
        try:
            net = ipaddress.IPv4Network(text, strict=False)
        except (ValueError, ipaddress.AddressValueError, ipaddress.NetmaskValueError) as exc:
            raise GatewayInvalid("%s entry %d %r is not an IPv4 network such as "
                                 "192.0.2.0/24: %s" % (field, number, text, exc),
                                 field=field, value=text)
        if str(net.network_address) != text.split("/", 1)[0].strip():
            raise GatewayInvalid("%s entry %d %r has host bits set; the network is %s"
                                 % (field, number, text, net), field=field, value=text)
        if net.prefixlen == 0:
            raise GatewayInvalid("%s entry %d %r lets the whole Internet in; write %r if "
                                 "that is really what you mean" % (field, number, text, ANY),
                                 field=field, value=text)
        networks.append(net)
    return tuple(sorted(networks))


def check_inbound(inbound, address, field="inbound"):
    """Inbound sources checked against the gateway ``address`` (an IPv4Interface): none
    may overlap the gateway's own subnet (its hosts reach each other on the bridge), and
    each is listed once (no entry inside another). Returns them sorted."""
    network = address.network
    inbound = tuple(sorted(inbound))
    for net in inbound:
        if net != _EVERYWHERE and net.overlaps(network):
            raise GatewayInvalid("%s: %s overlaps the gateway's own subnet %s; list the "
                                 "outside networks that may connect in" % (field, net, network),
                                 field=field, value=str(net))
    for i, net in enumerate(inbound):
        for other in inbound[i + 1:]:
            if net.overlaps(other):
                outer, inner = (net, other) if net.prefixlen <= other.prefixlen else (other, net)
                raise GatewayInvalid("%s: %s is inside %s; list each source once"
                                     % (field, inner, format_inbound((outer,))),
                                     field=field, value=str(inner))
    return inbound


def format_inbound(inbound):
    """The canonical text of ``inbound`` (what other_config stores): sorted, ``any`` for
    the whole Internet."""
    return ",".join(ANY if net == _EVERYWHERE else str(net) for net in sorted(inbound))


def inbound_routes(network, via):
    """What a user runs on a machine of an inbound source to reach ``network`` (an
    IPv4Network) through the host address ``via``: {system: command}."""
    return {
        "linux": "sudo ip route add %s via %s" % (network, via),
        "macos": "sudo route -n add -net %s %s" % (network, via),
        "windows": "route ADD %s MASK %s %s" % (network.network_address, network.netmask, via),
    }


def check_gateway(address, forwards, public=False, prefix="", item_field=None, inbound=()):
    """The checks of a gateway's values taken together, whatever their syntax was: its
    subnet (check_subnet), its inbound sources (check_inbound, parsed already) and its
    forwards (check_forwards), which it returns sorted. Fields are named
    ``<prefix>address``, ``<prefix>inbound`` and ``<prefix>forwards`` (or ``item_field``)."""
    check_subnet(address, public, prefix + "address")
    check_inbound(inbound, address, prefix + "inbound")
    return check_forwards(tuple(forwards), address, prefix + "forwards", item_field)


def make_gateway(name, bridge, address, nat=True, source="config", forwards=(),
                 public=False, inbound=(), host=None):
    """Build a validated Gateway; raises GatewayInvalid naming the bad field.
    ``forwards``: their text form, or a tuple or list of Forward values; ``inbound``: its
    text form, or a tuple or list of networks (text or IPv4Network); ``host``: the pin's
    text, None when not pinned."""
    name = parse_name(name)
    bridge = parse_bridge(bridge)
    address = parse_address(address)
    nat = parse_bool(nat, "nat")
    public = parse_bool(public, "public")
    if not isinstance(forwards, (tuple, list)):
        forwards = parse_forwards(forwards)  # text; anything else is refused there
    inbound = parse_inbound(inbound)
    host = "" if host is None else parse_host(host)
    return Gateway(name=name, bridge=bridge, address=address, nat=nat, source=source,
                   forwards=check_gateway(address, forwards, public, inbound=inbound),
                   public=public, inbound=inbound, host=host)


def _ip(text, field, shown):
    try:
        return ipaddress.IPv4Address(text.strip())
    except (ValueError, ipaddress.AddressValueError) as exc:
        raise GatewayInvalid("%s %r is not an IPv4 ADDRESS:PORT (like 172.16.1.10:80): %s"
                             % (field, shown, exc), field=field, value=shown)


def _text(value, field):
    if not isinstance(value, str):
        raise GatewayInvalid("%s must be a string, not %s" % (field, type(value).__name__),
                             field=field, value=repr(value))
    value = value.strip()
    if not value:
        raise GatewayInvalid("%s is empty" % field, field=field, value=value)
    return value
