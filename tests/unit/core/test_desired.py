"""Gateways from XAPI network records: what `xe network-param-set` can say."""
import pytest

from agent.core.desired import gateways_from_networks


def net(uuid, label, bridge, **config):
    return {"uuid": uuid, "name_label": label, "bridge": bridge,
            "other_config": {k.replace("_", "."): v for k, v in config.items()}}


def records(*nets):
    return {"OpaqueRef:%d" % i: n for i, n in enumerate(nets)}


def test_a_gateway_per_network_with_an_address():
    gws, invalid = gateways_from_networks(records(
        net("aaaa1111-x", "private", "xapi1", **{"xapi-gateway_address": "172.16.0.1/24"}),
        net("bbbb2222-x", "pxe", "xapi0", **{"xapi-gateway_address": "10.20.0.1/24",
                                             "xapi-gateway_nat": "false"}),
        net("cccc3333-x", "br100", "xapi2")))  # no keys: not ours
    assert invalid == {}
    assert sorted(gws) == ["private", "pxe"]
    assert (gws["private"].bridge, str(gws["private"].address), gws["private"].nat) == (
        "xapi1", "172.16.0.1/24", True)
    assert gws["pxe"].nat is False and gws["pxe"].source == "xapi:bbbb2222-x"


@pytest.mark.parametrize("config,fragment", [
    ({"xapi-gateway_address": "172.16.0.0/24"}, "host bits all zero"),
    ({"xapi-gateway_address": "nonsense"}, "needs a prefix length"),
    ({"xapi-gateway_address": "172.16.0.1/24", "xapi-gateway_nat": "maybe"}, "not a boolean"),
    ({"xapi-gateway_nat": "true"}, "xapi-gateway.address is missing"),
    ({"xapi-gateway_address": "172.16.0.1/24", "xapi-gateway_adress": "x"}, "unknown key"),
])
def test_invalid_values_are_reported_and_do_not_stop_others(config, fragment):
    gws, invalid = gateways_from_networks(records(
        net("aaaa1111-x", "broken", "xapi5", **config),
        net("bbbb2222-x", "fine", "xapi6", **{"xapi-gateway_address": "172.16.9.1/24"})))
    assert list(gws) == ["fine"]
    bridge, reason = invalid["broken"]
    assert bridge == "xapi5" and fragment in reason and "aaaa1111-x" in reason


def test_names_fall_back_to_the_uuid_when_labels_clash_or_are_not_names():
    gws, _ = gateways_from_networks(records(
        net("aaaa1111-x", "lab", "xapi1", **{"xapi-gateway_address": "172.16.1.1/24"}),
        net("bbbb2222-x", "lab", "xapi2", **{"xapi-gateway_address": "172.16.2.1/24"}),
        net("cccc3333-x", "my network!", "xapi3", **{"xapi-gateway_address": "172.16.3.1/24"})))
    assert sorted(gws) == ["network-aaaa1111", "network-bbbb2222", "network-cccc3333"]


@pytest.mark.parametrize("text, expected", [
    ("tcp:8080=172.16.0.3:80", "tcp:8080=172.16.0.3:80"),
    ("udp:5353=172.16.0.4:53,tcp:8080=172.16.0.3:80",
     "tcp:8080=172.16.0.3:80,udp:5353=172.16.0.4:53"),
    (" TCP:2222=172.16.0.3:22 ", "tcp:2222=172.16.0.3:22"),
    ("", ""),
])
def test_forwards_from_other_config(text, expected):
    from agent.core.model import format_forwards
    gws, invalid = gateways_from_networks(records(
        net("aaaa1111-x", "lab", "xapi1", **{"xapi-gateway_address": "172.16.0.1/24",
                                             "xapi-gateway_forwards": text})))
    assert invalid == {}
    assert format_forwards(gws["lab"].forwards) == expected


def test_a_network_without_forwards_has_none():
    gws, _ = gateways_from_networks(records(
        net("aaaa1111-x", "lab", "xapi1", **{"xapi-gateway_address": "172.16.0.1/24"})))
    assert gws["lab"].forwards == ()


@pytest.mark.parametrize("text, fragment", [
    ("tcp:8080", "forwards entry 1 'tcp:8080'"),
    ("tcp:8080=172.16.9.3:80", "outside the gateway's subnet 172.16.0.0/24"),
    ("tcp:22=172.16.0.3", "Dom0's own SSH port"),
    ("tcp:1=172.16.0.3,tcp:1=172.16.0.4", "forwarded twice"),
])
def test_invalid_forwards_make_that_network_invalid_only(text, fragment):
    gws, invalid = gateways_from_networks(records(
        net("aaaa1111-x", "broken", "xapi5", **{"xapi-gateway_address": "172.16.0.1/24",
                                                "xapi-gateway_forwards": text}),
        net("bbbb2222-x", "fine", "xapi6", **{"xapi-gateway_address": "172.16.9.1/24",
                                              "xapi-gateway_forwards": "tcp:8080=172.16.9.3:80"})))
    assert list(gws) == ["fine"] and len(gws["fine"].forwards) == 1
    bridge, reason = invalid["broken"]
    assert bridge == "xapi5" and fragment in reason and "aaaa1111-x" in reason


def test_inbound_from_other_config_and_its_errors():
    from agent.core import desired as D
    ok = {"uuid": "u1", "name_label": "lab", "bridge": "xapi1",
          "other_config": {D.ADDRESS: "172.16.1.1/24", D.INBOUND: "192.0.2.0/24,any"}}
    gateways, invalid = D.gateways_from_networks({"r1": ok})
    assert gateways == {} and "192.0.2.0/24 is inside any" in invalid["lab"].reason
    ok["other_config"][D.INBOUND] = "192.0.2.0/24"
    gateways, invalid = D.gateways_from_networks({"r1": ok})
    assert invalid == {} and [str(n) for n in gateways["lab"].inbound] == ["192.0.2.0/24"]
