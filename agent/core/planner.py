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


class Plan(namedtuple("Plan", "ops status owned links link_status rules_memo")):
    """ops: [operation]; status: {name: GatewayStatus}; owned: {bridge: Owned} the record
    of added addresses once ``ops`` are applied; links: tuple of core.links.DesiredLink,
    the VLAN links (OVS patch-port pairs) this round wants; link_status: {network uuid:
    core.links.LinkStatus} of every network that declares a link (accepted or not);
    rules_memo: what a later ``plan(..., last=)`` needs to plan the rules incrementally
    (a _RulesMemo), or None."""

    __slots__ = ()

    def table_ops(self, table):
        return [op for op in self.ops if isinstance(op, IPTABLES_OPS) and op.table == table]

    def netlink_ops(self):
        return [op for op in self.ops if isinstance(op, NETLINK_OPS)]


Plan.__new__.__defaults__ = ((), {}, None)

# What plan keeps for an incremental rules plan (see _replan_rules): base tables
# ({table: observation} as the adapter gave them), the ``live`` list of the network plan
# the rules were planned for, whether the rules of those live gateways but the
# ``pending`` ones needed no operation against the base tables, and the pending gateways
# (became live since the base, their rules planned as additions to it).
_RulesMemo = namedtuple("_RulesMemo", "tables live clean pending")


class NetworkPlan(namedtuple("NetworkPlan", "ops status owned live memo since")):
    """The network half of a plan (see ``plan_network``); ``memo`` is what a later call
    needs to re-plan from it incrementally (``last=``), or None; ``since`` is, for a plan
    made that way, (the earlier plan's ``live`` list, the gateways that became live since
    it, or None when one stopped being live), else None."""

    __slots__ = ()

    @property
    def wanted(self):
        """{(table, chain): {key: RuleSpec}}: the rules the live gateways want."""
        return rulesmod.desired_rules(self.live)


NetworkPlan.__new__.__defaults__ = (None, None)

# What plan_network keeps for an incremental re-plan: its inputs (desired, observed,
# owned, frozenset(previous)), the accepted gateways in order, the host's addresses and
# routes that count for conflicts (NetworkIndex), each accepted gateway's operations by
# name, the bridges of the refused gateways, {ifindex: bridge} of the live ones, and
# what lets a re-plan look at the changed links and their gateways alone, not at every
# gateway: {bridge: position in ``accepted``}, the positions of the gateways with
# operations, and three indexes by ifindex carried forward by what changed: ``owned``'s
# records (_records_at), ``observed``'s links ({ifindex: Link}) and routes (_routes_at).
_Memo = namedtuple("_Memo", "desired observed owned previous accepted host gw_ops "
                            "refused_bridges live_index positions busy records_at "
                            "links_at routes_at")

# More changes than this since the last plan: planning everything is as quick.
REPLAN_LIMIT = 64


def plan(desired, observed, owned=None, previous=(), network=None, links=None, last=None):
    """Compute the operations that make ``observed`` match ``desired``.

    ``links``: the core.links.Resolved of the networks' declared links (the source's
    ``links()``); carried into the plan as ``links`` and ``link_status``, for the OVS
    writer and the status.

    ``previous`` names the gateways accepted last round: when two gateways conflict, the
    one already in effect keeps its place (no flapping), otherwise the first by name wins.
    ``network`` is the result of ``plan_network`` for the same inputs, when the caller
    kept it from an earlier round (the periodic check re-reads only iptables and
    ip_forward, so recomputing the rest would be wasted work).

    ``last``: the Plan of an earlier call. When the tables observed are the very ones it
    saw, it found every rule in place, and ``network`` was re-planned from its network
    plan (plan_network's ``last=``) for gateways that only became live (a new bridge),
    the rules are planned for those gateways alone (``_replan_rules``); anything else
    plans every gateway's rules. The result is the same (tests/unit/core/test_replan.py).
    """
    net = network if network is not None else plan_network(desired, observed, owned, previous)
    ops = list(net.ops)
    status = OrderedDict(net.status)
    rules = _replan_rules(net, observed, last.rules_memo if last is not None else None)
    if rules is None:
        rule_ops, dirty_bridges = _plan_rules(net.wanted, observed)
        rules_memo = _RulesMemo(tables=dict(observed.tables), live=net.live,
                                clean=not rule_ops, pending=())
    else:
        rule_ops, dirty_bridges, rules_memo = rules
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
                link_status=links.status if links is not None else {},
                rules_memo=rules_memo)


