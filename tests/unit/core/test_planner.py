"""agent.core.planner: scenarios as tables of cases, and a convergence property.

Observed states are built with small helpers: ``kernel()`` is a host with eth0 (an address
of TEST-NET-1 and a default route), the built-in chains and the Dom0 firewall's jump in
FORWARD; ``converged(*gateways)`` is the state the daemon leaves once those gateways are
applied. The property test at the end applies plans with ``Kernel``, a small pure model of
the kernel's semantics (addresses and connected routes, rule positions), and checks that a
second plan is empty.
"""
import copy
import ipaddress
import random
from collections import OrderedDict

import pytest

from agent.core import model
from agent.core import planner as P
from agent.core import rules as R
from agent.core.planner import (ABSENT, APPLIED, DOWN, PENDING, REFUSED, AddAddress, AddRoute,
                                AddRule, DeleteRule, EnableForwarding, EnsureChain, FixJump,
                                Link, RemoveAddress, RemoveChain, Route, RuleView)

NAT, FWD = "XGW-POSTROUTING", "XGW-FORWARD"
PRE, OUT = "XGW-PREROUTING", "XGW-OUTPUT"
RH = "RH-Firewall-1-INPUT"

INDEX = {"eth0": 1, "ghost": 7, "tap3.0": 8}
INDEX.update(("xapi%d" % n, 10 + n) for n in range(1, 10))
ETH0_ADDRESS = ipaddress.IPv4Interface("192.0.2.10/24")
DEFAULT_ROUTE = Route(ipaddress.IPv4Network("0.0.0.0/0"), 1)


def gw(name, bridge, address, nat=True, forwards=()):
    return model.make_gateway(name, bridge, address, nat=nat, forwards=forwards)


def iface(text):
    return ipaddress.IPv4Interface(text)


def net(text):
    return ipaddress.IPv4Network(text)


def key(gateway, role, forward=None):
    return R.rule_key(gateway.bridge, role, gateway.network if forward is None else forward)


G1 = gw("g1", "xapi1", "172.16.1.1/24")
G2 = gw("g2", "xapi2", "172.16.2.1/24")
G3 = gw("g3", "xapi3", "10.3.0.1/16", nat=False)
G1_NONAT = G1._replace(nat=False)
G1_MOVED = gw("g1", "xapi1", "172.16.9.1/24")
WEB = "tcp:8080=172.16.1.10:80"
G1_FWD = G1._replace(forwards=model.parse_forwards(WEB))
G2_FWD = gw("g2", "xapi2", "172.16.2.1/24", forwards="udp:53=172.16.2.10,tcp:2222=172.16.2.11:22")


# ---- building observed states ------------------------------------------------------------

def views(*entries):
    """[RuleView] from (key, target) pairs, positions counted from 0."""
    return [RuleView(n, k, target) for n, (k, target) in enumerate(entries)]


JUMP_NAT = (None, NAT)
JUMP_FWD = (None, FWD)
JUMP_PRE = (None, PRE)
JUMP_OUT = (None, OUT)
RH_RULE = (None, RH)


def chain_of(which):
    """A chain name from a table name (its per-gateway chain, CHAIN_OF) or a chain name."""
    return R.CHAIN_OF.get(which, which)


def entries(gateways, which):
    """Our rules for ``gateways`` in one chain (``which``: see chain_of), as (key, target)."""
    chain = chain_of(which)
    return [(s.key, s.target) for g in gateways for s in R.gateway_rules(g) if s.chain == chain]


def rule_tables(postrouting=(JUMP_NAT,), nat_chain=(), forward=(JUMP_FWD, RH_RULE), fwd_chain=(),
                prerouting=(), pre_chain=None, output=(), out_chain=None):
    """The two tables; a chain argument None means our chain does not exist (by default
    the on-demand DNAT chains do not)."""
    out = {"nat": {"POSTROUTING": views(*postrouting), "PREROUTING": views(*prerouting),
                   "OUTPUT": views(*output)},
           "filter": {"FORWARD": views(*forward)}}
    for table, chain, rules in (("nat", NAT, nat_chain), ("nat", PRE, pre_chain),
                                ("nat", OUT, out_chain), ("filter", FWD, fwd_chain)):
        if rules is not None:
            out[table][chain] = views(*rules)
    return out


# A kernel the daemon has never touched: built-in chains only, Dom0's firewall in FORWARD.
EMPTY_TABLES = rule_tables(postrouting=(), nat_chain=None, forward=(RH_RULE,), fwd_chain=None)


def kernel(bridges=(), down=(), addresses=(), routes=(), drop_routes=(), tables=EMPTY_TABLES,
           ip_forward=False, kinds=None):
    """An Observed host: eth0 plus ``bridges`` (up unless in ``down``).

    ``addresses`` [(ifname, "a.b.c.d/n")] come with their connected route when the link is
    up, except those listed in ``drop_routes`` [(ifname, "network")]; ``routes`` adds
    [(ifname, "network")]. eth0 always has 192.0.2.10/24 and the default route.
    ``kinds`` {ifname: link kind} (default: "bridge"; eth0 has none, as a physical NIC).
    """
    links = {"eth0": Link(1, "eth0", True, None)}
    for bridge in bridges:
        links[bridge] = Link(INDEX[bridge], bridge, bridge not in down,
                             (kinds or {}).get(bridge, "bridge"))
    up = set(link.index for link in links.values() if link.up)
    addrs = {1: set([ETH0_ADDRESS])}
    found = set([DEFAULT_ROUTE, Route(ETH0_ADDRESS.network, 1)])
    for name, text in addresses:
        address = iface(text)
        addrs.setdefault(INDEX[name], set()).add(address)
        if INDEX[name] in up and (name, str(address.network)) not in drop_routes:
            found.add(Route(address.network, INDEX[name]))
    for name, text in routes:
        found.add(Route(net(text), INDEX[name]))
    return P.Observed(links=links, addresses={i: frozenset(a) for i, a in addrs.items()},
                      routes=found, tables=copy.deepcopy(tables), ip_forward=ip_forward)


def converged_tables(*gateways):
    """Our chains as the daemon leaves them for ``gateways`` (DNAT chains when needed)."""
    dnat = any(g.forwards for g in gateways)
    return rule_tables(nat_chain=entries(gateways, "nat"), fwd_chain=entries(gateways, "filter"),
                       prerouting=(JUMP_PRE,) if dnat else (),
                       pre_chain=entries(gateways, PRE) if dnat else None,
                       output=(JUMP_OUT,) if dnat else (),
                       out_chain=entries(gateways, OUT) if dnat else None)


def converged(*gateways, **changes):
    """The state once ``gateways`` are applied; keyword arguments override kernel()'s."""
    args = dict(bridges=[g.bridge for g in gateways],
                addresses=[(g.bridge, str(g.address)) for g in gateways],
                tables=converged_tables(*gateways),
                ip_forward=True)
    args.update(changes)
    return kernel(**args)


# ---- expected operations -----------------------------------------------------------------

def add_rules(which, *gateways):
    """AddRule of ``gateways``' rules in one chain (``which``: see chain_of)."""
    chain = chain_of(which)
    return [AddRule(s.table, chain, s)
            for g in gateways for s in R.gateway_rules(g) if s.chain == chain]


