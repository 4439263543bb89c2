"""agent.core.model: every value a user can type, valid and invalid, as tables of cases.

An invalid value must raise GatewayInvalid whose ``details["field"]`` names the field and
whose message says what is wrong and what would be accepted instead.
"""
import ipaddress

import pytest

from agent.core import model
from agent.errors import AgentError, GatewayInvalid


def _raises_invalid(field, call, *args, **kwargs):
    """``call(*args, **kwargs)`` raises GatewayInvalid for ``field``; returns the error."""
    with pytest.raises(GatewayInvalid) as info:
        call(*args, **kwargs)
    err = info.value
    assert isinstance(err, AgentError)
    assert err.code == "gateway_invalid"
    assert err.details["field"] == field
    assert err.to_dict()["details"]["field"] == field
    assert str(err) == err.message
    return err


# ---- parse_address -----------------------------------------------------------------------

VALID_ADDRESSES = [
    # (text, ip, network)
    pytest.param("172.16.1.1/24", "172.16.1.1", "172.16.1.0/24", id="private-24"),
    pytest.param("10.0.0.1/8", "10.0.0.1", "10.0.0.0/8", id="shortest-prefix-8"),
    pytest.param("192.168.0.254/30", "192.168.0.254", "192.168.0.252/30", id="longest-prefix-30"),
    pytest.param("172.16.1.77/24", "172.16.1.77", "172.16.1.0/24", id="any-host-address"),
    pytest.param("  172.16.1.1/24\n", "172.16.1.1", "172.16.1.0/24", id="surrounding-space"),
    pytest.param("100.64.0.1/10", "100.64.0.1", "100.64.0.0/10", id="shared-cgnat-space"),
    pytest.param("172.16.1.1/255.255.255.0", "172.16.1.1", "172.16.1.0/24", id="netmask-form"),
]


@pytest.mark.parametrize("text, ip, network", VALID_ADDRESSES)
def test_parse_address_valid(text, ip, network):
    iface = model.parse_address(text)
    assert isinstance(iface, ipaddress.IPv4Interface)
    assert iface.ip == ipaddress.IPv4Address(ip)
    assert iface.network == ipaddress.IPv4Network(network)


INVALID_ADDRESSES = [
    # (value, fragments the message must contain)
    pytest.param("172.16.1.1", ["needs a prefix length", "172.16.1.1/24"], id="missing-prefix"),
    pytest.param("garbage", ["needs a prefix length"], id="garbage-no-slash"),
    pytest.param("not-an-ip/24", ["not an IPv4 address", "172.16.1.1/24"], id="garbage"),
    pytest.param("256.1.1.1/24", ["not an IPv4 address"], id="octet-out-of-range"),
    pytest.param("172.16.1.1/33", ["not an IPv4 address"], id="prefix-33"),
    pytest.param("172.16.1.1/24/8", ["not an IPv4 address"], id="two-slashes"),
    pytest.param("fd00::1/64", ["not an IPv4 address"], id="ipv6"),
    pytest.param("172.16.1.0/24", ["network address of 172.16.1.0/24", "host bits all zero",
                                   "172.16.1.1/24"], id="network-address"),
    pytest.param("172.16.1.255/24", ["broadcast address of 172.16.1.0/24", "172.16.1.1/24"],
                 id="broadcast-address"),
    pytest.param("192.168.0.252/30", ["network address"], id="network-address-30"),
    pytest.param("172.16.1.1/31", ["/31", "between /8 and /30"], id="prefix-31"),
    pytest.param("172.16.1.1/32", ["/32", "between /8 and /30"], id="prefix-32"),
    pytest.param("10.0.0.1/7", ["/7", "between /8 and /30"], id="prefix-7"),
    pytest.param("10.0.0.1/0", ["/0", "between /8 and /30"], id="prefix-0"),
    pytest.param("127.0.0.1/8", ["loopback"], id="loopback"),
    pytest.param("127.1.2.3/16", ["loopback"], id="loopback-not-first"),
    pytest.param("169.254.1.1/16", ["link-local"], id="link-local"),
    pytest.param("224.0.0.1/8", ["multicast"], id="multicast-8"),
    pytest.param("239.1.1.1/24", ["multicast"], id="multicast-24"),
    pytest.param("0.0.0.0/8", ["unspecified"], id="unspecified"),
    pytest.param("240.0.0.1/8", ["reserved"], id="reserved-240"),
    pytest.param("250.1.2.3/16", ["reserved"], id="reserved-250"),
    pytest.param("", ["is empty"], id="empty"),
    pytest.param("   ", ["is empty"], id="blank"),
    pytest.param(42, ["must be a string", "int"], id="not-a-string"),
    pytest.param(None, ["must be a string", "NoneType"], id="none"),
]


