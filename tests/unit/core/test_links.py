"""VLAN links between private networks, as core.links decides them from network records:
every kind of bad link with the sentence a user reads in status, and the accepted ones."""
import pytest

from agent.core import desired, links
from agent.core.links import ACCEPTED, INVALID, REFUSED, DesiredLink

P = "0f0f0f0f-0000-4000-8000-000000000001"   # private: the parent
A = "1a1a1a1a-0000-4000-8000-000000000002"   # br100
B = "2b2b2b2b-0000-4000-8000-000000000003"
C = "3c3c3c3c-0000-4000-8000-000000000004"
V = "4d4d4d4d-0000-4000-8000-000000000005"   # a VLAN network (has a PIF)
H = "5e5e5e5e-0000-4000-8000-000000000006"   # the HIMN
NAMES = {P: "private", A: "br100", B: "storage", C: "backup", V: "vlan200", H: "himn"}


def net(uuid, link=None, pifs=(), bridge=None, other=None):
    config = dict(other or {})
    if link is not None:
        config[desired.LINK] = link
    return {"uuid": uuid, "name_label": NAMES[uuid], "bridge": bridge or "xapi%d" %
            sorted(NAMES).index(uuid), "other_config": config, "PIFs": list(pifs)}


def records(*nets):
    base = {P: net(P), V: net(V, pifs=["OpaqueRef:pif-v"]),
            H: net(H, bridge="xenapi",
                   other={"is_host_internal_management_network": "true"})}
    for n in nets:
        base[n["uuid"]] = n
    return {"OpaqueRef:" + uuid: rec for uuid, rec in base.items()}


def verdict(recs, uuid, **kw):
    st = links.resolve(recs, **kw).status[uuid]
    return st.state, st.reason


def test_a_network_declared_a_vlan_of_private_gets_its_patch_pair():
    resolved = links.resolve(records(net(A, "%s:102" % P)))
    assert resolved.links == (DesiredLink(A, "xapi1", P, "xapi0", 102),)
    st = resolved.status[A]
    assert (st.name, st.parent, st.parent_name, st.tag, st.state, st.reason) == \
        ("br100", P, "private", 102, ACCEPTED, None)


def test_no_key_no_link_and_a_link_alone_is_no_gateway():
    assert links.resolve(records()) == links.Resolved((), {})
    recs = records(net(A, "%s:102" % P))
    assert desired.gateways_from_networks(recs) == ({}, {})
    assert desired.read_gateway(recs["OpaqueRef:" + A]) is None


def test_a_link_beside_a_gateway_leaves_the_gateway_as_it_is():
    recs = records(net(A, "%s:102" % P, other={desired.ADDRESS: "172.16.5.1/24"}))
    gateways, invalid = desired.gateways_from_networks(recs)
    assert list(gateways) == ["br100"] and invalid == {}
    assert links.resolve(recs).status[A].state == ACCEPTED


# (id, the child's link value, the other networks, state, the reason's words)
BAD = [
    ("not-parent-colon-tag", P, [], INVALID,
     "xapi-gateway.link %r is not PARENT:TAG: write the parent network's uuid, a colon and "
     "the VLAN tag" % P),
    ("empty", "", [], INVALID, "xapi-gateway.link is empty"),
    ("tag-missing", P + ":", [], INVALID, "is not PARENT:TAG"),
    ("tag-zero", P + ":0", [], INVALID,
     "xapi-gateway.link tag 0 is not a VLAN tag: use a whole number from 1 to 4094 (0 is "
     "untagged, 4095 reserved)"),
    ("tag-4095", P + ":4095", [], INVALID, "tag 4095 is not a VLAN tag"),
    ("tag-not-a-number", P + ":tenth", [], INVALID,
     "xapi-gateway.link tag 'tenth' is not a VLAN tag: use a whole number from 1 to 4094"),
    ("tag-negative", P + ":-5", [], INVALID, "tag '-5' is not a VLAN tag"),
    ("tag-decimal", P + ":10.5", [], INVALID, "tag '10.5' is not a VLAN tag"),
    ("parent-with-a-control-character", "pri\tvate:5", [], INVALID,
     "parent 'pri\\tvate' is not a network: give the parent network's uuid"),
    ("unknown-parent", "9d9d9d9d-0000-4000-8000-000000000000:102", [], INVALID,
     "parent network 9d9d9d9d-0000-4000-8000-000000000000 does not exist"),
    ("parent-by-name-in-xe", "private:102", [], INVALID,
     "parent network private does not exist; xapi-gateway.link takes the parent's uuid: %s"
     % P),
    ("itself", A + ":102", [], INVALID,
     "a network cannot be a VLAN of itself; name another network"),
    ("parent-has-a-pif", V + ":102", [], REFUSED,
     "its parent vlan200 has a PIF (a physical or VLAN network): on Dom0 that bridge is "
     "the wire or a VLAN of it"),
    ("parent-is-the-himn", H + ":102", [], REFUSED,
     "its parent himn is the host internal management network, which XAPI manages; it "
     "cannot be linked"),
    ("cycle-of-two", B + ":5", [net(B, A + ":6")], REFUSED,
     "the links form a cycle (br100 (%s) -> storage (%s) -> br100 (%s)): a network cannot "
     "be a VLAN of its own VLAN" % (A, B, A)),
    ("cycle-of-three", B + ":5", [net(B, C + ":6"), net(C, A + ":7")], REFUSED,
     "the links form a cycle (br100 (%s) -> storage (%s) -> backup (%s) -> br100 (%s))"
     % (A, B, C, A)),
    ("parent-is-a-link-itself", B + ":5", [net(B, P + ":6")], REFUSED,
     "parent storage (%s) is itself declared a VLAN of another network; links do not "
     "chain" % B),
]