def fresh_rules(*gateways):
    """Chains, jumps and rules on a kernel without our chains."""
    dnat = []
    if any(g.forwards for g in gateways):
        dnat = ([EnsureChain("nat", PRE), FixJump("nat", "PREROUTING", PRE, ())]
                + add_rules(PRE, *gateways)
                + [EnsureChain("nat", OUT), FixJump("nat", "OUTPUT", OUT, ())]
                + add_rules(OUT, *gateways))
    return ([EnsureChain("nat", NAT), FixJump("nat", "POSTROUTING", NAT, ())]
            + add_rules("nat", *gateways) + dnat
            + [EnsureChain("filter", FWD), FixJump("filter", "FORWARD", FWD, ())]
            + add_rules("filter", *gateways))


def add_address(gateway):
    return AddAddress(gateway.bridge, INDEX[gateway.bridge], gateway.address)


CHAIN_OF_ROLE = {"masquerade": ("nat", NAT), "hairpin": ("nat", NAT), "dnat": ("nat", PRE),
                 "dnat-local": ("nat", OUT)}


def delete(gateway, role, position, forward=None):
    table, chain = CHAIN_OF_ROLE.get(role, ("filter", FWD))
    return DeleteRule(table, chain, position, key(gateway, role, forward))


def desired_of(gateways):
    return OrderedDict((g.name, g) for g in gateways)


def owned_of(records):
    """{bridge: Owned} from {bridge: address}: put on the bridge's link (INDEX)."""
    if records is None:
        return None
    return {b: a if isinstance(a, P.Owned) else P.Owned(a, INDEX[b]) for b, a in records.items()}


def renamed(observed, old, new, new_link_index=None):
    """``observed`` after `ip link set OLD name NEW` (same index, addresses, routes), and
    with a new link named OLD (index ``new_link_index``, up, bare) when given."""
    links = dict(observed.links)
    link = links.pop(old)
    links[new] = link._replace(name=new)
    if new_link_index is not None:
        links[old] = Link(new_link_index, old, True, "bridge")
    return observed._replace(links=links)


# ---- the scenario table ------------------------------------------------------------------

def case(id, desired, observed, ops, states=None, owned=None, previous=(), owned_after=None):
    return pytest.param(desired, observed, owned_of(owned), previous, ops, states,
                        owned_of(owned_after), id=id)


STALE_A = ("xgw:xapi7:forward-out:10.7.0.0/24", "ACCEPT")
STALE_B = ("xgw:xapi8:forward-back:10.8.0.0/24", "ACCEPT")
STALE_C = ("xgw:xapi9:forward-out:10.9.0.0/24", "ACCEPT")

