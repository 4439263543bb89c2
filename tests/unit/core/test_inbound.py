"""Inbound sources (agent.core.model): what is accepted, what is refused and why, the
canonical text, the rules they make and the route a user is told to add."""
import ipaddress

import pytest

from agent.core import model, rules
from agent.errors import GatewayInvalid

N = ipaddress.IPv4Network
GW = ipaddress.IPv4Interface("172.16.1.1/24")

VALID = [
    # value, networks, canonical text
    ("", (), ""),
    ("192.0.2.0/24", (N("192.0.2.0/24"),), "192.0.2.0/24"),
    (" 198.51.100.7/32 , 192.0.2.0/24 ", (N("192.0.2.0/24"), N("198.51.100.7/32")),
     "192.0.2.0/24,198.51.100.7/32"),
    ("198.51.100.7", (N("198.51.100.7/32"),), "198.51.100.7/32"),   # a bare address: /32
    ("any", (N("0.0.0.0/0"),), "any"),
    ("ANY", (N("0.0.0.0/0"),), "any"),
    (["10.0.0.0/8", "192.168.0.0/16"], (N("10.0.0.0/8"), N("192.168.0.0/16")),
     "10.0.0.0/8,192.168.0.0/16"),
    ([], (), ""),
]

INVALID = [
    # value, fragments of the message
    ("192.0.2.1/24", ["entry 1 '192.0.2.1/24' has host bits set", "the network is 192.0.2.0/24"]),
    ("0.0.0.0/0", ["lets the whole Internet in", "write 'any'"]),
    ("192.0.2.0/33", ["is not an IPv4 network"]),
    ("example.com", ["is not an IPv4 network"]),
    ("192.0.2.0/24,,198.51.100.0/24", ["entry 2 is empty"]),
    ("2001:db8::/32", ["is not an IPv4 network"]),
    (42, ["must be a list of networks"]),
    ([42], ["entry 1 is empty or not text"]),
]

CHECKS = [
    # inbound, fragments
    ("172.16.0.0/16", ["172.16.0.0/16 overlaps the gateway's own subnet 172.16.1.0/24"]),
    ("172.16.1.128/25", ["overlaps the gateway's own subnet"]),
    ("192.0.2.0/24,192.0.2.7/32", ["192.0.2.7/32 is inside 192.0.2.0/24", "once"]),
    ("any,192.0.2.0/24", ["192.0.2.0/24 is inside any"]),
]


@pytest.mark.parametrize("value, networks, text", VALID)
def test_valid_inbound_and_its_canonical_text(value, networks, text):
    parsed = model.check_inbound(model.parse_inbound(value), GW)
    assert parsed == networks
    assert model.format_inbound(parsed) == text
    assert model.parse_inbound(model.format_inbound(parsed)) == parsed  # round trip


@pytest.mark.parametrize("value, fragments", INVALID)
def test_invalid_inbound_says_why(value, fragments):
    with pytest.raises(GatewayInvalid) as info:
        model.parse_inbound(value)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert info.value.details["field"] == "inbound"


@pytest.mark.parametrize("value, fragments", CHECKS)
def test_inbound_checked_against_the_gateway(value, fragments):
    with pytest.raises(GatewayInvalid) as info:
        model.make_gateway("lab", "xapi1", str(GW), inbound=value)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_any_may_cover_the_gateways_own_subnet():
    gw = model.make_gateway("lab", "xapi1", str(GW), inbound="any")
    assert gw.inbound == (N("0.0.0.0/0"),)


def test_each_source_is_one_accept_into_the_subnet_out_of_the_bridge():
    gw = model.make_gateway("lab", "xapi1", str(GW), inbound="192.0.2.0/24,10.9.0.0/16")
    inbound = [r for r in rules.gateway_rules(gw) if ":inbound:" in r.key]
    assert [(r.table, r.chain, r.src, r.dst, r.in_iface, r.out_iface, r.ctstate, r.target,
             r.key) for r in inbound] == [
        ("filter", "XGW-FORWARD", "10.9.0.0/16", "172.16.1.0/24", None, "xapi1", None,
         "ACCEPT", "xgw:xapi1:inbound:10.9.0.0/16"),
        ("filter", "XGW-FORWARD", "192.0.2.0/24", "172.16.1.0/24", None, "xapi1", None,
         "ACCEPT", "xgw:xapi1:inbound:192.0.2.0/24")]
    anywhere = model.make_gateway("lab", "xapi1", str(GW), inbound="any")
    assert [(r.src, r.dst, r.key) for r in rules.gateway_rules(anywhere)
            if ":inbound:" in r.key] == [(None, "172.16.1.0/24", "xgw:xapi1:inbound:0.0.0.0/0")]
    # and nothing else changes: no NAT rule for them
    plain = model.make_gateway("lab", "xapi1", str(GW))
    assert set(rules.gateway_rules(gw)) - set(inbound) == set(rules.gateway_rules(plain))


def test_the_route_a_user_adds_on_each_system():
    assert model.inbound_routes(N("172.16.1.0/24"), ipaddress.IPv4Address("10.0.0.5")) == {
        "linux": "sudo ip route add 172.16.1.0/24 via 10.0.0.5",
        "macos": "sudo route -n add -net 172.16.1.0/24 10.0.0.5",
        "windows": "route ADD 172.16.1.0 MASK 255.255.255.0 10.0.0.5"}


def test_describe_names_the_sources():
    gw = model.make_gateway("lab", "xapi1", str(GW), inbound="192.0.2.0/24")
    assert gw.describe() == "lab (172.16.1.1/24 on xapi1, NAT, inbound from 192.0.2.0/24)"