@pytest.mark.parametrize("value, fragments", INVALID_ADDRESSES)
def test_parse_address_invalid(value, fragments):
    err = _raises_invalid("address", model.parse_address, value)
    assert err.message.startswith("address ")
    for fragment in fragments:
        assert fragment in err.message
    if isinstance(value, str) and value.strip():
        assert repr(value.strip()) in err.message
        assert err.details["value"] == value.strip()


def test_parse_address_names_the_given_field():
    err = _raises_invalid("gateway address", model.parse_address, "172.16.1.0/24",
                          "gateway address")
    assert err.message.startswith("gateway address '172.16.1.0/24'")


def test_parse_address_rejects_this_network_range():
    _raises_invalid("address", model.parse_address, "0.1.2.3/8")


# ---- parse_bridge ------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    pytest.param("xapi1", "xapi1", id="xapi1"),
    pytest.param("xapi12", "xapi12", id="xapi12"),
    pytest.param("xenbr0", "xenbr0", id="xenbr0"),
    pytest.param("eth0.100", "eth0.100", id="vlan-dot"),
    pytest.param("br-lab_2", "br-lab_2", id="dash-underscore"),
    pytest.param("a" * 15, "a" * 15, id="15-chars"),
    pytest.param(" xapi1 ", "xapi1", id="surrounding-space"),
])
def test_parse_bridge_valid(text, expected):
    assert model.parse_bridge(text) == expected


@pytest.mark.parametrize("value, fragment", [
    pytest.param("", "is empty", id="empty"),
    pytest.param("a" * 16, "1-15 characters", id="16-chars"),
    pytest.param("xapi1234567890123", "1-15 characters", id="17-chars"),
    pytest.param("xapi/1", "not a valid interface name", id="slash"),
    pytest.param("xapi:1", "not a valid interface name", id="colon-alias"),
    pytest.param("xapi 1", "not a valid interface name", id="space"),
    pytest.param("xapi\t1", "not a valid interface name", id="tab"),
    pytest.param("-xapi1", "not a valid interface name", id="leading-dash"),
    pytest.param(".", "not a valid interface name", id="dot"),
    pytest.param("x\u00e4pi1", "not a valid interface name", id="non-ascii"),
    pytest.param("xenapi", "host internal management network", id="reserved-himn"),
    pytest.param(1, "must be a string", id="not-a-string"),
])
def test_parse_bridge_invalid(value, fragment):
    err = _raises_invalid("bridge", model.parse_bridge, value)
    assert fragment in err.message


# ---- parse_bool --------------------------------------------------------------------------

TRUE_SPELLINGS = ["1", "yes", "true", "on", "YES", "Yes", "True", "TRUE", "On", "ON", " yes "]
FALSE_SPELLINGS = ["0", "no", "false", "off", "NO", "No", "False", "FALSE", "Off", "OFF", "\tno\n"]


@pytest.mark.parametrize("text, expected",
                         [pytest.param(t, True, id="true-%r" % t) for t in TRUE_SPELLINGS]
                         + [pytest.param(t, False, id="false-%r" % t) for t in FALSE_SPELLINGS]
                         + [pytest.param(True, True, id="bool-True"),
                            pytest.param(False, False, id="bool-False")])
def test_parse_bool_valid(text, expected):
    assert model.parse_bool(text, "nat") is expected