SCENARIOS = [
    case("fresh-bridge", [G1], kernel(bridges=["xapi1"]),
         [add_address(G1)] + fresh_rules(G1) + [EnableForwarding()],
         states={"g1": PENDING}, owned_after={"xapi1": G1.address}),
    case("fresh-bridge-forwarding-already-on", [G1], kernel(bridges=["xapi1"], ip_forward=True),
         [add_address(G1)] + fresh_rules(G1), states={"g1": PENDING}),
    case("fresh-two-bridges-one-without-nat", [G3, G1], kernel(bridges=["xapi1", "xapi3"]),
         [add_address(G1), add_address(G3)] + fresh_rules(G1, G3) + [EnableForwarding()],
         states={"g1": PENDING, "g3": PENDING},
         owned_after={"xapi1": G1.address, "xapi3": G3.address}),
    case("bridge-absent", [G1], kernel(),
         [EnsureChain("nat", NAT), FixJump("nat", "POSTROUTING", NAT, ()),
          EnsureChain("filter", FWD), FixJump("filter", "FORWARD", FWD, ())],
         states={"g1": ABSENT}, owned_after={}),
    case("bridge-absent-its-rules-deleted", [G1], converged(G1, bridges=[], addresses=[]),
         [delete(G1, "masquerade", 0), delete(G1, "forward-back", 1),
          delete(G1, "forward-out", 0)],
         states={"g1": ABSENT}, owned_after={}),
    case("converged", [G1, G2, G3], converged(G1, G2, G3), [],
         states={"g1": APPLIED, "g2": APPLIED, "g3": APPLIED},
         owned_after={"xapi1": G1.address, "xapi2": G2.address, "xapi3": G3.address}),
    case("converged-no-gateways", [], kernel(tables=rule_tables(), ip_forward=True), [],
         states={}),
    case("converged-forwarding-off-without-gateways", [], kernel(tables=rule_tables()), []),
    case("converged-owned", [G1], converged(G1), [], owned={"xapi1": G1.address},
         states={"g1": APPLIED}, owned_after={"xapi1": G1.address}),
    case("forwarding-off", [G1], converged(G1, ip_forward=False), [EnableForwarding()],
         states={"g1": PENDING}),
    case("route-missing-link-up", [G1],
         converged(G1, drop_routes=[("xapi1", "172.16.1.0/24")]),
         [AddRoute("xapi1", 11, G1.network, G1.ip)], states={"g1": PENDING}),
    case("link-down-with-address-needs-no-route", [G1], converged(G1, down=["xapi1"]), [],
         states={"g1": DOWN}),
    case("link-down-without-address", [G1], converged(G1, down=["xapi1"], addresses=[]),
         [add_address(G1)], states={"g1": PENDING}),
    case("jump-below-firewall", [G1],
         converged(G1, tables=rule_tables(nat_chain=entries([G1], "nat"),
                                          forward=(RH_RULE, JUMP_FWD),
                                          fwd_chain=entries([G1], "filter"))),
         [FixJump("filter", "FORWARD", FWD, (1,))]),
    case("jump-missing", [G1],
         converged(G1, tables=rule_tables(postrouting=(), nat_chain=entries([G1], "nat"),
                                          fwd_chain=entries([G1], "filter"))),
         [FixJump("nat", "POSTROUTING", NAT, ())]),
    case("duplicate-jumps", [G1],
         converged(G1, tables=rule_tables(
             postrouting=(JUMP_NAT, (None, "MASQUERADE"), JUMP_NAT, JUMP_NAT),
             nat_chain=entries([G1], "nat"),
             forward=(JUMP_FWD, RH_RULE, JUMP_FWD), fwd_chain=entries([G1], "filter"))),
         [FixJump("nat", "POSTROUTING", NAT, (3, 2, 0)),
          FixJump("filter", "FORWARD", FWD, (2, 0))]),
    case("duplicate-rules-after-restore", [G1],
         converged(G1, tables=rule_tables(nat_chain=entries([G1], "nat") * 2,
                                          fwd_chain=entries([G1], "filter") * 2)),
         [delete(G1, "masquerade", 1), delete(G1, "forward-back", 3),
          delete(G1, "forward-out", 2)],
         states={"g1": APPLIED}),
    case("stale-rules-of-removed-gateway", [G1], converged(G1, G2),
         [delete(G2, "masquerade", 1), delete(G2, "forward-back", 3),
          delete(G2, "forward-out", 2)],
         states={"g1": APPLIED}, owned_after={"xapi1": G1.address}),
    case("foreign-rules-in-our-chain-untouched", [G1],
         converged(G1, tables=rule_tables(
             nat_chain=[(None, "RETURN")] + entries([G1], "nat") + [("acme:snat", "SNAT")],
             fwd_chain=[(None, "DROP"), entries([G1], "filter")[0], ("acme:allow", "ACCEPT"),
                        entries([G1], "filter")[1],
                        ("XGW:xapi9:forward-out:10.9.0.0/24", "ACCEPT")])),
         [], states={"g1": APPLIED}),
    case("deletes-in-descending-position-order", [G1],
         converged(G1, tables=rule_tables(
             nat_chain=entries([G1], "nat"),
             fwd_chain=[STALE_A, entries([G1], "filter")[0], STALE_B, (None, "DROP"),
                        entries([G1], "filter")[1], STALE_C])),
         [DeleteRule("filter", FWD, 5, STALE_C[0]), DeleteRule("filter", FWD, 2, STALE_B[0]),
          DeleteRule("filter", FWD, 0, STALE_A[0])],
         states={"g1": APPLIED}),
    case("nat-turned-off", [G1_NONAT], converged(G1), [delete(G1, "masquerade", 0)],
         states={"g1": APPLIED}),
    case("nat-turned-on", [G1], converged(G1_NONAT), add_rules("nat", G1),
         states={"g1": PENDING}),
    case("owned-address-of-removed-gateway", [], converged(G1),
         [RemoveAddress("xapi1", 11, G1.address), delete(G1, "masquerade", 0),
          delete(G1, "forward-back", 1), delete(G1, "forward-out", 0)],
         states={}, owned={"xapi1": G1.address}, owned_after={}),
    case("owned-address-on-vanished-bridge", [], kernel(tables=rule_tables()), [],
         owned={"xapi1": G1.address}, owned_after={}),
    case("owned-address-already-gone", [], kernel(bridges=["xapi1"], tables=rule_tables()), [],
         owned={"xapi1": G1.address}, owned_after={}),
    # ---- renames: the record follows the link's index, not its name
    case("renamed-gateway-bridge-gives-back-our-address", [G1],
         renamed(converged(G1), "xapi1", "other"),
         [RemoveAddress("other", 11, G1.address), delete(G1, "masquerade", 0),
          delete(G1, "forward-back", 1), delete(G1, "forward-out", 0)],
         states={"g1": ABSENT}, owned={"xapi1": G1.address}, owned_after={}),
    case("renamed-and-a-new-bridge-with-the-old-name", [G1],
         renamed(converged(G1), "xapi1", "other", new_link_index=21),
         [RemoveAddress("other", 11, G1.address), AddAddress("xapi1", 21, G1.address)],
         states={"g1": PENDING}, owned={"xapi1": G1.address},
         owned_after={"xapi1": P.Owned(G1.address, 21)}),
    case("renamed-link-keeps-what-is-not-ours", [G1],
         renamed(converged(G1, addresses=[("xapi1", str(G1.address)),
                                          ("xapi1", "192.168.77.1/24")]),
                 "xapi1", "other", new_link_index=21),
         [RemoveAddress("other", 11, G1.address), AddAddress("xapi1", 21, G1.address)],
         states={"g1": PENDING}, owned={"xapi1": G1.address}),
    case("renamed-onto-a-bridge-that-is-its-gateway-now", [G1._replace(bridge="xapi4")],
         renamed(converged(G1._replace(bridge="xapi4"), bridges=["xapi1"],
                           addresses=[("xapi1", str(G1.address))]), "xapi1", "xapi4"),
         [], states={"g1": APPLIED}, owned={"xapi1": G1.address},
         owned_after={"xapi4": P.Owned(G1.address, 11)}),
    case("new-link-with-the-old-name-is-not-ours", [],
         kernel(bridges=["xapi2"], addresses=[("xapi2", str(G1.address))],
                tables=rule_tables()),
         [], owned={"xapi2": P.Owned(G1.address, 12345)}, owned_after={}),
    case("record-without-index-goes-by-name", [], converged(G1),
         [RemoveAddress("xapi1", 11, G1.address), delete(G1, "masquerade", 0),
          delete(G1, "forward-back", 1), delete(G1, "forward-out", 0)],
         owned={"xapi1": P.Owned(G1.address, None)}, owned_after={}),
    case("address-changed", [G1_MOVED], converged(G1),
         [RemoveAddress("xapi1", 11, G1.address), add_address(G1_MOVED),
          delete(G1, "masquerade", 0)] + add_rules("nat", G1_MOVED)
         + [delete(G1, "forward-back", 1), delete(G1, "forward-out", 0)]
         + add_rules("filter", G1_MOVED),
         states={"g1": PENDING}, owned={"xapi1": G1.address},
         owned_after={"xapi1": G1_MOVED.address}),
    case("address-changed-old-one-not-ours-is-kept", [G1_MOVED],
         converged(G1, tables=rule_tables(nat_chain=entries([G1_MOVED], "nat"),
                                          fwd_chain=entries([G1_MOVED], "filter"))),
         [add_address(G1_MOVED)], states={"g1": PENDING},
         owned_after={"xapi1": G1_MOVED.address}),
    case("present-address-is-adopted", [G1], converged(G1), [],
         owned_after={"xapi1": G1.address}),
    # ---- forwards
    case("fresh-bridge-with-forward", [G1_FWD], kernel(bridges=["xapi1"]),
         [add_address(G1_FWD)] + fresh_rules(G1_FWD) + [EnableForwarding()],
         states={"g1": PENDING}),
    case("converged-with-forwards-writes-nothing", [G1_FWD, G2_FWD, G3],
         converged(G1_FWD, G2_FWD, G3), [],
         states={"g1": APPLIED, "g2": APPLIED, "g3": APPLIED}),
    case("forward-of-an-absent-bridge-needs-no-dnat-chain", [G1_FWD], kernel(),
         [EnsureChain("nat", NAT), FixJump("nat", "POSTROUTING", NAT, ()),
          EnsureChain("filter", FWD), FixJump("filter", "FORWARD", FWD, ())],
         states={"g1": ABSENT}),
    case("forward-added", [G1_FWD], converged(G1),
         add_rules("nat", G1_FWD)[1:]
         + [EnsureChain("nat", PRE), FixJump("nat", "PREROUTING", PRE, ())]
         + add_rules(PRE, G1_FWD)
         + [EnsureChain("nat", OUT), FixJump("nat", "OUTPUT", OUT, ())]
         + add_rules(OUT, G1_FWD) + add_rules("filter", G1_FWD)[2:],
         states={"g1": PENDING}),
    case("last-forward-removed-takes-the-dnat-chains-and-jumps", [G1], converged(G1_FWD),
         [delete(G1, "hairpin", 1, WEB), RemoveChain("nat", "PREROUTING", PRE, (0,)),
          RemoveChain("nat", "OUTPUT", OUT, (0,)), delete(G1, "forward-dnat", 2, WEB)],
         states={"g1": APPLIED}),
    case("dnat-chains-of-a-removed-gateway-go", [], converged(G1_FWD, G2_FWD, addresses=[]),
         [DeleteRule("nat", NAT, n, k) for n, (k, _t) in
          reversed(list(enumerate(entries([G1_FWD, G2_FWD], "nat"))))]
         + [RemoveChain("nat", "PREROUTING", PRE, (0,)), RemoveChain("nat", "OUTPUT", OUT, (0,))]
         + [DeleteRule("filter", FWD, n, k) for n, (k, _t) in
            reversed(list(enumerate(entries([G1_FWD, G2_FWD], "filter"))))],
         states={}),
    case("empty-dnat-chains-with-several-jumps-go", [G1],
         converged(G1, tables=rule_tables(
             nat_chain=entries([G1], "nat"), fwd_chain=entries([G1], "filter"),
             prerouting=((None, "RETURN"), JUMP_PRE, JUMP_PRE), pre_chain=(),
             output=(JUMP_OUT,), out_chain=())),
         [RemoveChain("nat", "PREROUTING", PRE, (2, 1)), RemoveChain("nat", "OUTPUT", OUT, (0,))],
         states={"g1": APPLIED}),
    case("foreign-rule-keeps-a-dnat-chain-ours-go", [G1],
         converged(G1, tables=rule_tables(
             nat_chain=entries([G1], "nat"), fwd_chain=entries([G1], "filter"),
             prerouting=((None, "RETURN"), JUMP_PRE),
             pre_chain=(("acme:dnat", "DNAT"), (key(G1, "dnat", WEB), "DNAT")))),
         [FixJump("nat", "PREROUTING", PRE, (1,)), DeleteRule("nat", PRE, 1, key(G1, "dnat", WEB))],
         states={"g1": APPLIED}),
    case("dnat-jump-missing", [G1_FWD],
         converged(G1_FWD, tables=dict(converged_tables(G1_FWD), nat=dict(
             converged_tables(G1_FWD)["nat"], PREROUTING=views((None, "RETURN"))))),
         [FixJump("nat", "PREROUTING", PRE, ())], states={"g1": PENDING}),
    case("dnat-chain-flushed", [G1_FWD],
         converged(G1_FWD, tables=dict(converged_tables(G1_FWD), nat=dict(
             converged_tables(G1_FWD)["nat"], **{PRE: []}))),
         add_rules(PRE, G1_FWD), states={"g1": PENDING}),
    case("forward-destination-changed", [G1._replace(forwards=model.parse_forwards(
         "tcp:8080=172.16.1.11:80"))], converged(G1_FWD),
         [delete(G1, "hairpin", 1, WEB)]
         + add_rules("nat", gw("g1", "xapi1", "172.16.1.1/24",
                               forwards="tcp:8080=172.16.1.11:80"))[1:]
         + [delete(G1, "dnat", 0, WEB)] + [AddRule("nat", PRE, s) for s in R.gateway_rules(
             gw("g1", "xapi1", "172.16.1.1/24", forwards="tcp:8080=172.16.1.11:80"))
             if s.chain == PRE]
         + [delete(G1, "dnat-local", 0, WEB)] + [AddRule("nat", OUT, s) for s in R.gateway_rules(
             gw("g1", "xapi1", "172.16.1.1/24", forwards="tcp:8080=172.16.1.11:80"))
             if s.chain == OUT]
         + [delete(G1, "forward-dnat", 2, WEB)]
         + add_rules("filter", gw("g1", "xapi1", "172.16.1.1/24",
                                  forwards="tcp:8080=172.16.1.11:80"))[2:],
         states={"g1": PENDING}),
]


