"""Placement: tables of pool snapshots -> which host serves each gateway, and why.

Every host must compute the same answer from the pool database alone: each case is
checked from every host's point of view, and all of them must name the same serving host.
"""
import pytest

from agent.core import desired, model, placement
from agent.core.placement import Host, Network, Pool

A, B, C = "1aaa", "2bbb", "3ccc"   # host uuids: A is the lowest
VLAN, PRIV = "net-vlan", "net-priv"


def hosts(*specs):
    """``"A"`` a live enabled host, ``"A-"`` disabled, ``"A!"`` dead, ``"A-!"`` both."""
    out = []
    for spec in specs:
        uuid = {"A": A, "B": B, "C": C}[spec[0]]
        out.append(Host(uuid, "host-" + spec[0].lower(), "-" not in spec, "!" not in spec))
    return tuple(out)


def pool(members, vlan_on=(A, B, C), priv_on=()):
    return Pool(hosts(*members), {VLAN: Network(VLAN, True, frozenset(vlan_on)),
                                  PRIV: Network(PRIV, False, frozenset(priv_on))})


def gateway(network=VLAN, host=None, name="gw"):
    return model.make_gateway(name, "xapi1", "172.16.1.1/24",
                              source="config" if network is None else "xapi:" + network,
                              host=host)


# id, pool, gateway, serving host (None: nobody), reason fragment
CASES = [
    ("lowest-uuid", pool("ABC"), gateway(), A,
     "lowest uuid among the live, enabled hosts with the network attached"),
    ("order-of-records-does-not-matter", pool("CBA"), gateway(), A, "lowest uuid"),
    ("lowest-is-disabled", pool(["A-", "B", "C"]), gateway(), B, "lowest uuid"),
    ("lowest-is-dead", pool(["A!", "B", "C"]), gateway(), B, "lowest uuid"),
    ("lowest-lacks-the-network", pool("ABC", vlan_on=(B, C)), gateway(), B, "lowest uuid"),
    ("all-disabled-the-live-serve", pool(["A-", "B-", "C-!"]), gateway(), A,
     "no enabled host has the network attached; lowest uuid among the live ones"),
    ("one-host-pool-in-maintenance", pool(["A-"], vlan_on=(A,)), gateway(), A,
     "lowest uuid among the live ones"),
    ("nobody-live", pool(["A!", "B!", "C-!"]), gateway(), None,
     "no live host has the network attached"),
    ("nobody-attached", pool("ABC", vlan_on=()), gateway(), None,
     "no live host has the network attached"),
    ("pinned-by-uuid", pool("ABC"), gateway(host=C), C, "pinned (xapi-gateway.host)"),
    ("pinned-by-name", pool("ABC"), gateway(host="host-b"), B, "pinned"),
    ("pinned-host-dead", pool(["A", "B", "C!"]), gateway(host=C), A,
     "pinned to host-c, which is not live; lowest uuid among the live, enabled hosts"),
    ("pinned-host-disabled", pool(["A", "B", "C-"]), gateway(host="host-c"), A,
     "pinned to host-c, which is disabled; lowest uuid"),
    ("pinned-host-lacks-network", pool("ABC", vlan_on=(A, B)), gateway(host=C), A,
     "pinned to host-c, which does not have the network attached"),
    ("private-unused", pool("ABC"), gateway(PRIV), "each",
     "host-local: served by the host that has its bridge, none has it now"),
    ("private-in-use-on-b", pool("ABC", priv_on=(B,)), gateway(PRIV), B,
     "host-local"),
    ("private-pin-does-not-move-it", pool("ABC", priv_on=(B,)), gateway(PRIV, host=C), B,
     "a pin does not move a host-local network"),
    ("private-on-a-dead-host-stays", pool(["A", "B!", "C"], priv_on=(B,)), gateway(PRIV), B,
     "host-local"),
    ("unknown-network-is-host-local", pool("ABC"), gateway("net-gone"), "each",
     "host-local"),
    ("config-file-unpinned", pool("ABC"), gateway(None), "each", "config file of this host"),
    ("config-file-pinned", pool("ABC"), gateway(None, host="host-b"), B,
     "pinned"),
]


