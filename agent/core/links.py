"""VLAN links between private networks: the contract between what users declare and what
the reconciler writes to Open vSwitch (pure, no I/O).

A network declared a VLAN of another (``xapi-gateway.link=<parent network uuid>:<tag>`` in
its other_config) is joined to its parent by an OVS patch-port pair: one port on the
child's bridge, its peer on the parent's bridge with ``tag=<tag>`` (the tag goes on the
parent's side: measured, a tag on the child's side passes nothing). Every frame from the
child's bridge enters the parent's as VLAN ``tag``; so a VM with one NIC on the child
reaches the parent's ports of that tag and no other.

The user-facing side (parsing, validation, entry points, states) produces DesiredLink
values; the reconciler's OVS side consumes them and makes, repairs and removes the pairs.
"""
from collections import namedtuple

from agent.core import model
from agent.core.desired import LINK
from agent.errors import GatewayInvalid


class DesiredLink(namedtuple("DesiredLink", "network child_bridge parent parent_bridge tag")):
    """One patch-port pair that should exist on this host.

    ``network``: the child network's uuid (the one whose other_config holds the link);
    ``child_bridge``: its bridge on this host; ``parent``: the parent network's uuid;
    ``parent_bridge``: the parent's bridge on this host; ``tag``: int, 1-4094, set on the
    parent's patch port.
    """
    __slots__ = ()


# ---- what users declare, validated against the other networks (pure) -----------------------
#
# Per declaring network, one LinkStatus: ACCEPTED (a DesiredLink is made of it), INVALID (its
# value is wrong by itself) or REFUSED (valid, but it cannot be made beside the others or on
# this host). The rules, in the order they are applied:
#
# invalid   the value is not PARENT:TAG, or the tag is not 1-4094 (agent.core.model);
#           a network named as its own parent; a parent uuid that is no network.
# refused   the host internal management network on either side (XAPI owns it);
#           a child or a parent with a PIF (a physical or VLAN network): a VLAN network
#           is, on Dom0, an OVS fake bridge of its physical network's bridge, and a
#           physical network's bridge is the wire itself, so a tag into either is QinQ or
#           puts private traffic onto the wire; a child with a PIF already has its segment;
#           links that form a cycle (A -> B -> A, or longer): all of them;
#           a parent that declares a link of its own: links do not chain (the parent's patch
#           port is an access port of its own parent, which drops frames that carry a tag,
#           so the grandchild's frames would go nowhere);
#           the Linux-bridge backend: a link is a pair of OVS patch ports (kernel VLAN
#           devices or bridge VLAN filtering are not used);
#           two children on one tag of one parent: the one with the lowest uuid keeps the
#           tag (the same answer on every host of a pool), the others are refused. A change
#           check (``check``) keeps the links accepted before first, so a new link never
#           takes a tag away from one in place.
ACCEPTED = "accepted"
INVALID = "invalid"
REFUSED = "refused"
OPENVSWITCH, BRIDGE = "openvswitch", "bridge"     # agent.adapters.ovsdb's backend names
HIMN_KEY = "is_host_internal_management_network"


class LinkStatus(namedtuple("LinkStatus", "network name bridge parent parent_name tag "
                                          "state reason")):
    """What status and the API show for one network that declares a link: ``network``,
    ``name``, ``bridge`` (its uuid, name_label, bridge); ``parent`` (the parent's uuid, or
    the text given when it names no network; None when the value cannot be read),
    ``parent_name``, ``tag`` (None when unreadable); ``state`` and ``reason`` (None when
    accepted)."""
    __slots__ = ()

    def as_dict(self):
        return dict(self._asdict())


class Resolved(namedtuple("Resolved", "links status")):
    """``links``: tuple of DesiredLink (accepted ones, by child uuid); ``status``:
    {child network uuid: LinkStatus}, every network that declares a link."""
    __slots__ = ()


def declared(records):
    """{child uuid: (ref, record)} of the network records that hold a link key."""
    return {rec.get("uuid", ref): (ref, rec) for ref, rec in records.items()
            if LINK in rec.get("other_config", {})}