def _replan_rules(net, observed, memo):
    """(rule operations, dirty bridges, _RulesMemo) of ``net``'s live gateways against
    ``observed``'s tables, planned for the gateways that became live since ``memo``'s
    base alone; or None when that is not certain to give what ``_plan_rules`` gives
    (then the caller plans all).

    ``memo`` holds base tables against which the rules of its live gateways but the
    ``pending`` ones needed no operation, and those pending gateways (became live since,
    their rules to add). Certain when: ``net`` was re-planned from the network plan of
    ``memo`` (``since``) with no gateway that stopped being live, so the wanted rules are
    the base's and those of the pending gateways and the ones that became live now (new
    keys: their bridges are in none of the others' keys); and each of our chains and the
    built-in chains that jump to them are as in the base tables, but for rules appended
    at the end of our chains (the table is the same object, as the adapter gives it for
    an unchanged fingerprint, or the base's rules are an equal prefix: the rounds's own
    commit appended to them), the appended ones of ours being pending rules, once each
    and as planned. The pending rules not there are then all to add, at the end of their
    chains, in the order of the live gateways, as ``_plan_rules`` would add them."""
    if memo is None or not memo.clean or net.since is None or net.since[0] is not memo.live:
        return None
    added = net.since[1]
    if added is None:
        return None   # a gateway's rules to delete: plan all
    pending = memo.pending + tuple(added)
    if len(pending) > REPLAN_LIMIT:
        return None
    tables = observed.tables
    if len(tables) != len(memo.tables):
        return None
    if len(pending) > 1:   # in the order of the live gateways, as _plan_rules adds them
        pending = tuple(sorted(pending, key=net.live.index))
    wants = {}
    for gw in pending:
        for spec in rulesmod.gateway_rules(gw):
            wants.setdefault((spec.table, spec.chain), []).append(spec)
    ops = []
    for table, builtin, chain in rulesmod.OWN_CHAINS:
        base, now = memo.tables[table], tables.get(table)
        if now is None:
            return None
        want = wants.get((table, chain), ())
        if now is base:
            if want and chain not in now:
                return None   # an on-demand chain to make first
            ops.extend(AddRule(table, chain, spec) for spec in want)
            continue
        old, new = base.get(chain), now.get(chain)
        if (old is None) != (new is None) or now.get(builtin) != base.get(builtin):
            return None
        if old is None:
            if want:
                return None   # an on-demand chain to make first
            continue
        if new[:len(old)] != old:
            return None
        seen = set()
        by_key = {spec.key: spec for spec in want}
        for rv in new[len(old):]:
            if not rulesmod.is_ours(rv.key):
                continue   # someone else's rule: not ours to touch
            spec = by_key.get(rv.key)
            if spec is None or rv.key in seen or not _same_rule(rv, spec):
                return None   # to delete: plan all
            seen.add(rv.key)
        ops.extend(AddRule(table, chain, spec) for spec in want if spec.key not in seen)
    dirty = set(rulesmod.bridge_of(op.spec.key) for op in ops)
    if ops:
        memo = memo._replace(live=net.live, pending=pending)
    else:   # every rule in place: these tables are the base now
        memo = _RulesMemo(tables=dict(tables), live=net.live, clean=True, pending=())
    return ops, dirty, memo