@pytest.mark.parametrize("value, fragment", [
    pytest.param("maybe", "not a boolean", id="maybe"),
    pytest.param("2", "not a boolean", id="two"),
    pytest.param("y", "not a boolean", id="y"),
    pytest.param("enabled", "not a boolean", id="enabled"),
    pytest.param("", "is empty", id="empty"),
    pytest.param(1, "must be a string", id="int-1"),
])
def test_parse_bool_invalid(value, fragment):
    err = _raises_invalid("nat", model.parse_bool, value, "nat")
    assert fragment in err.message
    if fragment == "not a boolean":
        assert "yes/no" in err.message and "1/0" in err.message


# ---- parse_name --------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    pytest.param("private", "private", id="word"),
    pytest.param("a", "a", id="one-char"),
    pytest.param("9lives", "9lives", id="leading-digit"),
    pytest.param("net-1.lab_2", "net-1.lab_2", id="punctuation"),
    pytest.param("n" * 64, "n" * 64, id="64-chars"),
    pytest.param(" private ", "private", id="surrounding-space"),
])
def test_parse_name_valid(text, expected):
    assert model.parse_name(text) == expected


@pytest.mark.parametrize("value, fragment", [
    pytest.param("", "is empty", id="empty"),
    pytest.param("n" * 65, "1-64", id="65-chars"),
    pytest.param("-private", "starting with a letter or digit", id="leading-dash"),
    pytest.param("my net", "not a valid name", id="space"),
    pytest.param("a/b", "not a valid name", id="slash"),
    pytest.param("a:b", "not a valid name", id="colon"),
    pytest.param("na\u00efve", "not a valid name", id="non-ascii"),
])
def test_parse_name_invalid(value, fragment):
    err = _raises_invalid("name", model.parse_name, value)
    assert fragment in err.message


def test_parse_name_names_the_given_field():
    err = _raises_invalid("gateway name", model.parse_name, "a b", "gateway name")
    assert err.message.startswith("gateway name 'a b'")


# ---- make_gateway and Gateway ------------------------------------------------------------

def test_make_gateway_defaults():
    gw = model.make_gateway("private", "xapi1", "172.16.1.1/24")
    assert gw == model.Gateway(name="private", bridge="xapi1",
                               address=ipaddress.IPv4Interface("172.16.1.1/24"),
                               nat=True, source="config")


@pytest.mark.parametrize("kwargs, expected", [
    pytest.param(dict(nat="no"), dict(nat=False), id="nat-no"),
    pytest.param(dict(nat=False), dict(nat=False), id="nat-bool"),
    pytest.param(dict(nat="ON"), dict(nat=True), id="nat-ON"),
    pytest.param(dict(source="xapi:1234"), dict(source="xapi:1234"), id="source"),
    pytest.param(dict(name=" lab ", bridge=" xapi2 ", address=" 10.1.0.1/16 "),
                 dict(name="lab", bridge="xapi2",
                      address=ipaddress.IPv4Interface("10.1.0.1/16")), id="values-stripped"),
])
def test_make_gateway_values(kwargs, expected):
    args = dict(name="private", bridge="xapi1", address="172.16.1.1/24")
    args.update(kwargs)
    gw = model.make_gateway(**args)
    for field, value in expected.items():
        assert getattr(gw, field) == value


@pytest.mark.parametrize("kwargs, field", [
    pytest.param(dict(name="a b"), "name", id="bad-name"),
    pytest.param(dict(bridge="xenapi"), "bridge", id="bad-bridge"),
    pytest.param(dict(address="172.16.1.0/24"), "address", id="bad-address"),
    pytest.param(dict(nat="maybe"), "nat", id="bad-nat"),
    pytest.param(dict(nat=None), "nat", id="nat-none"),
])
def test_make_gateway_invalid_names_the_field(kwargs, field):
    args = dict(name="private", bridge="xapi1", address="172.16.1.1/24")
    args.update(kwargs)
    _raises_invalid(field, model.make_gateway, **args)


@pytest.mark.parametrize("address, ip, network", [
    pytest.param("172.16.1.1/24", "172.16.1.1", "172.16.1.0/24", id="24"),
    pytest.param("10.20.30.40/8", "10.20.30.40", "10.0.0.0/8", id="8"),
    pytest.param("192.168.7.9/29", "192.168.7.9", "192.168.7.8/29", id="29"),
])
def test_gateway_network_and_ip(address, ip, network):
    gw = model.make_gateway("g", "xapi1", address)
    assert gw.ip == ipaddress.IPv4Address(ip)
    assert gw.network == ipaddress.IPv4Network(network)
    assert gw.address.ip == gw.ip and gw.address.network == gw.network


