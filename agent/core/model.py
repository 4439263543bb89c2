"""Gateway model and the validation of every value a user can give it.

Pure: no I/O. Every parser raises GatewayInvalid naming the field and saying what would
be accepted instead, so config files, ``xe`` values and API bodies get the same messages.
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

_TRUE = frozenset(["1", "yes", "true", "on"])
_FALSE = frozenset(["0", "no", "false", "off"])


class Gateway(namedtuple("Gateway", "name bridge address nat source")):
    """A desired gateway: ``address`` (an IPv4Interface) on ``bridge``, NAT if ``nat``.

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
        return "%s (%s on %s%s)" % (self.name, self.address, self.bridge, ", NAT" if self.nat else "")


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


def make_gateway(name, bridge, address, nat=True, source="config"):
    """Build a validated Gateway; raises GatewayInvalid naming the bad field."""
    return Gateway(
        name=parse_name(name),
        bridge=parse_bridge(bridge),
        address=parse_address(address),
        nat=parse_bool(nat, "nat"),
        source=source,
    )


def _text(value, field):
    if not isinstance(value, str):
        raise GatewayInvalid("%s must be a string, not %s" % (field, type(value).__name__),
                             field=field, value=repr(value))
    value = value.strip()
    if not value:
        raise GatewayInvalid("%s is empty" % field, field=field, value=value)
    return value