def plan_network(desired, observed, owned=None, previous=(), last=None):
    """The part of the plan that depends only on ``desired``, ``owned``, ``previous`` and
    the observed links, addresses and routes (not on iptables or ip_forward): accepted
    gateways, address and route operations, and the rules the live gateways want.

    ``last``: the NetworkPlan of an earlier call. When the desired state is the same
    object, ``previous`` the same set, ``owned`` what that call was given or what it
    planned, and what changed in the links, addresses and routes since concerns only the
    bridges of gateways it accepted (the usual event: a bridge appears, comes up, gets
    the address the daemon added), only those gateways are planned again, and the result
    is the one planning everything would give (tests/unit/core/test_replan.py). Anything
    else plans everything."""
    owned = dict(owned or {})
    if last is not None and last.memo is not None:
        net = _replan(desired, observed, owned, frozenset(previous), last)
        if net is not None:
            return net
    accepted, status, host = _resolve(desired, observed, owned, previous)
    ops = []
    new_owned = {}
    live = []  # accepted gateways whose bridge exists: their rules must be present
    gw_ops = {}
    for gw in accepted:
        st, gops, record = _plan_gateway(gw, observed)
        status[gw.name] = st
        gw_ops[gw.name] = gops
        ops.extend(gops)
        if record is not None:
            live.append(gw)
            new_owned[gw.bridge] = record

    # Addresses we added that no gateway wants where they are now: a gateway's old
    # address, one of a dropped gateway, or one left on a renamed bridge. Removed first,
    # so that a moved address never sits on two links at once.
    wanted = set((rec.ifindex, rec.address) for rec in new_owned.values())
    by_index = {link.index: link for link in observed.links.values()}
    removals = []
    for bridge, record in sorted(owned.items()):
        op = _removal(bridge, record, observed, by_index, wanted)
        if op is not None:
            removals.append(op)
    touched = set(op.ifindex for op in removals)
    for gw in live:
        if new_owned[gw.bridge].ifindex in touched and status[gw.name].state in (APPLIED, DOWN):
            status[gw.name] = GatewayStatus(gw.name, gw.bridge, PENDING, None)
    memo = _Memo(desired=desired, observed=observed, owned=owned,
                 previous=frozenset(previous), accepted=accepted, host=host, gw_ops=gw_ops,
                 refused_bridges=frozenset(st.bridge for st in status.values()
                                           if st.state == REFUSED),
                 live_index={rec.ifindex: b for b, rec in new_owned.items()},
                 positions={gw.bridge: i for i, gw in enumerate(accepted)},
                 busy=tuple(i for i, gw in enumerate(accepted) if gw_ops[gw.name]),
                 records_at=_records_at(owned), links_at=by_index,
                 routes_at=_routes_at(observed.routes)) \
        if not removals else None
    return NetworkPlan(ops=removals + ops, status=status, owned=new_owned, live=live,
                       memo=memo)


def _plan_gateway(gw, observed):
    """(GatewayStatus, [operations], Owned record or None when its bridge is absent) of
    one accepted gateway."""
    link = observed.links.get(gw.bridge)
    if link is None:
        return absent_status(gw.name, gw.bridge), (), None
    ops = []
    addrs = observed.addresses.get(link.index, frozenset())
    if gw.address not in addrs:
        ops.append(AddAddress(gw.bridge, link.index, gw.address))
    elif link.up and Route(gw.network, link.index) not in observed.routes:
        # The kernel adds the connected route with the address while the link is up;
        # it is only missing when someone removed it.
        ops.append(AddRoute(gw.bridge, link.index, gw.network, gw.ip))
    if ops:
        st = GatewayStatus(gw.name, gw.bridge, PENDING, None)
    elif not link.up:
        st = down_status(gw.name, gw.bridge)
    else:
        st = GatewayStatus(gw.name, gw.bridge, APPLIED, None)
    return st, tuple(ops), Owned(gw.address, link.index)


def absent_status(name, bridge):
    return GatewayStatus(name, bridge, ABSENT, "bridge %s does not exist yet" % bridge)