@pytest.mark.parametrize("desired, observed, owned, previous, ops, states, owned_after",
                         SCENARIOS)
def test_plan(desired, observed, owned, previous, ops, states, owned_after):
    result = P.plan(desired_of(desired), observed, owned, previous)
    assert result.ops == ops
    assert set(result.status) == set(g.name for g in desired)
    if states is not None:
        assert dict((n, s.state) for n, s in result.status.items()) == states
    if owned_after is not None:
        assert result.owned == owned_after


def test_plan_splits_ops_by_kind():
    result = P.plan(desired_of([G1]), kernel(bridges=["xapi1"]))
    assert result.netlink_ops() == [add_address(G1)]
    assert result.table_ops("nat") == fresh_rules(G1)[:3]
    assert result.table_ops("filter") == fresh_rules(G1)[3:]


def test_absent_status_says_why():
    status = P.plan(desired_of([G1]), kernel()).status["g1"]
    assert status == P.GatewayStatus("g1", "xapi1", ABSENT, "bridge xapi1 does not exist yet")


# ---- conflicts: which gateway is accepted, which refused, and why -----------------------

G_WIDE = gw("g2", "xapi2", "172.16.0.1/16")  # overlaps G1's 172.16.1.0/24


def conflict(id, desired, observed, expected, owned=None, previous=()):
    return pytest.param(desired, observed, owned_of(owned), previous, expected, id=id)


