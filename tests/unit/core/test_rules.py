"""agent.core.rules: the iptables rules a gateway needs, and their identity keys."""
import pytest

from agent.core import model
from agent.core import rules as R

NAT_CHAIN = "XGW-POSTROUTING"
FWD_CHAIN = "XGW-FORWARD"
PRE_CHAIN = "XGW-PREROUTING"
OUT_CHAIN = "XGW-OUTPUT"
ALL_CHAINS = {("nat", NAT_CHAIN), ("nat", PRE_CHAIN), ("nat", OUT_CHAIN), ("filter", FWD_CHAIN)}


def gw(name, bridge, address, nat=True, forwards=()):
    return model.make_gateway(name, bridge, address, nat=nat, forwards=forwards)


@pytest.mark.parametrize("nat, expected", [
    pytest.param(True, [("nat", NAT_CHAIN, "masquerade"), ("filter", FWD_CHAIN, "forward-out"),
                        ("filter", FWD_CHAIN, "forward-back")], id="nat-yes"),
    pytest.param(False, [("filter", FWD_CHAIN, "forward-out"),
                         ("filter", FWD_CHAIN, "forward-back")], id="nat-no"),
])
def test_gateway_rules_roles(nat, expected):
    specs = R.gateway_rules(gw("g", "xapi1", "172.16.1.77/24", nat=nat))
    assert [(s.table, s.chain, s.key.split(":")[2]) for s in specs] == expected
    for spec in specs:
        assert spec.key == R.rule_key("xapi1", spec.key.split(":")[2], "172.16.1.0/24")


def test_gateway_rules_content():
    masq, out, back = R.gateway_rules(gw("g", "xapi1", "172.16.1.77/24"))
    assert masq == R.RuleSpec("nat", NAT_CHAIN, "xgw:xapi1:masquerade:172.16.1.0/24",
                              src="172.16.1.0/24", dst="!172.16.1.0/24", in_iface=None,
                              out_iface=None, ctstate=None, target="MASQUERADE")
    assert out == R.RuleSpec("filter", FWD_CHAIN, "xgw:xapi1:forward-out:172.16.1.0/24",
                             src="172.16.1.0/24", dst=None, in_iface="xapi1", out_iface=None,
                             ctstate=None, target="ACCEPT")
    assert back == R.RuleSpec("filter", FWD_CHAIN, "xgw:xapi1:forward-back:172.16.1.0/24",
                              src=None, dst="172.16.1.0/24", in_iface=None, out_iface="xapi1",
                              ctstate="RELATED,ESTABLISHED", target="ACCEPT")


GATEWAYS = [
    gw("a", "xapi1", "172.16.1.1/24"),
    gw("b", "xapi2", "172.16.2.1/24", nat=False),
    gw("c", "xenbr0.7", "10.7.0.1/16"),
    gw("d", "br-lab_1", "192.168.9.1/30"),
]


def test_keys_are_unique_and_ours():
    keys = [s.key for g in GATEWAYS for s in R.gateway_rules(g)]
    assert len(keys) == len(set(keys)) == 3 + 2 + 3 + 3
    for key in keys:
        assert key.startswith(R.KEY_PREFIX)
        assert R.is_ours(key)


@pytest.mark.parametrize("comment, ours", [
    pytest.param("xgw:xapi1:masquerade:172.16.1.0/24", True, id="our-key"),
    pytest.param("xgw:", True, id="bare-prefix"),
    pytest.param(None, False, id="no-comment"),
    pytest.param("", False, id="empty-comment"),
    pytest.param("XGW:xapi1:masquerade:172.16.1.0/24", False, id="prefix-case-sensitive"),
    pytest.param("acme:xgw:rule", False, id="prefix-not-at-start"),
    pytest.param("libvirt rule", False, id="foreign"),
])
def test_is_ours(comment, ours):
    assert R.is_ours(comment) is ours