def down_status(name, bridge):
    """A gateway whose bridge exists but is down: no connected route until it is up."""
    return GatewayStatus(name, bridge, DOWN, "bridge %s is down" % bridge)


def done_status(status, link):
    """What a PENDING gateway's ``status`` is once its operations succeeded, its bridge
    being ``link`` now (a Link, or None when it is gone): applied only on a bridge that
    is up (the kernel adds the connected route for the address when the bridge comes
    up, or with the address on a bridge that is up)."""
    if link is None:
        return absent_status(status.name, status.bridge)
    if not link.up:
        return down_status(status.name, status.bridge)
    return GatewayStatus(status.name, status.bridge, APPLIED, None)


def _removal(bridge, record, observed, by_index, wanted):
    """The RemoveAddress of an address the daemon added (``record``, owned on
    ``bridge``) that no gateway wants where it is now, or None."""
    link = owned_link(bridge, record, observed.links, by_index)
    if (link is None or (link.index, record.address) in wanted
            or record.address not in observed.addresses.get(link.index, ())):
        return None
    return RemoveAddress(link.name, link.index, record.address)


def _replan(desired, observed, owned, previous, last):
    """plan_network for what changed since ``last`` alone, or None when that is not
    certain to give what planning everything gives (then the caller plans everything).

    The gateways to plan again are those on a bridge that changed (appeared, went,
    came up or down), or whose bridge's addresses or routes changed, or whose record in
    ``owned`` changed. The others keep their verdict and operations: the verdicts
    (``resolve``) depend on the desired state, ``previous``, the gateways' links and the
    host's addresses and routes that are not the daemon's; so every change must be on
    an accepted gateway's own bridge, that bridge must carry none of the host's
    addresses or routes before and after (only the daemon's: its own address and the
    connected route), and the gateway must still be accepted."""
    m = last.memo
    if desired is not m.desired or previous != m.previous:
        return None
    same_owned = owned is m.owned or owned == m.owned
    if not same_owned and owned != last.owned:
        return None
    old = m.observed
    changed_links = () if old.links is observed.links else \
        old.links.items() ^ observed.links.items()
    changed_addresses = () if old.addresses is observed.addresses else \
        set(index for index, _a in old.addresses.items() ^ observed.addresses.items())
    changed_routes = () if old.routes is observed.routes else old.routes ^ observed.routes
    changed_owned = () if same_owned else \
        [b for b in set(owned) | set(m.owned) if owned.get(b) != m.owned.get(b)]
    if len(changed_links) + len(changed_addresses) + len(changed_routes) + \
            len(changed_owned) > REPLAN_LIMIT:
        return None
    affected = set(name for name, _link in changed_links)
    affected.update(changed_owned)
    indexes = set()     # the affected bridges' links' indexes, before and after
    for name in affected:
        if name in m.refused_bridges:
            return None
        before, after = old.links.get(name), observed.links.get(name)
        if before is not None and after is not None and before.index != after.index:
            return None   # another link of the same name: for a full plan
        indexes.update(link.index for link in (before, after) if link is not None)
    for bridge in changed_owned:
        indexes.update(r.ifindex for r in (owned.get(bridge), m.owned.get(bridge))
                       if r is not None and r.ifindex is not None)
    for index in set(changed_addresses) | set(r.ifindex for r in changed_routes):
        bridge = m.live_index.get(index)
        if bridge is not None:
            affected.add(bridge)
            link = observed.links.get(bridge)
            indexes.update([index] + ([link.index] if link is not None else []))
        elif index not in indexes:
            return None   # not a gateway's bridge
    positions = m.positions
    gateways = OrderedDict((m.accepted[i].bridge, m.accepted[i]) for i in
                           sorted(positions[b] for b in affected if b in positions))
    if len(gateways) != len(affected):
        return None   # a link that is no accepted gateway's bridge changed
    # The daemon's records on those links must be the gateways' own, before and after
    # (no other record of ours points there: a removal or a moved address is for a full
    # plan), and no address or route there may count as the host's.
    records_at = m.records_at if same_owned else _records_at(owned)
    checked = [records_at] + ([] if same_owned else [m.records_at])
    if owned is last.owned or owned == last.owned:
        last_at = records_at
    else:   # then owned is m.owned's equal
        last_at = _records_at(last.owned)
        checked.append(last_at)
    if any(_foreign_record(at, indexes, gateways) for at in checked):
        return None
    links_at = _carry_links(m.links_at, changed_links, observed.links)
    routes_at = _carry_routes(m.routes_at, changed_routes, observed.routes)
    if _host_entries(indexes, old, m.owned, m.records_at, m.links_at, m.routes_at) or \
            _host_entries(indexes, observed, owned, records_at, links_at, routes_at):
        return None
    status = OrderedDict(last.status)
    gw_ops = dict(m.gw_ops)
    new_owned = dict(last.owned)
    for gw in gateways.values():
        link = observed.links.get(gw.bridge)
        if not_a_bridge(link) is not None:
            return None
        own_index = link.index if link is not None else None
        if any(h[1] != own_index for h in m.host.overlapping(gw.network)):
            return None
        st, gops, record = _plan_gateway(gw, observed)
        status[gw.name] = st
        gw_ops[gw.name] = gops
        if record is None:
            new_owned.pop(gw.bridge, None)
        else:
            new_owned[gw.bridge] = record
    # what the gateways' records say must stay where it is (no removal); the records
    # on those links are the gateways' own, so only theirs can want the same place
    wanted = set((new_owned[b].ifindex, new_owned[b].address) for b in gateways
                 if b in new_owned)
    by_index = _links_at(indexes, links_at)
    for bridge in gateways:
        record = owned.get(bridge)
        if record is not None and _removal(bridge, record, observed, by_index, wanted):
            return None
    # the accepted gateways' operations and the live ones, in the accepted order, from
    # the last plan's and what changed for ``gateways``
    busy = set(m.busy)
    for bridge, gw in gateways.items():
        (busy.add if gw_ops[gw.name] else busy.discard)(positions[bridge])
    busy = tuple(sorted(busy))
    ops = [op for i in busy for op in gw_ops[m.accepted[i].name]]
    # what changed in the wanted rules: the gateways that became live (None when one
    # stopped being live: its rules go, for a full rules plan)
    added = [gw for b, gw in gateways.items() if b in new_owned and b not in last.owned]
    gone = any(b in last.owned and b not in new_owned for b in gateways)
    live = list(last.live)
    if gone:
        live = [gw for gw in live if gw.bridge in new_owned]
    for gw in added:
        live.insert(_position_in(live, positions, positions[gw.bridge]), gw)
    memo = m._replace(observed=observed, owned=owned, gw_ops=gw_ops,
                      live_index=_carry_live(m.live_index, gateways, last.owned, new_owned,
                                             last_at),
                      busy=busy, records_at=records_at, links_at=links_at,
                      routes_at=routes_at)
    return NetworkPlan(ops=ops, status=status, owned=new_owned, live=live, memo=memo,
                       since=(last.live, None if gone else tuple(added)))