@pytest.mark.parametrize("nat, expected", [
    pytest.param(True, "private (172.16.1.1/24 on xapi1, NAT)", id="nat"),
    pytest.param(False, "private (172.16.1.1/24 on xapi1)", id="no-nat"),
])
def test_gateway_describe(nat, expected):
    assert model.make_gateway("private", "xapi1", "172.16.1.1/24", nat=nat).describe() == expected


def test_gateway_is_immutable_and_hashable():
    gw = model.make_gateway("private", "xapi1", "172.16.1.1/24")
    with pytest.raises(AttributeError):
        gw.nat = False
    assert {gw: 1}[model.make_gateway("private", "xapi1", "172.16.1.1/24")] == 1


# ---- forwards ----------------------------------------------------------------------------

def fwd(proto, port, to_address, to_port):
    return model.Forward(proto, port, ipaddress.IPv4Address(to_address), to_port)


VALID_FORWARDS = [
    # (text, forwards as check_forwards returns them, canonical text)
    pytest.param("", (), "", id="empty"),
    pytest.param("   ", (), "", id="blank"),
    pytest.param("tcp:8080=172.16.1.10:80", (fwd("tcp", 8080, "172.16.1.10", 80),),
                 "tcp:8080=172.16.1.10:80", id="one"),
    pytest.param("udp:53=172.16.1.10", (fwd("udp", 53, "172.16.1.10", 53),),
                 "udp:53=172.16.1.10:53", id="destination-port-defaults-to-port"),
    pytest.param("TCP:8080=172.16.1.10:80", (fwd("tcp", 8080, "172.16.1.10", 80),),
                 "tcp:8080=172.16.1.10:80", id="protocol-any-case"),
    pytest.param("udp:5353=172.16.1.11:53, tcp:8080=172.16.1.10:80 ,tcp:2222=172.16.1.10:22",
                 (fwd("tcp", 2222, "172.16.1.10", 22), fwd("tcp", 8080, "172.16.1.10", 80),
                  fwd("udp", 5353, "172.16.1.11", 53)),
                 "tcp:2222=172.16.1.10:22,tcp:8080=172.16.1.10:80,udp:5353=172.16.1.11:53",
                 id="several-sorted-blanks-ignored"),
    pytest.param("tcp:53=172.16.1.10,udp:53=172.16.1.10",
                 (fwd("tcp", 53, "172.16.1.10", 53), fwd("udp", 53, "172.16.1.10", 53)),
                 "tcp:53=172.16.1.10:53,udp:53=172.16.1.10:53", id="same-port-both-protocols"),
    pytest.param("tcp:1=172.16.1.254:65535,tcp:65535=172.16.1.2:1",
                 (fwd("tcp", 1, "172.16.1.254", 65535), fwd("tcp", 65535, "172.16.1.2", 1)),
                 "tcp:1=172.16.1.254:65535,tcp:65535=172.16.1.2:1", id="port-bounds"),
    pytest.param("tcp:8080=172.16.1.10:80,tcp:8081=172.16.1.10:80",
                 (fwd("tcp", 8080, "172.16.1.10", 80), fwd("tcp", 8081, "172.16.1.10", 80)),
                 "tcp:8080=172.16.1.10:80,tcp:8081=172.16.1.10:80",
                 id="one-destination-two-ports"),
    pytest.param("tcp:2022=172.16.1.10:22", (fwd("tcp", 2022, "172.16.1.10", 22),),
                 "tcp:2022=172.16.1.10:22", id="reserved-port-as-destination-is-fine"),
    pytest.param("udp:22=172.16.1.10", (fwd("udp", 22, "172.16.1.10", 22),),
                 "udp:22=172.16.1.10:22", id="udp-22-is-not-ssh"),
]


