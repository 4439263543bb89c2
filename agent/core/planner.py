"""The planner: ``plan(desired, observed, owned) -> Plan``. Pure, no I/O.

``desired`` is {name: Gateway}. ``observed`` is what the adapters read from the kernel
(links, IPv4 addresses and main-table routes, the daemon's chains and the jumps to them,
ip_forward). ``owned`` is the record of addresses the daemon added ({bridge: Owned}), so
that it removes exactly those and nothing else, on the link it put them on (followed by
its index: a renamed bridge keeps it).

The plan lists idempotent operations, and a status for every desired gateway. An empty
plan means: nothing to write.
"""
import re
from collections import OrderedDict, namedtuple

from agent.core import rules as rulesmod
from agent.core.conflicts import Claims, NetworkIndex

# ---- observation -----------------------------------------------------------------------
# kind: the link's IFLA_INFO_KIND ("bridge", "openvswitch", "veth"...; None for loopback
# and physical NICs, which have none).
Link = namedtuple("Link", "index name up kind")
# What a gateway may go on: a Linux bridge, or an Open vSwitch bridge (its datapath port in
# the kernel is of kind "openvswitch", as XenServer's xapi* bridges are with the vswitch
# backend). An address on anything else (lo, eth0, a VM's vif) is not a gateway.
BRIDGE_KINDS = frozenset(["bridge", "openvswitch"])
# Open vSwitch's userspace datapath (datapath_type=netdev, on hosts without the openvswitch
# kernel module, such as this project's test machines) shows a bridge's own port as a tap
# device, of kind "tun". qemu gives HVM guests taps too (tap<domid>.<n>), so a tun device is
# taken for a bridge only under the names XAPI keeps for its own bridges: xapi<N> (XAPI
# refuses a user's bridge name that starts with "xapi").
USERSPACE_OVS_KIND = "tun"
_XAPI_BRIDGE = re.compile(r"^xapi[0-9]+$")
Route = namedtuple("Route", "network ifindex")          # main table, IPv4
# key: our comment, or None; match: rules.match_of's tuple (src, dst, in_iface, out_iface,
# proto, dport, dst_type, to_destination) as read from the kernel, or None where the
# observer did not read it.
RuleView = namedtuple("RuleView", "position key target match")
RuleView.__new__.__defaults__ = (None,)
# An address the daemon added, and the index of the link it went on (None when unknown:
# a record from before indexes were kept, or from another boot).
Owned = namedtuple("Owned", "address ifindex")


def owned_link(bridge, record, links, by_index=None):
    """The Link that ``record`` (owned on ``bridge``) went on, as ``links`` ({name: Link})
    show it now, or None when it is gone: by index when known (a rename keeps it; a new
    link with the old name is another link), else by name."""
    if record.ifindex is None:
        return links.get(bridge)
    if by_index is None:
        by_index = {link.index: link for link in links.values()}
    return by_index.get(record.ifindex)


class Observed(namedtuple("Observed", "links addresses routes tables ip_forward")):
    """links {name: Link}; addresses {ifindex: frozenset(IPv4Interface)};
    routes set(Route); tables {table: {chain: [RuleView]}} (a missing chain is absent);
    ip_forward bool."""

    __slots__ = ()


# ---- operations ------------------------------------------------------------------------
AddAddress = namedtuple("AddAddress", "bridge ifindex address")
RemoveAddress = namedtuple("RemoveAddress", "bridge ifindex address")
AddRoute = namedtuple("AddRoute", "bridge ifindex network source")
EnsureChain = namedtuple("EnsureChain", "table chain")
# Delete the jumps at ``delete`` (descending positions) and insert one at position 0.
FixJump = namedtuple("FixJump", "table builtin chain delete")
AddRule = namedtuple("AddRule", "table chain spec")
DeleteRule = namedtuple("DeleteRule", "table chain position key")
# Delete the jumps at ``delete`` (descending positions), then the chain with its rules
# (all ours): an on-demand chain that nothing needs any more.
RemoveChain = namedtuple("RemoveChain", "table builtin chain delete")
EnableForwarding = namedtuple("EnableForwarding", "")

NETLINK_OPS = (AddAddress, RemoveAddress, AddRoute)
IPTABLES_OPS = (EnsureChain, FixJump, AddRule, DeleteRule, RemoveChain)

# ---- status ----------------------------------------------------------------------------
ABSENT = "absent"      # valid, but its bridge does not exist now (no VM running on it)
DOWN = "down"          # its bridge exists but is down: no connected route until it is up
PENDING = "pending"    # operations planned this round
APPLIED = "applied"    # everything in place
REFUSED = "refused"    # conflicts with another gateway or with the host

GatewayStatus = namedtuple("GatewayStatus", "name bridge state reason")


class Plan(namedtuple("Plan", "ops status owned links link_status")):
    """ops: [operation]; status: {name: GatewayStatus}; owned: {bridge: Owned} the record
    of added addresses once ``ops`` are applied; links: tuple of core.links.DesiredLink,
    the VLAN links (OVS patch-port pairs) this round wants; link_status: {network uuid:
    core.links.LinkStatus} of every network that declares a link (accepted or not)."""

    __slots__ = ()

    def table_ops(self, table):
        return [op for op in self.ops if isinstance(op, IPTABLES_OPS) and op.table == table]

    def netlink_ops(self):
        return [op for op in self.ops if isinstance(op, NETLINK_OPS)]