def _links_at(indexes, links_at):
    """{index: Link} of the links at ``indexes`` (those that exist), from ``links_at``
    ({ifindex: Link} of all of them)."""
    return {i: links_at[i] for i in indexes if i in links_at}


def _records_at(owned):
    """(whether a record of ``owned`` has no ifindex, {ifindex: (bridge, ...)} of the
    others): where the daemon's records are, for a re-plan's look at a few links.
    Tuples, not sets: one bridge a link, 1,000 of them kept (~170 KB less)."""
    unplaced, at = False, {}
    for bridge, record in owned.items():
        if record.ifindex is None:
            unplaced = True
        else:
            at[record.ifindex] = at.get(record.ifindex, ()) + (bridge,)
    return unplaced, at


def _routes_at(routes):
    """{ifindex: (Route, ...)} of ``routes`` (tuples, as _records_at's)."""
    at = {}
    for route in routes:
        at[route.ifindex] = at.get(route.ifindex, ()) + (route,)
    return at


def _carry_links(links_at, changed, links):
    """``links_at`` ({ifindex: Link} of the links before) made that of ``links`` (after),
    ``changed`` being the (name, Link) items in one of them alone: the old ones out
    first, then the new ones in (a rename or a change of state is both)."""
    if not changed:
        return links_at
    links_at = dict(links_at)
    for name, link in changed:
        if links.get(name) != link and links_at.get(link.index) == link:
            del links_at[link.index]
    for name, link in changed:
        if links.get(name) == link:
            links_at[link.index] = link
    return links_at