@pytest.mark.parametrize("text, forwards, canonical", VALID_FORWARDS)
def test_forwards_valid(text, forwards, canonical):
    gateway = model.make_gateway("g", "xapi1", "172.16.1.1/24", forwards=text)
    assert gateway.forwards == forwards
    assert model.format_forwards(gateway.forwards) == canonical
    # the canonical text parses back to the same forwards
    assert model.make_gateway("g", "xapi1", "172.16.1.1/24", forwards=canonical) == gateway


INVALID_FORWARDS = [
    # (text, fragments of the message) on a gateway 172.16.1.1/24
    pytest.param("tcp:8080", ["entry 1 'tcp:8080'", "PROTO:PORT=ADDRESS:PORT"], id="no-dest"),
    pytest.param("tcp8080=172.16.1.10:80", ["entry 1", "PROTO:PORT=ADDRESS:PORT"],
                 id="no-colon"),
    pytest.param("tcp:8080=172.16.1.10:80;udp:53=172.16.1.10", ["entry 1", "not a port"],
                 id="semicolon-separator"),
    pytest.param("tcp:8080=172.16.1.10:80,,udp:53=172.16.1.10", ["entry 2 ''",
                                                                "single commas"],
                 id="empty-entry"),
    pytest.param("tcp:8080=172.16.1.10:80,", ["entry 2 ''"], id="trailing-comma"),
    pytest.param("sctp:80=172.16.1.10", ["protocol 'sctp'", "tcp or udp"], id="sctp"),
    pytest.param("tcp:0=172.16.1.10:80", ["entry 1", "port 0 is out of range", "1 to 65535"],
                 id="port-0"),
    pytest.param("tcp:65536=172.16.1.10:80", ["port 65536 is out of range"], id="port-65536"),
    pytest.param("tcp:http=172.16.1.10:80", ["port 'http' is not a port"], id="port-name"),
    pytest.param("tcp:-1=172.16.1.10:80", ["port '-1' is not a port"], id="port-negative"),
    pytest.param("tcp:=172.16.1.10:80", ["port is empty"], id="port-empty"),
    pytest.param("tcp:8080=172.16.1.10:0", ["destination port 0 is out of range"],
                 id="dest-port-0"),
    pytest.param("tcp:8080=172.16.1.10:80:81", ["destination port '80:81' is not a port"],
                 id="dest-port-twice"),
    pytest.param("tcp:8080=vm1:80", ["destination 'vm1:80' is not an IPv4"], id="dest-name"),
    pytest.param("tcp:8080=172.16.1.300:80", ["is not an IPv4"], id="dest-octet"),
    pytest.param("tcp:8080=:80", ["is not an IPv4"], id="dest-empty"),
    pytest.param("tcp:8080=172.16.2.10:80", ["forwards to 172.16.2.10",
                                             "outside the gateway's subnet 172.16.1.0/24"],
                 id="dest-outside-subnet"),
    pytest.param("tcp:8080=192.0.2.5:80", ["outside the gateway's subnet"], id="dest-elsewhere"),
    pytest.param("tcp:8080=172.16.1.1:80", ["the gateway's own address"], id="dest-gateway"),
    pytest.param("tcp:8080=172.16.1.0:80", ["the network address of 172.16.1.0/24"],
                 id="dest-network"),
    pytest.param("tcp:8080=172.16.1.255:80", ["the broadcast address of 172.16.1.0/24"],
                 id="dest-broadcast"),
    pytest.param("tcp:8080=172.16.1.10:80,tcp:8080=172.16.1.11:80",
                 ["tcp port 8080 is forwarded twice", "172.16.1.10:80", "172.16.1.11:80"],
                 id="same-port-twice"),
    pytest.param("tcp:8080=172.16.1.10:80,TCP:8080=172.16.1.10:80",
                 ["tcp port 8080 is forwarded twice"], id="same-forward-twice"),
    pytest.param("tcp:22=172.16.1.10", ["tcp port 22 is Dom0's own SSH port"], id="ssh"),
    pytest.param("tcp:80=172.16.1.10", ["tcp port 80 is Dom0's own XAPI (HTTP) port"],
                 id="xapi-http"),
    pytest.param("tcp:443=172.16.1.10:8443", ["Dom0's own XAPI (HTTPS) port"], id="xapi-https"),
    pytest.param(8080, ["forwards must be a string", "int"], id="not-a-string"),
]