def resolve(records, backend=OPENVSWITCH, first=()):
    """The links that network ``records`` ({ref: network record}, as XAPI returns them)
    declare, checked together (see the rules above). ``backend``: the host's network
    backend (OPENVSWITCH or BRIDGE); ``first``: child uuids that keep their tag before the
    lowest-uuid rule applies (a change check passes the links accepted before it)."""
    by_uuid = {rec.get("uuid", ref): rec for ref, rec in records.items()}
    children = declared(records)
    status, edges = {}, {}

    def mark(uuid, state, reason, parent=None, tag=None):
        rec = children[uuid][1]
        prec = by_uuid.get(parent) if parent is not None else None
        status[uuid] = LinkStatus(uuid, rec.get("name_label", ""), rec.get("bridge", ""),
                                  parent, prec.get("name_label") if prec else None, tag,
                                  state, reason)

    for uuid in sorted(children):
        rec = children[uuid][1]
        try:
            parent, tag = model.parse_link(rec["other_config"][LINK], LINK)
        except GatewayInvalid as exc:
            mark(uuid, INVALID, str(exc))
            continue
        problem = _own_problem(uuid, rec, parent, by_uuid)
        if problem is not None:
            mark(uuid, problem[0], problem[1], parent, tag)
        else:
            edges[uuid] = (parent, tag)
    for uuid, cycle in _cycles(edges).items():
        parent, tag = edges.pop(uuid)
        mark(uuid, REFUSED, "the links form a cycle (%s): a network cannot be a VLAN of its "
             "own VLAN; drop one of them" % " -> ".join(_label(by_uuid, u) for u in cycle),
             parent, tag)
    for uuid in sorted(edges):
        parent, tag = edges[uuid]
        if parent in children:
            mark(uuid, REFUSED, "parent %s is itself declared a VLAN of another network; "
                 "links do not chain (its patch port drops tagged frames): link this network "
                 "to %s's parent instead" % (_label(by_uuid, parent), _label(by_uuid, parent)),
                 parent, tag)
            del edges[uuid]
    if backend == BRIDGE:
        for uuid in sorted(edges):
            mark(uuid, REFUSED, "this host uses Linux bridges (network.conf: bridge); a link "
                 "is a pair of Open vSwitch patch ports, so it needs the openvswitch "
                 "backend", *edges[uuid])
        edges = {}
    holders = {}
    keep = set(first)
    for uuid in sorted(edges, key=lambda u: (u not in keep, u)):
        parent, tag = edges[uuid]
        holder = holders.setdefault((parent, tag), uuid)
        if holder != uuid:
            mark(uuid, REFUSED, "tag %d of network %s is the link of network %s already; "
                 "choose another tag" % (tag, _label(by_uuid, parent),
                                         _label(by_uuid, holder)), parent, tag)
    links = []
    for (parent, tag), uuid in holders.items():
        rec = children[uuid][1]
        links.append(DesiredLink(uuid, rec.get("bridge", ""), parent,
                                 by_uuid[parent].get("bridge", ""), tag))
        mark(uuid, ACCEPTED, None, parent, tag)
    return Resolved(tuple(sorted(links)), dict(sorted(status.items())))


def _own_problem(uuid, rec, parent, by_uuid):
    """(state, reason) of what is wrong with one link by itself, or None."""
    if parent == uuid:
        return INVALID, "a network cannot be a VLAN of itself; name another network"
    prec = by_uuid.get(parent)
    if prec is None:
        named = sorted(u for u, r in by_uuid.items() if r.get("name_label") == parent)
        hint = "; %s takes the parent's uuid: %s" % (LINK, " or ".join(named)) if named else ""
        return INVALID, unknown_parent(parent) + hint
    for side, r in (("it", rec), ("its parent %s" % prec.get("name_label", parent), prec)):
        if r.get("other_config", {}).get(HIMN_KEY) == "true":
            return REFUSED, ("%s is the host internal management network, which XAPI "
                             "manages; it cannot be linked" % side)
        if r.get("PIFs"):
            return REFUSED, ("%s has a PIF (a physical or VLAN network): on Dom0 that bridge "
                             "is the wire or a VLAN of it, and a tag into it would put the "
                             "private network's frames on the wire (or tag them twice); "
                             "link private networks only" % side)
        if not r.get("bridge"):
            return REFUSED, "%s has no bridge name in XAPI" % side
    return None


def unknown_parent(parent):
    """The sentence every entry point gives for a parent that names no network."""
    return "parent network %s does not exist" % parent


def _label(by_uuid, uuid):
    rec = by_uuid.get(uuid)
    return "%s (%s)" % (rec.get("name_label"), uuid) if rec and rec.get("name_label") \
        else uuid


def _cycles(edges):
    """{uuid: [uuid, parent, ..., uuid]} of the networks on a cycle of ``edges``
    ({child: (parent, tag)}); each cycle written from its lowest uuid."""
    found, done = {}, set()
    for start in sorted(edges):
        path, seen = [], {}
        node = start
        while node in edges and node not in done and node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = edges[node][0]
        if node in seen:  # a new cycle: path[seen[node]:]
            ring = path[seen[node]:]
            low = ring.index(min(ring))
            ring = ring[low:] + ring[:low]
            for u in ring:
                found[u] = ring + [ring[0]]
        done.update(path)
    return found


def problems(before, after, changed):
    """What a change of links would leave wrong: ``before`` and ``after`` are {ref: network
    record} without and with it, ``changed`` the uuids whose link it sets (or drops).
    Returns [(uuid, state, sentence)]: each changed link that would not be accepted (tags
    held by links accepted before stay theirs), then each accepted link it would break."""
    was = resolve(before)
    accepted = set(u for u, st in was.status.items() if st.state == ACCEPTED)
    now = resolve(after, first=accepted)
    found = []
    for uuid in sorted(changed):
        st = now.status.get(uuid)
        if st is not None and st.state != ACCEPTED:
            found.append((uuid, st.state, st.reason))
    for uuid in sorted(accepted - set(changed)):
        st = now.status.get(uuid)
        if st is not None and st.state != ACCEPTED:
            found.append((uuid, REFUSED, "it would break the link of network %s: %s"
                          % (st.name or uuid, st.reason)))
    return found


def check(before, after, changed):
    """The first of ``problems(before, after, changed)`` as (state, sentence), or None."""
    found = problems(before, after, changed)
    return found[0][1:] if found else None