def _carry_routes(routes_at, changed, routes):
    """``routes_at`` (_routes_at of the routes before) made that of ``routes`` (after),
    ``changed`` being the routes in one of them alone."""
    if not changed:
        return routes_at
    routes_at = dict(routes_at)
    for route in changed:
        now = tuple(r for r in routes_at.get(route.ifindex, ()) if r != route)
        if route in routes:
            now += (route,)
        if now:
            routes_at[route.ifindex] = now
        else:
            routes_at.pop(route.ifindex, None)
    return routes_at


def _position_in(live, positions, position):
    """Where in ``live`` (gateways in the accepted order) the gateway at ``position`` of
    the accepted ones goes."""
    lo, hi = 0, len(live)
    while lo < hi:
        mid = (lo + hi) // 2
        if positions[live[mid].bridge] < position:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _carry_live(live_index, bridges, before, after, before_at):
    """``live_index`` ({ifindex: bridge} of the records ``before``) made that of the
    records ``after``, which differ from ``before`` at ``bridges`` alone, whose records
    after are on their own links (no other record there: the re-plan made sure).
    Records that shared a link before: made anew, as planning everything does."""
    live_index = dict(live_index)
    for bridge in bridges:
        record = before.get(bridge)
        if record is not None and live_index.get(record.ifindex) == bridge:
            if len(before_at[1].get(record.ifindex, ())) > 1:
                return {r.ifindex: b for b, r in after.items()}
            del live_index[record.ifindex]
    for bridge in bridges:
        record = after.get(bridge)
        if record is not None:
            live_index[record.ifindex] = bridge
    return live_index


def _foreign_record(records_at, indexes, gateways):
    """Whether a record (``records_at``: _records_at of some owned) has no ifindex, or
    sits on one of the links ``indexes`` without being one of ``gateways``' own."""
    unplaced, at = records_at
    return unplaced or any(bridge not in gateways
                           for index in indexes for bridge in at.get(index, ()))


def _host_entries(indexes, observed, owned, records_at, links_at, routes_at):
    """Whether any address or route on the links ``indexes`` counts as the host's for
    conflicts (``resolve``): an address no record of ``owned`` put there, or a route
    (not the default one) to none of the daemon's own subnets there. ``records_at``,
    ``links_at`` and ``routes_at`` index ``owned`` and ``observed`` by ifindex."""
    if not indexes:
        return False
    by_index = _links_at(indexes, links_at)
    at = records_at[1]
    ours = {}
    for index in by_index:
        for bridge in at.get(index, ()):
            ours.setdefault(index, set()).add(owned[bridge].address)
    nets = {}
    for index in indexes:
        addrs = observed.addresses.get(index, frozenset())
        mine = ours.get(index, set())
        if any(a not in mine for a in addrs):
            return True
        nets[index] = set(a.network for a in addrs)
    return any(r.network.prefixlen and r.network not in nets[index]
               for index in indexes for r in routes_at.get(index, ()))


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
    accepted, status, _host = _resolve(desired, observed, owned, previous)
    return accepted, status


def _resolve(desired, observed, owned, previous=()):
    """resolve's verdicts, and the index of the host's addresses and routes that count
    (a NetworkIndex of (kind, ifindex, address or network))."""
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
    return accepted, status, host


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
