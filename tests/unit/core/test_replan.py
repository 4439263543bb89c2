"""agent.core.planner.plan_network's incremental re-plan (``last=``): whatever changed,
it gives exactly what planning everything gives, and it re-plans alone (the host's
conflict index reused, one gateway planned) for what a new bridge brings.

A random walk over a small host's links, addresses and routes (bridges made, deleted,
set up and down, renamed, the daemon's addresses added and removed, foreign addresses
and routes that overlap a gateway, an interface of another kind under a gateway's
bridge name), with ``owned`` and ``previous`` fed back as the reconciler does, compares
both at every step.
"""
import ipaddress
import random
from collections import OrderedDict

from agent.core import model
from agent.core import planner as P
from agent.core.planner import Link, Route

GATEWAYS = OrderedDict((g.name, g) for g in [
    model.make_gateway("g0", "xapi0", "172.16.0.1/24"),
    model.make_gateway("g1", "xapi1", "172.16.1.1/24"),
    model.make_gateway("g2", "xapi2", "172.16.2.1/24"),
    model.make_gateway("g3", "xapi3", "10.3.0.1/16", nat=False),
    model.make_gateway("g4", "xapi4", "10.3.4.1/24"),      # overlaps g3: refused
    model.make_gateway("g5", "xapi5", "172.16.5.1/24"),
])
ETH0 = Link(1, "eth0", True, "veth")
FOREIGN = [ipaddress.IPv4Interface("172.16.2.200/25"), ipaddress.IPv4Interface("192.0.2.1/24")]


def sets(index):
    """An index by ifindex with its tuples as sets (their order is not kept)."""
    return {i: frozenset(v) for i, v in index.items()}


def fields(net):
    return net.ops, net.status, net.owned, net.live, net.wanted


class Host(object):
    """A small model of the kernel's links, IPv4 addresses and main-table routes."""

    def __init__(self):
        self.links = {"eth0": ETH0}
        self.addresses = {1: frozenset([ipaddress.IPv4Interface("198.51.100.2/24")])}
        self.routes = set([Route(ipaddress.IPv4Network("198.51.100.0/24"), 1),
                           Route(ipaddress.IPv4Network("0.0.0.0/0"), 1)])
        self.next_index = 10

    def observed(self):
        return P.Observed(links=dict(self.links), addresses=dict(self.addresses),
                          routes=set(self.routes), tables={}, ip_forward=True)

    def link_of(self, index):
        return next((l for l in self.links.values() if l.index == index), None)

    def add_address(self, index, address):
        link = self.link_of(index)
        if link is None:
            return
        self.addresses[index] = self.addresses.get(index, frozenset()) | {address}
        if link.up:
            self.routes.add(Route(address.network, index))

    def remove_address(self, index, address):
        if address in self.addresses.get(index, ()):
            self.addresses[index] = self.addresses[index] - {address}
            self.routes.discard(Route(address.network, index))

    def set_up(self, name, up):
        link = self.links[name]
        self.links[name] = link._replace(up=up)
        if up:
            for address in self.addresses.get(link.index, ()):
                self.routes.add(Route(address.network, link.index))
        else:
            self.routes = set(r for r in self.routes if r.ifindex != link.index)

    def create(self, name, kind="bridge", up=False):
        self.links[name] = Link(self.next_index, name, up, kind)
        self.next_index += 1

    def delete(self, name):
        link = self.links.pop(name)
        self.addresses.pop(link.index, None)
        self.routes = set(r for r in self.routes if r.ifindex != link.index)

    def apply(self, ops):
        for op in ops:
            if isinstance(op, P.AddAddress):
                self.add_address(op.ifindex, op.address)
            elif isinstance(op, P.RemoveAddress):
                self.remove_address(op.ifindex, op.address)
            elif isinstance(op, P.AddRoute) and self.link_of(op.ifindex) is not None:
                self.routes.add(Route(op.network, op.ifindex))

    def step(self, rnd):
        """One random change, as the kernel, XAPI or an administrator would make it."""
        bridges = ["xapi%d" % i for i in range(6)]
        name = rnd.choice(bridges)
        link = self.links.get(name)
        what = rnd.random()
        if link is None:
            self.create(name, kind="veth" if what < 0.05 else "bridge", up=what > 0.5)
        elif what < 0.3:
            self.set_up(name, not link.up)
        elif what < 0.4:
            self.delete(name)
        elif what < 0.5:
            for address in list(self.addresses.get(link.index, ())):
                self.remove_address(link.index, address)            # drift: address gone
        elif what < 0.6:
            self.routes = set(r for r in self.routes if r.ifindex != link.index)
        elif what < 0.65:
            other = rnd.choice(bridges)
            if other not in self.links:                              # renamed
                del self.links[name]
                self.links[other] = link._replace(name=other)
        elif what < 0.75:
            foreign = rnd.choice(FOREIGN)
            if foreign in self.addresses.get(1, ()):
                self.remove_address(1, foreign)
            else:
                self.add_address(1, foreign)
        elif what < 0.8:
            self.add_address(link.index, rnd.choice(FOREIGN))       # not ours, on a bridge
        # else: nothing changes (a periodic check)