CONFLICTS = [
    # expected: {name: (state, [fragments of the reason])}
    conflict("a-physical-interface-is-not-a-bridge", [gw("g1", "eth0", "172.16.1.1/24")],
             kernel(),
             {"g1": (REFUSED, ["eth0 is not a bridge (a loopback or physical interface): a "
                               "gateway goes on a Linux or Open vSwitch bridge; the "
                               "interface is left alone"])}),
    conflict("a-veth-is-not-a-bridge", [G1], kernel(bridges=["xapi1"], kinds={"xapi1": "veth"}),
             {"g1": (REFUSED, ["xapi1 is not a bridge (an interface of kind veth)"])}),
    conflict("a-refused-non-bridge-holds-no-subnet", [G1, G_WIDE],
             kernel(bridges=["xapi1", "xapi2"], kinds={"xapi1": "dummy"}),
             {"g1": (REFUSED, ["not a bridge"]), "g2": (PENDING, [])}),
    conflict("an-open-vswitch-bridge-is-a-bridge", [G1],
             kernel(bridges=["xapi1"], kinds={"xapi1": "openvswitch"}), {"g1": (PENDING, [])}),
    # OVS's userspace datapath: the bridge's port is a tap, a bridge under XAPI's names only
    conflict("a-userspace-open-vswitch-bridge-is-a-bridge", [G1],
             kernel(bridges=["xapi1"], kinds={"xapi1": "tun"}), {"g1": (PENDING, [])}),
    conflict("a-guest-tap-is-not-a-bridge", [gw("g1", "tap3.0", "172.16.1.1/24")],
             kernel(bridges=["tap3.0"], kinds={"tap3.0": "tun"}),
             {"g1": (REFUSED, ["tap3.0 is not a bridge (an interface of kind tun)"])}),
    conflict("overlapping-gateways-first-by-name", [G_WIDE, G1],
             kernel(bridges=["xapi1", "xapi2"]),
             {"g1": (PENDING, []),
              "g2": (REFUSED, ["subnet 172.16.0.0/16 overlaps gateway g1 (172.16.1.0/24)"])}),
    conflict("previously-accepted-wins-over-name-order", [G1, G_WIDE],
             kernel(bridges=["xapi1", "xapi2"]),
             {"g2": (PENDING, []),
              "g1": (REFUSED, ["subnet 172.16.1.0/24 overlaps gateway g2 (172.16.0.0/16)"])},
             previous=["g2"]),
    conflict("previous-names-not-desired-are-ignored", [G_WIDE, G1],
             kernel(bridges=["xapi1", "xapi2"]),
             {"g1": (PENDING, []), "g2": (REFUSED, ["overlaps gateway g1"])},
             previous=["gone"]),
    conflict("absent-gateway-still-holds-its-subnet", [G1, G_WIDE], kernel(bridges=["xapi2"]),
             {"g1": (ABSENT, ["does not exist"]), "g2": (REFUSED, ["overlaps gateway g1"])}),
    conflict("same-bridge-twice", [G1, gw("g2", "xapi1", "172.16.2.1/24")],
             kernel(bridges=["xapi1"]),
             {"g1": (PENDING, []), "g2": (REFUSED, ["bridge xapi1 is already the gateway g1"])}),
    conflict("same-bridge-twice-previous-wins", [G1, gw("g2", "xapi1", "172.16.2.1/24")],
             kernel(bridges=["xapi1"]),
             {"g2": (PENDING, []), "g1": (REFUSED, ["bridge xapi1 is already the gateway g2"])},
             previous=["g2"]),
    conflict("host-address-on-eth0", [gw("g1", "xapi1", "10.0.0.1/24")],
             kernel(bridges=["xapi1"], addresses=[("eth0", "10.0.0.5/24")]),
             {"g1": (REFUSED, ["subnet 10.0.0.0/24 overlaps address 10.0.0.5/24 on eth0"])}),
    conflict("host-address-in-a-wider-subnet", [gw("g1", "xapi1", "10.1.1.1/24")],
             kernel(bridges=["xapi1"], addresses=[("eth0", "10.0.0.5/8")]),
             {"g1": (REFUSED, ["overlaps address 10.0.0.5/8 on eth0"])}),
    conflict("host-address-on-unknown-interface", [G1],
             kernel(bridges=["xapi1"], addresses=[("ghost", "172.16.1.9/24")]),
             {"g1": (REFUSED, ["overlaps address 172.16.1.9/24 on #7"])}),
    conflict("host-route", [gw("g1", "xapi1", "10.0.3.1/24")],
             kernel(bridges=["xapi1"], routes=[("eth0", "10.0.0.0/16")]),
             {"g1": (REFUSED, ["subnet 10.0.3.0/24 overlaps route 10.0.0.0/16 on eth0"])}),
    conflict("host-route-on-unknown-interface", [G1],
             kernel(bridges=["xapi1"], routes=[("ghost", "172.16.0.0/12")]),
             {"g1": (REFUSED, ["overlaps route 172.16.0.0/12 on #7"])}),
    conflict("default-route-does-not-conflict", [gw("g1", "xapi1", "10.0.3.1/24")],
             kernel(bridges=["xapi1"]), {"g1": (PENDING, [])}),
    conflict("own-address-on-own-bridge", [G1], converged(G1), {"g1": (APPLIED, [])}),
    conflict("foreign-address-on-own-bridge", [G1],
             converged(G1, addresses=[("xapi1", "172.16.1.1/24"), ("xapi1", "172.16.0.9/16")]),
             {"g1": (APPLIED, [])}),
    conflict("own-route-on-own-bridge", [G1],
             converged(G1, routes=[("xapi1", "172.16.0.0/12")]), {"g1": (APPLIED, [])}),
    conflict("owned-address-on-another-bridge", [G1],
             kernel(bridges=["xapi1", "xapi3"], addresses=[("xapi3", "172.16.1.1/24")]),
             {"g1": (PENDING, [])}, owned={"xapi3": G1.address}),
    conflict("foreign-address-on-another-bridge", [G1],
             kernel(bridges=["xapi1", "xapi3"], addresses=[("xapi3", "172.16.1.1/24")]),
             {"g1": (REFUSED, ["overlaps address 172.16.1.1/24 on xapi3"])}),
    conflict("owned-record-of-another-address-does-not-exempt",
             [G1], kernel(bridges=["xapi1", "xapi3"], addresses=[("xapi3", "172.16.1.5/24")]),
             {"g1": (REFUSED, ["overlaps address 172.16.1.5/24 on xapi3"])},
             owned={"xapi3": G1.address}),
    conflict("same-forward-second-by-name-refused",
             [G1_FWD, gw("g2", "xapi2", "172.16.2.1/24", forwards="tcp:8080=172.16.2.10:80")],
             kernel(bridges=["xapi1", "xapi2"]),
             {"g1": (PENDING, []),
              "g2": (REFUSED, ["tcp port 8080 is already forwarded by gateway g1 (to "
                               "172.16.1.10:80)"])}),
    conflict("same-forward-previously-accepted-wins",
             [G1_FWD, gw("g2", "xapi2", "172.16.2.1/24", forwards="tcp:8080=172.16.2.10:80")],
             kernel(bridges=["xapi1", "xapi2"]),
             {"g2": (PENDING, []),
              "g1": (REFUSED, ["tcp port 8080 is already forwarded by gateway g2"])},
             previous=["g2"]),
    conflict("one-of-several-forwards-clashes",
             [G1_FWD, gw("g2", "xapi2", "172.16.2.1/24",
                         forwards="tcp:22222=172.16.2.10,tcp:8080=172.16.2.10:80")],
             kernel(bridges=["xapi1", "xapi2"]),
             {"g1": (PENDING, []), "g2": (REFUSED, ["tcp port 8080", "gateway g1"])}),
    conflict("same-port-other-protocol-is-no-conflict",
             [G1_FWD, gw("g2", "xapi2", "172.16.2.1/24", forwards="udp:8080=172.16.2.10:80")],
             kernel(bridges=["xapi1", "xapi2"]), {"g1": (PENDING, []), "g2": (PENDING, [])}),
    conflict("absent-gateway-still-holds-its-ports",
             [G1_FWD, gw("g2", "xapi2", "172.16.2.1/24", forwards="tcp:8080=172.16.2.10:80")],
             kernel(bridges=["xapi2"]),
             {"g1": (ABSENT, ["does not exist"]),
              "g2": (REFUSED, ["already forwarded by gateway g1"])}),
    conflict("refused-gateway-does-not-hold-its-ports",
             [G1_FWD, gw("g2", "xapi2", "172.16.2.1/24", forwards="tcp:8080=172.16.2.10:80")],
             kernel(bridges=["xapi1", "xapi2"], addresses=[("eth0", "172.16.1.200/24")]),
             {"g1": (REFUSED, ["overlaps address 172.16.1.200/24 on eth0"]),
              "g2": (PENDING, [])}),
    conflict("refused-gateway-does-not-hold-its-subnet",
             [gw("a", "xapi2", "172.16.0.1/16"), gw("b", "xapi1", "172.16.1.1/24")],
             kernel(bridges=["xapi1", "xapi2"], addresses=[("eth0", "172.16.200.1/24")]),
             {"a": (REFUSED, ["overlaps address 172.16.200.1/24 on eth0"]),
              "b": (PENDING, [])}),
]


@pytest.mark.parametrize("desired, observed, owned, previous, expected", CONFLICTS)
def test_conflicts(desired, observed, owned, previous, expected):
    result = P.plan(desired_of(desired), observed, owned, previous)
    assert set(result.status) == set(expected)
    for name, (state, fragments) in expected.items():
        status = result.status[name]
        assert (status.name, status.state) == (name, state)
        if state == REFUSED:
            for fragment in fragments:
                assert fragment in status.reason
        elif state == ABSENT:
            assert fragments[0] in status.reason
        else:
            assert status.reason is None