def test_desired_rules_empty_has_every_own_chain():
    assert R.desired_rules([]) == {key: {} for key in ALL_CHAINS}
    assert set(R.desired_rules([])) == set((t, c) for t, _b, c in R.OWN_CHAINS)


def test_desired_rules_nat_chain_present_without_nat_gateways():
    wanted = R.desired_rules([gw("b", "xapi2", "172.16.2.1/24", nat=False)])
    assert wanted[("nat", NAT_CHAIN)] == {}
    assert len(wanted[("filter", FWD_CHAIN)]) == 2


def test_desired_rules_groups_per_table_and_chain():
    wanted = R.desired_rules(GATEWAYS)
    assert set(wanted) == ALL_CHAINS
    assert wanted[("nat", PRE_CHAIN)] == wanted[("nat", OUT_CHAIN)] == {}
    for (table, chain), specs in wanted.items():
        for key, spec in specs.items():
            assert (spec.table, spec.chain, spec.key) == (table, chain, key)
    assert len(wanted[("nat", NAT_CHAIN)]) == 3          # a, c, d
    assert len(wanted[("filter", FWD_CHAIN)]) == 2 * 4
    # Stable order: gateways in the given order, roles in gateway_rules order.
    assert list(wanted[("filter", FWD_CHAIN)]) == [
        s.key for g in GATEWAYS for s in R.gateway_rules(g) if s.table == "filter"]


def test_own_chains_tables():
    tables = [t for t, _b, _c in R.OWN_CHAINS]
    assert R.TABLES == tuple(sorted(set(tables), key=tables.index))
    assert R.CHAIN_OF == {"nat": NAT_CHAIN, "filter": FWD_CHAIN}
    assert [(b, c) for _t, b, c in R.OWN_CHAINS] == [
        ("POSTROUTING", NAT_CHAIN), ("PREROUTING", PRE_CHAIN), ("OUTPUT", OUT_CHAIN),
        ("FORWARD", FWD_CHAIN)]
    # the chains that exist only while a forward needs them
    assert R.ON_DEMAND == {PRE_CHAIN, OUT_CHAIN}


# ---- forwards ----------------------------------------------------------------------------

FWD_GW = gw("web", "xapi1", "172.16.1.1/24", forwards="tcp:8080=172.16.1.10:80")


def test_forward_rules_content():
    specs = [s for s in R.gateway_rules(FWD_GW) if s.key.split(":")[2] not in
             ("masquerade", "forward-out", "forward-back")]
    assert specs == [
        R.RuleSpec("nat", PRE_CHAIN, "xgw:xapi1:dnat:tcp:8080=172.16.1.10:80", src=None,
                   dst=None, in_iface=None, out_iface=None, ctstate=None, target="DNAT",
                   proto="tcp", dport=8080, dst_type="LOCAL", to_destination="172.16.1.10:80"),
        R.RuleSpec("nat", OUT_CHAIN, "xgw:xapi1:dnat-local:tcp:8080=172.16.1.10:80", src=None,
                   dst="!127.0.0.0/8", in_iface=None, out_iface=None, ctstate=None,
                   target="DNAT", proto="tcp", dport=8080, dst_type="LOCAL",
                   to_destination="172.16.1.10:80"),
        R.RuleSpec("nat", NAT_CHAIN, "xgw:xapi1:hairpin:tcp:8080=172.16.1.10:80",
                   src="172.16.1.0/24", dst="172.16.1.10/32", in_iface=None, out_iface="xapi1",
                   ctstate="DNAT", target="MASQUERADE", proto="tcp", dport=80),
        R.RuleSpec("filter", FWD_CHAIN, "xgw:xapi1:forward-dnat:tcp:8080=172.16.1.10:80",
                   src=None, dst="172.16.1.10/32", in_iface=None, out_iface="xapi1",
                   ctstate="DNAT", target="ACCEPT", proto="tcp", dport=80),
    ]