def walk(seed, steps=150):
    rnd = random.Random(seed)
    host = Host()
    owned, previous, last = {}, set(), None
    fast = 0
    for _ in range(steps):
        host.step(rnd)
        observed = host.observed()
        full = P.plan_network(GATEWAYS, observed, owned, previous)
        incremental = P.plan_network(GATEWAYS, observed, owned, previous, last=last)
        assert fields(incremental) == fields(full), (seed, observed)
        memo = incremental.memo
        if memo is not None:   # the indexes a re-plan carries forward are the state's own
            assert memo.links_at == {l.index: l for l in observed.links.values()}
            assert sets(memo.routes_at) == sets(P._routes_at(observed.routes))
            assert memo.records_at[0] == P._records_at(memo.owned)[0]
            assert sets(memo.records_at[1]) == sets(P._records_at(memo.owned)[1])
            assert memo.live_index == {r.ifindex: b for b, r in incremental.owned.items()}
            assert memo.busy == tuple(i for i, gw in enumerate(memo.accepted)
                                      if memo.gw_ops[gw.name])
        if last is not None and last.memo is not None and incremental.memo is not None \
                and incremental.memo.host is last.memo.host:
            fast += 1
        if rnd.random() < 0.8:           # the round applies the plan (else it failed)
            host.apply(incremental.ops)
            owned = dict(incremental.owned)
            previous = set(n for n, st in incremental.status.items()
                           if st.state != P.REFUSED)
        last = incremental
    return fast


def test_the_incremental_plan_is_the_full_plan_whatever_changed():
    fast = sum(walk(seed) for seed in range(40))
    assert fast > 1000   # and the incremental path did most of the work


def test_a_new_bridge_is_planned_alone():
    host = Host()
    for i in range(3):
        host.create("xapi%d" % i, up=True)
    owned, previous = {}, set()
    net = P.plan_network(GATEWAYS, host.observed(), owned, previous)
    host.apply(net.ops)
    owned, previous = dict(net.owned), set(n for n, st in net.status.items()
                                           if st.state != P.REFUSED)
    settled = P.plan_network(GATEWAYS, host.observed(), owned, previous, last=net)
    assert settled.ops == []   # planned in full: ``previous`` changed
    net = settled

    host.create("xapi5")                              # XAPI makes the bridge ...
    created = P.plan_network(GATEWAYS, host.observed(), owned, previous, last=settled)
    assert created.memo.host is net.memo.host         # ... the others are not re-resolved
    assert created.ops == [P.AddAddress("xapi5", host.links["xapi5"].index,
                                        GATEWAYS["g5"].address)]
    host.set_up("xapi5", True)                        # ... and sets it up
    up = P.plan_network(GATEWAYS, host.observed(), owned, previous, last=created)
    assert up.memo.host is net.memo.host and len(up.ops) == 1
    host.apply(up.ops)
    done = P.plan_network(GATEWAYS, host.observed(), dict(up.owned), previous, last=up)
    assert done.ops == [] and done.status["g5"].state == P.APPLIED
    assert done.memo.host is net.memo.host


def test_a_foreign_address_on_the_host_plans_everything():
    host = Host()
    host.create("xapi2", up=True)
    net = P.plan_network(GATEWAYS, host.observed(), {}, set())
    host.add_address(1, FOREIGN[0])                   # overlaps g2's subnet
    again = P.plan_network(GATEWAYS, host.observed(), {}, set(), last=net)
    assert again.memo.host is not net.memo.host
    assert again.status["g2"].state == P.REFUSED


def test_a_record_without_its_links_index_plans_everything():
    """A record of the daemon's with no ifindex (an older daemon's state file) may be on
    any link: no re-plan of a few links can tell, so everything is planned."""
    host = Host()
    host.create("xapi0", up=True)
    owned = {"xapi9": P.Owned(ipaddress.IPv4Interface("10.9.0.1/24"), None)}
    net = P.plan_network(GATEWAYS, host.observed(), owned, set())
    assert net.memo is not None
    host.create("xapi1")
    again = P.plan_network(GATEWAYS, host.observed(), owned, set(), last=net)
    assert again.memo.host is not net.memo.host   # the host's index made anew: in full
    assert fields(again) == fields(P.plan_network(GATEWAYS, host.observed(), owned, set()))