def test_conflicts_do_not_depend_on_dict_order():
    for order in ([G1, G_WIDE], [G_WIDE, G1]):
        result = P.plan(desired_of(order), kernel(bridges=["xapi1", "xapi2"]))
        assert result.status["g2"].state == REFUSED


def test_refused_gateway_gets_no_operations():
    observed = kernel(bridges=["xapi1"], addresses=[("eth0", "172.16.1.200/24")])
    result = P.plan(desired_of([G1]), observed)
    assert result.status["g1"].state == REFUSED
    assert result.ops == fresh_rules()  # chains and jumps only; no address, rule, forwarding
    assert result.owned == {}


def test_refused_gateway_loses_its_owned_address():
    observed = converged(G1, addresses=[("xapi1", "172.16.1.1/24"), ("eth0", "172.16.0.1/16")])
    result = P.plan(desired_of([G1]), observed, owned_of({"xapi1": G1.address}), ["g1"])
    assert result.status["g1"].state == REFUSED
    assert result.ops == [RemoveAddress("xapi1", 11, G1.address), delete(G1, "masquerade", 0),
                          delete(G1, "forward-back", 1), delete(G1, "forward-out", 0)]
    assert result.owned == {}


def test_gateway_moved_to_another_bridge():
    """An owned address on the old bridge does not block the move and is removed."""
    observed = converged(G1._replace(bridge="xapi3"), bridges=["xapi1", "xapi3"])
    result = P.plan(desired_of([G1]), observed, owned_of({"xapi3": G1.address}))
    old = G1._replace(bridge="xapi3")
    assert result.ops == (
        [RemoveAddress("xapi3", 13, G1.address), add_address(G1)]
        + [delete(old, "masquerade", 0)] + add_rules("nat", G1)
        + [delete(old, "forward-back", 1), delete(old, "forward-out", 0)]
        + add_rules("filter", G1))
    assert result.owned == owned_of({"xapi1": G1.address})


# ---- questionable behaviours -------------------------------------------------------------

def test_missing_jump_marks_gateways_pending():
    observed = converged(G1, tables=rule_tables(nat_chain=entries([G1], "nat"),
                                                forward=(RH_RULE,),
                                                fwd_chain=entries([G1], "filter")))
    result = P.plan(desired_of([G1]), observed)
    assert result.ops == [FixJump("filter", "FORWARD", FWD, ())]
    assert result.status["g1"].state == PENDING


@pytest.mark.parametrize("gateway, observed, route", [
    pytest.param(gw("g2", "xapi2", "10.9.1.1/24"),
                 kernel(bridges=["xapi2", "xapi5"], addresses=[("xapi5", "172.16.5.1/24")],
                        routes=[("xapi5", "10.9.0.0/16")], tables=rule_tables(),
                        ip_forward=True),
                 "10.9.0.0/16", id="static-route-next-to-owned-address"),
    pytest.param(gw("g2", "xapi2", "172.16.5.1/24"),
                 kernel(bridges=["xapi2", "xapi5"], routes=[("xapi5", "172.16.5.0/24")],
                        tables=rule_tables(), ip_forward=True),
                 "172.16.5.0/24", id="route-where-owned-address-is-gone"),
])
def test_host_route_on_an_interface_with_an_owned_address_still_conflicts(gateway, observed,
                                                                          route):
    owned = owned_of({"xapi5": iface("172.16.5.1/24")})  # left over from a removed gateway
    first = P.plan(desired_of([gateway]), observed, owned)
    sim = Kernel(observed, owned)
    sim.apply(first.ops)
    accepted = [n for n, s in first.status.items() if s.state != REFUSED]
    second = P.plan(desired_of([gateway]), sim.observe(), first.owned, accepted)
    assert second.status["g2"].state == first.status["g2"].state  # no flapping
    assert second.ops == []
    assert first.status["g2"].state == REFUSED
    assert "overlaps route %s on xapi5" % route in first.status["g2"].reason


# ---- a model of the kernel, for the convergence property ---------------------------------

class Kernel(object):
    """The state the planner observes, changed by planner operations as the kernel would.

    Each operation asserts what the kernel would refuse (EEXIST, a missing address, a
    position out of range) and what the daemon promises (it removes only addresses it owns
    and deletes only rules with its own key). Rule positions are list indexes: deleting one
    shifts the later rules up, FixJump deletes then inserts at 0, AddRule appends.
    """

    def __init__(self, observed, owned):
        self.links = dict(observed.links)
        self.addresses = {i: set(a) for i, a in observed.addresses.items()}
        self.routes = set(observed.routes)
        self.tables = {t: {c: [(rv.key, rv.target) for rv in rvs] for c, rvs in chains.items()}
                       for t, chains in observed.tables.items()}
        self.ip_forward = observed.ip_forward
        self.owned = dict(owned or {})

    def observe(self):
        return P.Observed(
            links=dict(self.links),
            addresses={i: frozenset(a) for i, a in self.addresses.items() if a},
            routes=set(self.routes),
            tables={t: {c: views(*rules) for c, rules in chains.items()}
                    for t, chains in self.tables.items()},
            ip_forward=self.ip_forward)

    def apply(self, ops):
        for op in ops:
            getattr(self, "_" + type(op).__name__)(op)

    def _link(self, op):
        link = self.links[op.bridge]
        assert link.index == op.ifindex
        return link

    def _AddAddress(self, op):
        link = self._link(op)
        addrs = self.addresses.setdefault(op.ifindex, set())
        assert op.address not in addrs, "EEXIST: %s" % (op,)
        addrs.add(op.address)
        if link.up:
            self.routes.add(Route(op.address.network, op.ifindex))

    def _RemoveAddress(self, op):
        self._link(op)
        assert any(rec.address == op.address and (rec.ifindex == op.ifindex or (
            rec.ifindex is None and bridge == op.bridge))
            for bridge, rec in self.owned.items()), "not ours: %s" % (op,)
        addrs = self.addresses[op.ifindex]
        assert op.address in addrs, "EADDRNOTAVAIL: %s" % (op,)
        addrs.remove(op.address)
        if not any(a.network == op.address.network for a in addrs):
            self.routes.discard(Route(op.address.network, op.ifindex))

    def _AddRoute(self, op):
        assert self._link(op).up
        assert iface("%s/%d" % (op.source, op.network.prefixlen)) in self.addresses[op.ifindex]
        assert Route(op.network, op.ifindex) not in self.routes, "EEXIST: %s" % (op,)
        self.routes.add(Route(op.network, op.ifindex))

    def _EnsureChain(self, op):
        assert op.chain not in self.tables[op.table]
        self.tables[op.table][op.chain] = []

    def _FixJump(self, op):
        rules = self.tables[op.table][op.builtin]
        assert op.chain in self.tables[op.table], "jump to a missing chain"
        assert list(op.delete) == sorted(op.delete, reverse=True)
        for position in op.delete:
            assert position < len(rules) and rules[position][1] == op.chain, \
                "position %d of %s is not a jump to %s" % (position, op.builtin, op.chain)
            del rules[position]
        rules.insert(0, (None, op.chain))

    def _DeleteRule(self, op):
        rules = self.tables[op.table][op.chain]
        assert R.is_ours(op.key) and op.position < len(rules), op
        assert rules[op.position][0] == op.key, \
            "position %d of %s is %r, not %s" % (op.position, op.chain, rules[op.position], op.key)
        del rules[op.position]

    def _AddRule(self, op):
        assert (op.spec.table, op.spec.chain) == (op.table, op.chain)
        self.tables[op.table][op.chain].append((op.spec.key, op.spec.target))

    def _RemoveChain(self, op):
        chains = self.tables[op.table]
        assert all(R.is_ours(key) for key, _t in chains[op.chain]), \
            "%s holds rules that are not ours" % op.chain
        rules = chains[op.builtin]
        assert list(op.delete) == sorted(op.delete, reverse=True)
        for position in op.delete:
            assert rules[position][1] == op.chain, "position %d of %s is not a jump to %s" % (
                position, op.builtin, op.chain)
            del rules[position]
        referenced = [c for c, rules in chains.items() if any(t == op.chain for _k, t in rules)]
        assert not referenced, "EBUSY: %s still jumped to from %s" % (op.chain, referenced)
        del chains[op.chain]

    def _EnableForwarding(self, op):
        self.ip_forward = True


