"""agent.core.rules: the iptables rules a gateway needs, and their identity keys."""
import pytest

from agent.core import model
from agent.core import rules as R

NAT_CHAIN = "XGW-POSTROUTING"
FWD_CHAIN = "XGW-FORWARD"


def gw(name, bridge, address, nat=True):
    return model.make_gateway(name, bridge, address, nat=nat)


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
    assert R.desired_rules([]) == {("nat", NAT_CHAIN): {}, ("filter", FWD_CHAIN): {}}
    assert set(R.desired_rules([])) == set((t, c) for t, _b, c in R.OWN_CHAINS)


def test_desired_rules_nat_chain_present_without_nat_gateways():
    wanted = R.desired_rules([gw("b", "xapi2", "172.16.2.1/24", nat=False)])
    assert wanted[("nat", NAT_CHAIN)] == {}
    assert len(wanted[("filter", FWD_CHAIN)]) == 2


def test_desired_rules_groups_per_table_and_chain():
    wanted = R.desired_rules(GATEWAYS)
    assert set(wanted) == {("nat", NAT_CHAIN), ("filter", FWD_CHAIN)}
    for (table, chain), specs in wanted.items():
        for key, spec in specs.items():
            assert (spec.table, spec.chain, spec.key) == (table, chain, key)
    assert len(wanted[("nat", NAT_CHAIN)]) == 3          # a, c, d
    assert len(wanted[("filter", FWD_CHAIN)]) == 2 * 4
    # Stable order: gateways in the given order, roles in gateway_rules order.
    assert list(wanted[("filter", FWD_CHAIN)]) == [
        s.key for g in GATEWAYS for s in R.gateway_rules(g) if s.table == "filter"]


def test_own_chains_tables():
    assert R.TABLES == tuple(t for t, _b, _c in R.OWN_CHAINS)
    assert R.CHAIN_OF == {"nat": NAT_CHAIN, "filter": FWD_CHAIN}