Plan.__new__.__defaults__ = ((), {})

NetworkPlan = namedtuple("NetworkPlan", "ops status owned live wanted")


def plan(desired, observed, owned=None, previous=(), network=None, links=None):
    """Compute the operations that make ``observed`` match ``desired``.

    ``links``: the core.links.Resolved of the networks' declared links (the source's
    ``links()``); carried into the plan as ``links`` and ``link_status``, for the OVS
    writer and the status.

    ``previous`` names the gateways accepted last round: when two gateways conflict, the
    one already in effect keeps its place (no flapping), otherwise the first by name wins.
    ``network`` is the result of ``plan_network`` for the same inputs, when the caller
    kept it from an earlier round (the periodic check re-reads only iptables and
    ip_forward, so recomputing the rest would be wasted work).
    """
    net = network if network is not None else plan_network(desired, observed, owned, previous)
    ops = list(net.ops)
    status = OrderedDict(net.status)
    rule_ops, dirty_bridges = _plan_rules(net.wanted, observed)
    ops.extend(rule_ops)
    for gw in net.live:
        if gw.bridge in dirty_bridges and status[gw.name].state == APPLIED:
            status[gw.name] = GatewayStatus(gw.name, gw.bridge, PENDING, None)

    if net.live and not observed.ip_forward:
        ops.append(EnableForwarding())
        for gw in net.live:
            status[gw.name] = GatewayStatus(gw.name, gw.bridge, PENDING, None)
    return Plan(ops=ops, status=status, owned=net.owned,
                links=links.links if links is not None else (),
                link_status=links.status if links is not None else {})


def plan_network(desired, observed, owned=None, previous=()):
    """The part of the plan that depends only on ``desired``, ``owned``, ``previous`` and
    the observed links, addresses and routes (not on iptables or ip_forward): accepted
    gateways, address and route operations, and the rules the live gateways want."""
    owned = dict(owned or {})
    accepted, status = resolve(desired, observed, owned, previous)
    ops = []
    new_owned = {}
    live = []  # accepted gateways whose bridge exists: their rules must be present

    for gw in accepted:
        link = observed.links.get(gw.bridge)
        if link is None:
            status[gw.name] = GatewayStatus(gw.name, gw.bridge, ABSENT,
                                            "bridge %s does not exist yet" % gw.bridge)
            continue
        live.append(gw)
        new_owned[gw.bridge] = Owned(gw.address, link.index)
        addrs = observed.addresses.get(link.index, frozenset())
        before = len(ops)
        if gw.address not in addrs:
            ops.append(AddAddress(gw.bridge, link.index, gw.address))
        elif link.up and Route(gw.network, link.index) not in observed.routes:
            # The kernel adds the connected route with the address while the link is up;
            # it is only missing when someone removed it.
            ops.append(AddRoute(gw.bridge, link.index, gw.network, gw.ip))
        if len(ops) > before:
            status[gw.name] = GatewayStatus(gw.name, gw.bridge, PENDING, None)
        elif not link.up:
            status[gw.name] = GatewayStatus(gw.name, gw.bridge, DOWN,
                                            "bridge %s is down" % gw.bridge)
        else:
            status[gw.name] = GatewayStatus(gw.name, gw.bridge, APPLIED, None)

    # Addresses we added that no gateway wants where they are now: a gateway's old
    # address, one of a dropped gateway, or one left on a renamed bridge. Removed first,
    # so that a moved address never sits on two links at once.
    wanted = set((rec.ifindex, rec.address) for rec in new_owned.values())
    by_index = {link.index: link for link in observed.links.values()}
    removals = []
    for bridge, record in sorted(owned.items()):
        link = owned_link(bridge, record, observed.links, by_index)
        if (link is None or (link.index, record.address) in wanted
                or record.address not in observed.addresses.get(link.index, ())):
            continue
        removals.append(RemoveAddress(link.name, link.index, record.address))
    touched = set(op.ifindex for op in removals)
    for gw in live:
        if new_owned[gw.bridge].ifindex in touched and status[gw.name].state in (APPLIED, DOWN):
            status[gw.name] = GatewayStatus(gw.name, gw.bridge, PENDING, None)
    ops = removals + ops
    return NetworkPlan(ops=ops, status=status, owned=new_owned, live=live,
                       wanted=rulesmod.desired_rules(live))


def not_a_bridge(link):
    """Why a gateway may not go on ``link`` (a Link, or None when it does not exist yet):
    the sentence when it is not a bridge (BRIDGE_KINDS), else None."""
    if link is None or link.kind in BRIDGE_KINDS or (
            link.kind == USERSPACE_OVS_KIND and _XAPI_BRIDGE.match(link.name)):
        return None
    return ("%s is not a bridge (%s): a gateway goes on a Linux or Open vSwitch bridge; the "
            "interface is left alone" % (link.name, "an interface of kind %s" % link.kind
                                         if link.kind else "a loopback or physical interface"))