@pytest.mark.parametrize("gateways", [
    pytest.param([G1], id="one"),
    pytest.param([G1, G2, G3], id="three"),
    pytest.param([G1_FWD, G2_FWD, G3], id="with-forwards"),
])
def test_kernel_model_applies_a_fresh_plan_into_the_converged_state(gateways):
    before = kernel(bridges=[g.bridge for g in gateways])
    sim = Kernel(before, {})
    sim.apply(P.plan(desired_of(gateways), before).ops)
    assert sim.observe() == converged(*gateways)


def test_kernel_model_rejects_ascending_deletes():
    observed = converged(G1, G2)
    sim = Kernel(observed, {})
    with pytest.raises(AssertionError):
        sim.apply([delete(G2, "forward-out", 2), delete(G2, "forward-back", 3)])


# ---- the convergence property ------------------------------------------------------------

BRIDGES = ["xapi%d" % n for n in range(1, 8)]
NAMES = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
# Gateway subnets, pairwise disjoint; FOREIGN adds wider ones that overlap several.
POOL = ([net("172.16.%d.0/24" % n) for n in range(8)]
        + [net("10.%d.0.0/16" % n) for n in (1, 2, 3)]
        + [net("192.168.%d.0/30" % n) for n in (1, 2)])
FOREIGN = POOL + [net("172.16.0.0/16"), net("10.0.0.0/8"), net("192.168.0.0/16")]
# our roles (and the target of their rules) in each of our chains
ROLES = {NAT: (("masquerade", "MASQUERADE"), ("hairpin", "MASQUERADE")),
         PRE: (("dnat", "DNAT"),), OUT: (("dnat-local", "DNAT"),),
         FWD: (("forward-out", "ACCEPT"), ("forward-back", "ACCEPT"), ("forward-dnat", "ACCEPT"))}
# few host ports, so that gateways often want the same one
HOST_PORTS = [("tcp", 8080), ("tcp", 8081), ("udp", 53), ("udp", 8080)]


def random_host(rng, network):
    ip = network[rng.randint(1, network.num_addresses - 2)]
    return iface("%s/%d" % (ip, network.prefixlen))


def random_forwards(rng, address):
    forwards = []
    for proto, port in rng.sample(HOST_PORTS, rng.choice([0, 0, 1, 2])):
        to = address
        while to == address:  # any host of the subnet but the gateway
            to = random_host(rng, address.network)
        forwards.append(model.Forward(proto, port, to.ip, rng.choice([port, 80, 53])))
    return forwards


def random_gateways(rng):
    count = rng.randint(0, 5)
    gateways = []
    for name, bridge, network in zip(rng.sample(NAMES, count), rng.sample(BRIDGES, count),
                                     rng.sample(POOL, count)):
        address = random_host(rng, network)
        gateways.append(model.make_gateway(name, bridge, str(address), nat=rng.random() < 0.7,
                                           forwards=random_forwards(rng, address)))
    return gateways


def random_chain(rng, chain_name, gateways, with_jumps):
    """(builtin rules, our chain's rules or None)."""
    roles = ROLES[chain_name]
    keys = [(s.key, s.target) for g in gateways for s in R.gateway_rules(g)
            if s.chain == chain_name]
    chain = None
    if rng.random() < (0.85 if chain_name not in R.ON_DEMAND else 0.5):
        chain = []
        for _ in range(rng.randint(0, 7)):
            pick = rng.random()
            if pick < 0.55 and keys:
                chain.append(rng.choice(keys))
            elif pick < 0.8:
                role, target = rng.choice(roles)
                stale = R.rule_key(rng.choice(BRIDGES), role, rng.choice(
                    [rng.choice(POOL), "tcp:8080=%s:80" % random_host(rng, rng.choice(POOL)).ip]))
                chain.append((stale, target))
            else:
                chain.append(rng.choice([(None, "DROP"), ("acme:keep", "ACCEPT"),
                                         ("XGW:not-ours", "RETURN")]))
    builtin = [RH_RULE] if chain_name == FWD else []
    for _ in range(rng.randint(0, 2)):
        builtin.insert(rng.randint(0, len(builtin)), rng.choice([(None, "RETURN"),
                                                                ("libvirt", "ACCEPT")]))
    if chain is not None and with_jumps:
        jump = (None, chain_name)
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            builtin.insert(rng.randint(0, len(builtin)), jump)
    return builtin, chain


def random_state(rng, gateways):
    """(observed, owned, previous): consistent with a kernel, arbitrary otherwise.

    Foreign routes are put on eth0 only: on a bridge with an owned address they would hit
    the bug shown by test_host_route_on_an_interface_with_an_owned_address_still_conflicts.
    """
    on_bridge = dict((g.bridge, g) for g in gateways)
    links = {"eth0": Link(1, "eth0", True, None)}
    addresses = {1: set([ETH0_ADDRESS])}
    routes = set([DEFAULT_ROUTE, Route(ETH0_ADDRESS.network, 1)])
    if rng.random() < 0.3:
        addresses[1].add(random_host(rng, rng.choice(FOREIGN)))
    if rng.random() < 0.3:
        routes.add(Route(rng.choice(FOREIGN), 1))
    owned = {}
    for bridge in BRIDGES:
        gateway = on_bridge.get(bridge)
        if rng.random() < 0.75:
            link = links[bridge] = Link(INDEX[bridge], bridge, rng.random() < 0.8,
                                        rng.choice(("bridge", "bridge", "openvswitch", "veth")))
            addrs = addresses[link.index] = set()
            if gateway is not None and rng.random() < 0.6:
                addrs.add(gateway.address)
            if rng.random() < 0.25:
                addrs.add(random_host(rng, rng.choice(POOL)))
            if link.up:
                routes.update(Route(a.network, link.index) for a in addrs
                              if rng.random() < 0.9)
            choices = list(addrs)
        else:
            choices = []
        if gateway is not None:
            choices.append(gateway.address)
        choices.append(random_host(rng, rng.choice(POOL)))
        if rng.random() < 0.4:
            # on its link; on a link renamed since (any index); or on an unknown one
            where = rng.choice([INDEX[bridge]] * 4 + [None, rng.choice(sorted(INDEX.values()))])
            owned[bridge] = P.Owned(rng.choice(choices), where)
    observed_tables = {}
    for table, builtin_name, chain_name in R.OWN_CHAINS:
        builtin, chain = random_chain(rng, chain_name, gateways, with_jumps=True)
        chains = observed_tables.setdefault(table, {})
        chains[builtin_name] = views(*builtin)
        if chain is not None:
            chains[chain_name] = views(*chain)
    observed = P.Observed(links=links,
                          addresses={i: frozenset(a) for i, a in addresses.items()},
                          routes=routes, tables=observed_tables,
                          ip_forward=rng.random() < 0.5)
    names = [g.name for g in gateways]
    previous = rng.sample(names, rng.randint(0, len(names)))
    return observed, owned, previous