@pytest.mark.parametrize("link,others,state,reason", [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_every_kind_of_bad_link_gets_its_state_and_changes_nothing(link, others, state,
                                                                   reason):
    recs = records(net(A, link), *others)
    resolved = links.resolve(recs)
    got_state, got_reason = resolved.status[A].state, resolved.status[A].reason
    assert (got_state, reason in got_reason) == (state, True), got_reason
    assert all(dl.network != A for dl in resolved.links)


def test_a_child_with_a_pif_is_refused_too():
    recs = records(net(A, P + ":102", pifs=["OpaqueRef:pif-a"]))
    assert verdict(recs, A) == (REFUSED, links.resolve(recs).status[A].reason)
    assert verdict(recs, A)[1].startswith("it has a PIF (a physical or VLAN network)")


def test_the_himn_cannot_be_a_child():
    him = net(H, P + ":3", bridge="xenapi",
              other={"is_host_internal_management_network": "true"})
    state, reason = verdict(records(him), H)
    assert state == REFUSED and reason.startswith("it is the host internal management")


def test_a_cycle_refuses_all_its_links_and_nothing_else():
    recs = records(net(A, B + ":5"), net(B, A + ":6"), net(C, P + ":7"))
    resolved = links.resolve(recs)
    assert [dl.network for dl in resolved.links] == [C]
    assert resolved.status[A].state == resolved.status[B].state == REFUSED
    assert resolved.status[A].reason == resolved.status[B].reason


def test_two_children_on_one_tag_the_lowest_uuid_keeps_it():
    recs = records(net(B, P + ":102"), net(A, P + ":102"), net(C, P + ":103"))
    resolved = links.resolve(recs)
    assert [(dl.network, dl.tag) for dl in resolved.links] == [(A, 102), (C, 103)]
    assert verdict(recs, B) == (
        REFUSED, "tag 102 of network private (%s) is the link of network br100 (%s) "
        "already; choose another tag" % (P, A))
    # a change check keeps the tag with the link that had it
    assert links.resolve(recs, first=[B]).status[A].state == REFUSED


def test_the_linux_bridge_backend_refuses_every_link_with_the_reason():
    recs = records(net(A, P + ":102"), net(B, P + ":7"), net(C, P + ":0"))
    resolved = links.resolve(recs, backend=links.BRIDGE)
    assert resolved.links == ()
    assert verdict(recs, A, backend=links.BRIDGE) == (
        REFUSED, "this host uses Linux bridges (network.conf: bridge); a link is a pair of "
        "Open vSwitch patch ports, so it needs the openvswitch backend")
    assert resolved.status[C].state == INVALID   # a bad value says what is wrong with it


def test_one_bad_link_does_not_stop_the_others():
    recs = records(net(A, P + ":102"), net(B, "nonsense"), net(C, C + ":4"))
    resolved = links.resolve(recs)
    assert [dl.network for dl in resolved.links] == [A]
    assert [resolved.status[u].state for u in (A, B, C)] == [ACCEPTED, INVALID, INVALID]


def test_check_refuses_a_new_link_that_takes_a_tag_or_breaks_another():
    before = records(net(B, P + ":102"))
    taking = records(net(B, P + ":102"), net(A, P + ":102"))   # A is the lower uuid
    assert links.check(before, taking, [A]) == (
        REFUSED, "tag 102 of network private (%s) is the link of network storage (%s) "
        "already; choose another tag" % (P, B))
    chaining = records(net(B, P + ":102"), net(P, C + ":9"), net(C))
    state, reason = links.check(records(net(B, P + ":102"), net(C)), chaining, [P])
    assert state == REFUSED and reason.startswith(
        "it would break the link of network storage: parent private")
    assert links.check(before, records(net(B, P + ":102"), net(A, P + ":103")), [A]) is None
    assert links.check(before, records(net(B)), [B]) is None   # dropping one is fine