def resolve(desired, observed, owned, previous=()):
    """Split desired gateways into accepted ones and refused ones (with a reason).

    Refused: an interface that exists and is not a bridge (BRIDGE_KINDS; it is never
    touched), a bridge taken by another gateway, a subnet overlapping another gateway's,
    or overlapping an address or route the host already has elsewhere (addresses and
    routes on the gateway's own bridge, and those the daemon added, do not count), or a
    forward of a (protocol, port) that another gateway already publishes on the host.
    O(n log n): every round runs this over every gateway, so no pairwise comparison.
    """
    previous = set(previous)
    order = sorted(desired.values(), key=lambda g: (g.name not in previous, g.name))
    status = OrderedDict()
    accepted = []
    by_bridge = {}
    index_name = {link.index: name for name, link in observed.links.items()}
    by_index = {link.index: link for link in observed.links.values()}
    ours_by_index = {}
    for bridge, record in owned.items():
        link = owned_link(bridge, record, observed.links, by_index)
        if link is not None and record.address in observed.addresses.get(link.index, ()):
            ours_by_index.setdefault(link.index, set()).add(record.address)
    host = NetworkIndex()
    for ifindex, addrs in observed.addresses.items():
        ours = ours_by_index.get(ifindex, ())
        for addr in addrs:
            if addr not in ours:
                host.add(addr.network, (0, ifindex, addr))
    our_nets = dict((i, set(a.network for a in addrs)) for i, addrs in ours_by_index.items())
    for route in observed.routes:
        if route.network.prefixlen == 0 or route.network in our_nets.get(route.ifindex, ()):
            continue
        host.add(route.network, (1, route.ifindex, route.network))
    claims = Claims()  # subnets and ports of the gateways accepted so far

    for gw in order:
        reason = clash = None
        link = observed.links.get(gw.bridge)
        other = by_bridge.get(gw.bridge)
        reason = not_a_bridge(link)
        if reason is None and other is not None:
            reason = "bridge %s is already the gateway %s" % (gw.bridge, other.name)
        if reason is None:
            clash = claims.conflict(gw.network, gw.forwards)
            if clash is not None and clash.kind == "subnet":
                reason = clash.reason
        if reason is None:
            own_index = link.index if link is not None else None
            hits = sorted(h for h in host.overlapping(gw.network) if h[1] != own_index)
            if hits:
                kind, ifindex, what = hits[0]
                where = index_name.get(ifindex, "#%s" % ifindex)
                reason = ("subnet %s overlaps address %s on %s" if kind == 0 else
                          "subnet %s overlaps route %s on %s") % (gw.network, what, where)
        if reason is None and clash is not None:
            reason = clash.reason
        if reason is not None:
            status[gw.name] = GatewayStatus(gw.name, gw.bridge, REFUSED, reason)
            continue
        claims.add(gw.name, gw.network, gw.forwards)
        accepted.append(gw)
        by_bridge[gw.bridge] = gw
    return accepted, status


def _plan_rules(wanted, observed):
    ops = []
    dirty = set()
    for table, builtin, chain in rulesmod.OWN_CHAINS:
        chains = observed.tables.get(table, {})
        present = chains.get(chain)
        want = wanted[(table, chain)]
        jumps = [rv.position for rv in chains.get(builtin, ()) if rv.target == chain]
        if chain in rulesmod.ON_DEMAND and not want:
            # Not needed: gone with its jumps, unless someone else put a rule in it (then
            # it stays as any of our chains, without our rules).
            if present is None:
                continue
            if all(rulesmod.is_ours(rv.key) for rv in present):
                ops.append(RemoveChain(table, builtin, chain,
                                       tuple(sorted(jumps, reverse=True))))
                continue
        if present is None:
            ops.append(EnsureChain(table, chain))
            present = []
        if jumps != [0]:
            ops.append(FixJump(table, builtin, chain, tuple(sorted(jumps, reverse=True))))
            # without the jump none of the chain's rules take effect
            dirty.update(rulesmod.bridge_of(k) for k in want)
        seen = set()
        deletes = []
        for rv in present:
            if not rulesmod.is_ours(rv.key):
                continue  # a rule someone else put in our chain: not ours to touch
            spec = want.get(rv.key)
            if spec is not None and rv.key not in seen and _same_rule(rv, spec):
                seen.add(rv.key)
            else:  # a duplicate, a rule no longer wanted, or ours with altered content
                deletes.append(DeleteRule(table, chain, rv.position, rv.key))
        # Highest position first so that earlier deletions do not shift later ones.
        ops.extend(sorted(deletes, key=lambda op: -op.position))
        for key, spec in want.items():
            if key not in seen:
                ops.append(AddRule(table, chain, spec))
                dirty.add(rulesmod.bridge_of(key))
    return ops, dirty


def _same_rule(view, spec):
    if view.target != spec.target:
        return False
    return view.match is None or view.match == rulesmod.match_of(spec)