def check_outcome(desired, before, after, first):
    """What the user sees once the first plan is applied."""
    live = [desired[n] for n, s in first.status.items() if s.state in (APPLIED, PENDING, DOWN)]
    assert set(first.status) == set(desired)
    assert first.owned == dict((g.bridge, P.Owned(g.address, INDEX[g.bridge])) for g in live)
    for g in live:
        link = after.links[g.bridge]
        assert g.address in after.addresses[link.index]
        if link.up:
            assert Route(g.network, link.index) in after.routes
    wanted = R.desired_rules(live)
    for table, builtin, chain in R.OWN_CHAINS:
        old = before.tables[table].get(chain, [])
        if (chain in R.ON_DEMAND and not wanted[(table, chain)]
                and all(R.is_ours(rv.key) for rv in old)):
            # not needed, and nobody else's: gone, with its jumps
            assert chain not in after.tables[table]
            assert ([rv[1:] for rv in after.tables[table][builtin]]
                    == [rv[1:] for rv in before.tables[table][builtin] if rv.target != chain])
            continue
        rules = after.tables[table][chain]
        ours = sorted(rv.key for rv in rules if R.is_ours(rv.key))
        assert ours == sorted(wanted[(table, chain)])
        assert ([(rv.key, rv.target) for rv in rules if not R.is_ours(rv.key)]
                == [(rv.key, rv.target) for rv in old if not R.is_ours(rv.key)])
        jumps = [rv.position for rv in after.tables[table][builtin] if rv.target == chain]
        assert jumps == [0]
        assert ([rv[1:] for rv in after.tables[table][builtin] if rv.target != chain]
                == [rv[1:] for rv in before.tables[table][builtin] if rv.target != chain])
    assert after.ip_forward == (before.ip_forward or bool(live))


@pytest.mark.parametrize("seed", range(8))
def test_applying_a_plan_converges(seed):
    rng = random.Random(seed)
    for iteration in range(50):
        gateways = random_gateways(rng)
        desired = desired_of(gateways)
        before, owned, previous = random_state(rng, gateways)
        pristine = copy.deepcopy((before, owned))

        first = P.plan(desired, before, owned, previous)
        assert (before, owned) == pristine, "plan() changed its inputs"
        assert P.plan(desired, before, owned, previous) == first, "plan() is not deterministic"

        sim = Kernel(before, owned)
        sim.apply(first.ops)
        after = sim.observe()
        accepted = [n for n, s in first.status.items() if s.state != REFUSED]
        second = P.plan(desired, after, first.owned, accepted)

        context = ("seed %d iteration %d\ndesired %r\nbefore %r\nowned %r\nprevious %r\n"
                   "first %r\nsecond %r" % (seed, iteration, list(desired.values()), before,
                                            owned, previous, first, second.ops))
        assert second.ops == [], context
        assert second.owned == first.owned, context
        for name, status in first.status.items():
            expected = status.state
            if status.state in (APPLIED, PENDING, DOWN):
                # in place: applied, or waiting for its bridge to come up
                expected = APPLIED if after.links[status.bridge].up else DOWN
            assert second.status[name].state == expected, context
        check_outcome(desired, before, after, first)




def test_our_rule_with_altered_content_is_replaced():
    gateway = model.make_gateway("private", "xapi1", "172.16.1.1/24")
    observed = converged(gateway)
    spec = [s for s in R.gateway_rules(gateway) if s.table == "filter"][0]
    chain = observed.tables["filter"][R.CHAIN_OF["filter"]]
    # as read back from the kernel, every field as desired...
    exact = R.match_of(spec)
    chain[0] = RuleView(chain[0].position, chain[0].key, chain[0].target, exact)
    assert P.plan({"private": gateway}, observed).ops == []
    # ...then someone changes the interface of that rule, keeping our comment
    chain[0] = RuleView(chain[0].position, chain[0].key, chain[0].target,
                        exact[:2] + ("xapi9",) + exact[3:])
    result = P.plan({"private": gateway}, observed)
    assert result.ops == [DeleteRule("filter", R.CHAIN_OF["filter"], 0, spec.key),
                          AddRule("filter", R.CHAIN_OF["filter"], spec)]
    assert result.status["private"].state == P.PENDING


@pytest.mark.parametrize("role, altered", [
    pytest.param("dnat", dict(to_destination="172.16.1.99:80"), id="dnat-destination"),
    pytest.param("dnat", dict(dport=8081), id="dnat-port"),
    pytest.param("dnat", dict(dst_type=None), id="dnat-addrtype-dropped"),
    pytest.param("dnat-local", dict(dst=None), id="local-dnat-loopback-exclusion-dropped"),
    pytest.param("forward-dnat", dict(proto="udp"), id="accept-protocol"),
    pytest.param("hairpin", dict(out_iface="xapi9"), id="hairpin-interface"),
])
def test_our_forward_rule_with_altered_content_is_replaced(role, altered):
    """The observer reads every field of match_of back: a forward rule changed in place
    under our comment is replaced, and one read back exactly as wanted is left alone."""
    observed = converged(G1_FWD)
    spec = [s for s in R.gateway_rules(G1_FWD) if s.key == key(G1_FWD, role, WEB)][0]
    table = observed.tables[spec.table]
    for chain in table.values():  # everything read back exactly as wanted...
        for n, rv in enumerate(chain):
            wanted = [s for s in R.gateway_rules(G1_FWD) if s.key == rv.key]
            chain[n] = rv._replace(match=R.match_of(wanted[0]) if wanted else R.match_of(
                R.RuleSpec(*(None,) * 9)))
    assert P.plan({"g1": G1_FWD}, observed).ops == []
    chain = table[spec.chain]
    position = [rv.key for rv in chain].index(spec.key)
    # ...then someone changes that rule in place, keeping our comment
    chain[position] = chain[position]._replace(match=R.match_of(spec._replace(**altered)))
    result = P.plan({"g1": G1_FWD}, observed)
    assert result.ops == [DeleteRule(spec.table, spec.chain, position, spec.key),
                          AddRule(spec.table, spec.chain, spec)]
    assert result.status["g1"].state == P.PENDING