@pytest.mark.parametrize("value, fragments", INVALID_FORWARDS)
def test_forwards_invalid(value, fragments):
    err = _raises_invalid("forwards", model.make_gateway, "g", "xapi1", "172.16.1.1/24",
                          forwards=value)
    assert err.message.startswith("forwards")
    for fragment in fragments:
        assert fragment in err.message


@pytest.mark.parametrize("proto, port, to, expected", [
    pytest.param("tcp", 8080, "172.16.1.10:80", fwd("tcp", 8080, "172.16.1.10", 80), id="int"),
    pytest.param(" UDP ", "53", "172.16.1.10", fwd("udp", 53, "172.16.1.10", 53),
                 id="text-port-default-destination-port"),
])
def test_parse_forward_valid(proto, port, to, expected):
    assert model.parse_forward(proto, port, to, "f") == expected


@pytest.mark.parametrize("proto, port, to, field, fragment", [
    pytest.param("icmp", 1, "172.16.1.10:1", "f.proto", "tcp or udp", id="proto"),
    pytest.param(None, 1, "172.16.1.10:1", "f.proto", "must be a string", id="proto-none"),
    pytest.param("tcp", True, "172.16.1.10:1", "f.port", "not bool", id="port-bool"),
    pytest.param("tcp", 1.5, "172.16.1.10:1", "f.port", "not float", id="port-float"),
    pytest.param("tcp", 70000, "172.16.1.10:1", "f.port", "out of range", id="port-range"),
    pytest.param("tcp", 1, "172.16.1.10:x", "f.to", "not a port", id="to-port"),
    pytest.param("tcp", 1, "host:1", "f.to", "not an IPv4", id="to-address"),
    pytest.param("tcp", 1, "", "f.to", "is empty", id="to-empty"),
    pytest.param("tcp", 1, 5, "f.to", "must be a string", id="to-int"),
])
def test_parse_forward_invalid_names_the_field(proto, port, to, field, fragment):
    err = _raises_invalid(field, model.parse_forward, proto, port, to, "f")
    assert fragment in err.message


def test_check_forwards_names_the_item_with_item_field():
    address = model.parse_address("172.16.1.1/24")
    ok = model.parse_forward("tcp", 8080, "172.16.1.10:80")
    for bad, field in ((model.parse_forward("tcp", 8081, "10.0.0.1:80"), "g.f[1].to"),
                       (model.parse_forward("tcp", 8080, "172.16.1.11:80"), "g.f[1].port"),
                       (model.parse_forward("tcp", 443, "172.16.1.11"), "g.f[1].port")):
        err = _raises_invalid(field, model.check_forwards, [ok, bad], address,
                              item_field="g.f[%d]")
        assert err.message.startswith(field + ": ")


def test_gateway_without_forwards_is_backward_compatible():
    gw = model.Gateway("private", "xapi1", ipaddress.IPv4Interface("172.16.1.1/24"), True,
                       "config")
    assert gw.forwards == ()
    assert gw == model.make_gateway("private", "xapi1", "172.16.1.1/24")


def test_gateway_describe_with_forwards():
    gw = model.make_gateway("web", "xapi1", "172.16.1.1/24",
                            forwards="udp:53=172.16.1.10,tcp:8080=172.16.1.10:80")
    assert gw.describe() == ("web (172.16.1.1/24 on xapi1, NAT, forwards "
                             "tcp:8080=172.16.1.10:80,udp:53=172.16.1.10:53)")
    assert {gw: 1}[model.make_gateway("web", "xapi1", "172.16.1.1/24",
                                      forwards=gw.forwards)] == 1


def test_make_gateway_accepts_forward_values():
    forwards = [model.parse_forward("udp", 53, "172.16.1.10"),
                model.parse_forward("tcp", 8080, "172.16.1.10:80")]
    gw = model.make_gateway("g", "xapi1", "172.16.1.1/24", forwards=forwards)
    assert gw.forwards == tuple(reversed(forwards))
    _raises_invalid("forwards", model.make_gateway, "g", "xapi2", "172.16.2.1/24",
                    forwards=forwards)