@pytest.mark.parametrize("nat, forwards, roles", [
    pytest.param(True, "", ["masquerade", "forward-out", "forward-back"], id="none"),
    pytest.param(True, "udp:53=172.16.1.10:5353",
                 ["masquerade", "forward-out", "forward-back",
                  "dnat", "dnat-local", "hairpin", "forward-dnat"], id="one"),
    pytest.param(False, "tcp:8080=172.16.1.10:80",
                 ["forward-out", "forward-back", "dnat", "dnat-local", "hairpin",
                  "forward-dnat"], id="without-nat-still-hairpin"),
    pytest.param(True, "udp:53=172.16.1.10,tcp:2222=172.16.1.11:22",
                 ["masquerade", "forward-out", "forward-back"]
                 + ["dnat", "dnat-local", "hairpin", "forward-dnat"] * 2, id="two-sorted"),
])
def test_forward_roles(nat, forwards, roles):
    gateway = gw("g", "xapi1", "172.16.1.1/24", nat=nat, forwards=forwards)
    specs = R.gateway_rules(gateway)
    assert [s.key.split(":")[2] for s in specs] == roles
    # each forward's rules in the gateway's order (protocol, port), keyed by its text
    whats = [s.key.split(":", 3)[3] for s in specs if s.key.split(":")[2] == "dnat"]
    assert whats == [str(f) for f in gateway.forwards]
    assert whats == sorted(whats, key=lambda w: (w[:3], int(w[4:].split("=")[0])))


@pytest.mark.parametrize("forward, dnat, accept", [
    pytest.param("tcp:8080=172.16.1.10:80", ("tcp", 8080, "172.16.1.10:80"), ("tcp", 80),
                 id="port-mapped"),
    pytest.param("udp:53=172.16.1.10", ("udp", 53, "172.16.1.10:53"), ("udp", 53),
                 id="same-port"),
    pytest.param("TCP:65535=172.16.1.254:1", ("tcp", 65535, "172.16.1.254:1"), ("tcp", 1),
                 id="bounds"),
])
def test_forward_rules_use_host_port_before_and_destination_port_after_dnat(forward, dnat,
                                                                            accept):
    specs = {s.key.split(":")[2]: s for s in R.gateway_rules(
        gw("g", "xapi1", "172.16.1.1/24", forwards=forward))}
    for role in ("dnat", "dnat-local"):
        assert (specs[role].proto, specs[role].dport, specs[role].to_destination) == dnat
    for role in ("hairpin", "forward-dnat"):
        assert (specs[role].proto, specs[role].dport) == accept


def test_forward_keys_are_unique_and_name_their_bridge():
    gateways = [gw("a", "xapi1", "172.16.1.1/24",
                   forwards="tcp:8080=172.16.1.2:80,udp:8080=172.16.1.2:80"),
                gw("b", "xapi10", "172.16.10.1/24", forwards="tcp:8081=172.16.10.2:80")]
    keys = [s.key for g in gateways for s in R.gateway_rules(g)]
    assert len(keys) == len(set(keys)) == 3 + 2 * 4 + 3 + 4
    for g in gateways:
        assert all(R.bridge_of(s.key) == g.bridge for s in R.gateway_rules(g))


def test_match_of_is_what_the_observer_reads():
    spec = [s for s in R.gateway_rules(FWD_GW) if s.target == "DNAT"][0]
    assert R.match_of(spec) == (None, None, None, None, "tcp", 8080, "LOCAL", "172.16.1.10:80")
    plain = R.gateway_rules(FWD_GW)[1]
    assert R.match_of(plain) == ("172.16.1.0/24", None, "xapi1", None, None, None, None, None)


def test_rulespec_without_forward_fields_stays_compatible():
    spec = R.RuleSpec("filter", FWD_CHAIN, "xgw:x", "10.0.0.0/8", None, "x", None, None, "ACCEPT")
    assert (spec.proto, spec.dport, spec.dst_type, spec.to_destination) == (None,) * 4