@pytest.mark.parametrize("snapshot,gw,serving,reason", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_every_host_computes_the_same_placement(snapshot, gw, serving, reason):
    decisions = {h.uuid: placement.place(snapshot, h.uuid, [gw])[gw.name]
                 for h in snapshot.hosts}
    for uuid, decision in decisions.items():
        assert reason in decision.reason, (uuid, decision)
    here = sorted(uuid for uuid, d in decisions.items() if d.here)
    if serving == "each":  # host-local, unused: whichever host makes its bridge serves it
        assert here == sorted(decisions)
    elif serving is None:
        assert here == [] and {d.state for d in decisions.values()} == {placement.UNSERVED}
    else:
        assert here == [serving]
        assert {d.host.uuid for d in decisions.values()} == {serving}
        assert all(d.state == placement.ELSEWHERE for u, d in decisions.items()
                   if u != serving)


@pytest.mark.parametrize("pin,fragment", [
    ("host-z", "xapi-gateway.host 'host-z' is no host of this pool; hosts: host-a (1aaa), "
               "host-b (2bbb), host-c (3ccc)"),
    ("9999", "is no host of this pool"),
    ("twin", "xapi-gateway.host 'twin' names 2 hosts of the pool (1aaa, 2bbb); pin by uuid"),
])
def test_a_pin_naming_no_single_host_makes_the_gateway_invalid_everywhere(pin, fragment):
    members = hosts("A", "B", "C")
    if pin == "twin":
        members = (members[0]._replace(name="twin"), members[1]._replace(name="twin"),
                   members[2])
    snapshot = Pool(members, {VLAN: Network(VLAN, True, frozenset([A, B, C]))})
    for h in members:
        decision = placement.place(snapshot, h.uuid, [gateway(host=pin)])["gw"]
        assert (decision.state, decision.host, decision.here) == (placement.INVALID, None,
                                                                  False)
        assert fragment in decision.reason


def test_a_private_network_in_use_on_several_hosts_is_served_by_each_for_its_own_bridge():
    snapshot = pool("ABC", priv_on=(A, C))
    states = {h.uuid: placement.place(snapshot, h.uuid, [gateway(PRIV)])["gw"].state
              for h in snapshot.hosts}
    assert states == {A: placement.HERE, B: placement.ELSEWHERE, C: placement.HERE}


def test_decision_as_the_api_shows_it():
    decision = placement.place(pool("ABC"), B, [gateway()])["gw"]
    assert decision.as_dict() == {
        "host": A, "host_name": "host-a",
        "placement": "lowest uuid among the live, enabled hosts with the network attached"}


# ---- snapshot: the Pool that XAPI records describe ---------------------------------------
def _records():
    hosts_ = {"OpaqueRef:h1": {"uuid": B, "name_label": "two", "enabled": True,
                               "metrics": "OpaqueRef:m1"},
              "OpaqueRef:h2": {"uuid": A, "name_label": "one", "enabled": False,
                               "metrics": "OpaqueRef:m2"},
              "OpaqueRef:h3": {"uuid": C, "name_label": "three", "enabled": True,
                               "metrics": "OpaqueRef:gone"}}
    metrics = {"OpaqueRef:m1": {"live": True}, "OpaqueRef:m2": {"live": False}}
    networks = {"OpaqueRef:n1": {"uuid": VLAN}, "OpaqueRef:n2": {"uuid": PRIV},
                "OpaqueRef:n3": {"uuid": "net-idle"}}
    pifs = {"OpaqueRef:p1": {"network": "OpaqueRef:n1", "host": "OpaqueRef:h1",
                             "currently_attached": True},
            "OpaqueRef:p2": {"network": "OpaqueRef:n1", "host": "OpaqueRef:h2",
                             "currently_attached": True},
            "OpaqueRef:p3": {"network": "OpaqueRef:n1", "host": "OpaqueRef:h3",
                             "currently_attached": False}}
    vms = {"OpaqueRef:v1": {"resident_on": "OpaqueRef:h3"},
           "OpaqueRef:v2": {"resident_on": "OpaqueRef:NULL"}}
    vifs = {"OpaqueRef:f1": {"VM": "OpaqueRef:v1", "network": "OpaqueRef:n2",
                             "currently_attached": True},
            "OpaqueRef:f2": {"VM": "OpaqueRef:v2", "network": "OpaqueRef:n3",
                             "currently_attached": False},
            "OpaqueRef:f3": {"VM": "OpaqueRef:v1", "network": "OpaqueRef:n1",
                             "currently_attached": True}}
    return hosts_, metrics, networks, pifs, vifs, vms


def test_snapshot_reads_hosts_liveness_and_where_networks_are_attached():
    snap = placement.snapshot(*_records())
    assert snap.hosts == (Host(A, "one", False, False), Host(B, "two", True, True),
                          Host(C, "three", True, True))  # metrics unknown: live
    assert snap.networks == {
        VLAN: Network(VLAN, True, frozenset([A, B])),   # C's PIF is unplugged; a VIF does
        PRIV: Network(PRIV, False, frozenset([C])),     # not make a wired network attached
        "net-idle": Network("net-idle", False, frozenset())}


def test_snapshot_and_place_from_xapi_records():
    snap = placement.snapshot(*_records())
    gws, invalid = desired.gateways_from_networks({
        "OpaqueRef:n1": {"uuid": VLAN, "name_label": "vlan", "bridge": "xapi1",
                         "other_config": {desired.ADDRESS: "172.16.1.1/24"}},
        "OpaqueRef:n2": {"uuid": PRIV, "name_label": "priv", "bridge": "xapi2",
                         "other_config": {desired.ADDRESS: "172.16.2.1/24",
                                          desired.HOST: "one"}}})
    assert invalid == {}
    on_c = placement.place(snap, C, gws.values())
    assert (on_c["vlan"].state, on_c["vlan"].host.name) == (placement.ELSEWHERE, "two")
    assert on_c["priv"].state == placement.HERE
    assert "a pin does not move a host-local network" in on_c["priv"].reason


@pytest.mark.parametrize("me,unreachable,serving,reason", [
    (B, {A}, B, "lowest uuid among the live, enabled hosts"),     # A died: B's view
    (A, {B, C}, A, "lowest uuid among the live, enabled hosts"),  # never itself
    (C, {A, B}, C, "lowest uuid among the live, enabled hosts"),
    (C, set(), A, "lowest uuid"),
])
def test_reachability_from_heartbeats_is_an_input(me, unreachable, serving, reason):
    snap = pool("ABC").reaching(unreachable - {me})
    decision = placement.place_one(snap, me, gateway())
    assert decision.host.uuid == serving and reason in decision.reason
    assert decision.here == (serving == me)


def test_an_unreachable_pinned_host_is_passed_over_and_the_reason_says_why():
    snap = pool("ABC").reaching({B})
    decision = placement.place_one(snap, A, gateway(host=B))
    assert decision.host.uuid == A
    assert "pinned to host-b, which is unreachable (no heartbeat)" in decision.reason
    assert placement.unfit(snap, VLAN, B) == "is unreachable (no heartbeat)"
    assert placement.unfit(snap, VLAN, "9zzz") == "is no host of the pool"
    assert placement.unfit(snap, VLAN, A) == ""


def test_management_addresses_from_pif_records():
    hosts_ = {"OpaqueRef:h1": {"uuid": A, "address": "10.0.0.1"},
              "OpaqueRef:h2": {"uuid": B, "address": "10.0.0.9"},
              "OpaqueRef:h3": {"uuid": C}}
    pifs = {"p1": {"host": "OpaqueRef:h2", "management": True, "IP": "10.0.0.2"},
            "p2": {"host": "OpaqueRef:h2", "management": False, "IP": "192.0.2.1"},
            "p3": {"host": "OpaqueRef:h1", "management": True, "IP": ""}}
    assert placement.management_addresses(hosts_, pifs) == {
        A: "10.0.0.1", B: "10.0.0.2", C: ""}
