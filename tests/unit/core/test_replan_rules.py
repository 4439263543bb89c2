"""agent.core.planner.plan's incremental rules plan (``last=``): whatever changed in the
links or the tables, it gives exactly what planning every gateway's rules gives, and for a
new bridge it plans that bridge's rules alone.

A random walk as in test_replan.py (bridges made, deleted, set up and down, renamed,
addresses and routes), with a small model of the daemon's iptables chains besides it
that the plans are applied to and that drifts (one of our rules deleted, duplicated or
altered, a foreign rule in our chain, a jump removed), and a table observation that is
the same object while the table is unchanged, as the iptables adapter gives it. At every
step the incremental plan must equal the full one.
"""
import random
from collections import OrderedDict

from agent.core import model
from agent.core import planner as P
from agent.core import rules as rulesmod
from tests.unit.core.test_replan import Host

GATEWAYS = OrderedDict((g.name, g) for g in [
    model.make_gateway("g0", "xapi0", "172.16.0.1/24"),
    model.make_gateway("g1", "xapi1", "172.16.1.1/24", forwards="tcp:8080=172.16.1.10:80"),
    model.make_gateway("g2", "xapi2", "172.16.2.1/24", inbound="192.0.2.0/24"),
    model.make_gateway("g3", "xapi3", "10.3.0.1/16", nat=False),
    model.make_gateway("g4", "xapi4", "10.3.4.1/24"),      # overlaps g3: refused
    model.make_gateway("g5", "xapi5", "172.16.5.1/24", forwards="udp:5353=172.16.5.9:53"),
])
FOREIGN_RULE = P.RuleView(0, None, "ACCEPT", None)


class Tables(object):
    """{table: {chain: [RuleView]}}, a new observation object for a changed table only."""

    def __init__(self):
        self.tables = {
            "nat": {"POSTROUTING": [], "PREROUTING": [], "OUTPUT": []},
            "filter": {"FORWARD": [FOREIGN_RULE]},
        }

    def observed(self):
        return dict(self.tables)

    def _edit(self, table):
        """A copy of ``table``'s chains to change (the old observation stays as it was)."""
        chains = {chain: list(rules) for chain, rules in self.tables[table].items()}
        self.tables[table] = chains
        return chains

    @staticmethod
    def _renumber(rules):
        rules[:] = [rv._replace(position=i) for i, rv in enumerate(rules)]

    def apply(self, ops):
        for op in ops:
            if not isinstance(op, P.IPTABLES_OPS):
                continue
            chains = self._edit(op.table)
            if isinstance(op, P.EnsureChain):
                chains.setdefault(op.chain, [])
            elif isinstance(op, P.FixJump):
                jumps = chains[op.builtin]
                for position in op.delete:
                    del jumps[position]
                jumps.insert(0, P.RuleView(0, None, op.chain))
                self._renumber(jumps)
            elif isinstance(op, P.AddRule):
                rules = chains[op.chain]
                rules.append(P.RuleView(len(rules), op.spec.key, op.spec.target,
                                        rulesmod.match_of(op.spec)))
            elif isinstance(op, P.DeleteRule):
                del chains[op.chain][op.position]
                self._renumber(chains[op.chain])
            elif isinstance(op, P.RemoveChain):
                for position in op.delete:
                    del chains[op.builtin][position]
                self._renumber(chains[op.builtin])
                del chains[op.chain]

    def drift(self, rnd):
        """One change by someone else, in a random chain of ours."""
        table, builtin, chain = rnd.choice(rulesmod.OWN_CHAINS)
        if chain not in self.tables[table]:
            return
        chains = self._edit(table)
        rules = chains[chain]
        what = rnd.random()
        ours = [rv for rv in rules if rv.key is not None]
        if what < 0.25 and ours:
            del rules[rnd.choice(ours).position]                     # ours deleted
        elif what < 0.45 and ours:
            rules.append(rnd.choice(ours))                           # ours duplicated
        elif what < 0.6 and ours:
            rv = rnd.choice(ours)
            rules[rv.position] = rv._replace(target="DROP")          # ours altered
        elif what < 0.8:
            rules.append(FOREIGN_RULE)                               # someone else's rule
        else:
            chains[builtin] = [rv for rv in chains[builtin] if rv.target != chain]
            self._renumber(chains[builtin])                          # the jump removed
        self._renumber(rules)


def walk(seed, steps=150):
    rnd = random.Random(seed)
    host, tables = Host(), Tables()
    owned, previous, net, last = {}, set(), None, None
    fast = added = appended = 0
    for _ in range(steps):
        what = rnd.random()
        if what < 0.15:
            tables.drift(rnd)
        elif what < 0.9:
            host.step(rnd)
        observed = host.observed()._replace(tables=tables.observed())
        net = P.plan_network(GATEWAYS, observed, owned, previous, last=net)
        full = P.plan(GATEWAYS, observed, owned, previous, network=net)
        incremental = P.plan(GATEWAYS, observed, owned, previous, network=net, last=last)
        assert incremental.ops == full.ops, seed
        assert incremental.status == full.status, seed
        memo = last.rules_memo if last else None
        if P._replan_rules(net, observed, memo) is not None:
            fast += 1
            added += any(isinstance(op, P.AddRule) for op in incremental.ops)
            # the tables changed since the base: the rules appended there are checked
            appended += any(observed.tables[t] is not memo.tables[t] for t in memo.tables)
        if rnd.random() < 0.8:           # the round applies the plan (else it failed)
            host.apply(incremental.ops)
            tables.apply(incremental.ops)
            owned = dict(incremental.owned)
            previous = set(n for n, st in incremental.status.items()
                           if st.state != P.REFUSED)
        last = incremental
    return fast, added, appended


def test_the_incremental_rules_plan_is_the_full_plan_whatever_changed():
    fast = added = appended = 0
    for seed in range(40):
        f, a, p = walk(seed)
        fast, added, appended = fast + f, added + a, appended + p
    # the fast path did much of the work: new bridges' rules, and the rounds after the
    # commit of such rules (the tables walked again, the rules found appended)
    assert fast > 1500 and added > 100 and appended > 100, (fast, added, appended)


def test_a_new_bridge_has_its_rules_planned_alone():
    host, tables = Host(), Tables()
    host.create("xapi0", up=True)
    observed = host.observed()._replace(tables=tables.observed())
    net = P.plan_network(GATEWAYS, observed, {}, set())
    first = P.plan(GATEWAYS, observed, {}, set(), network=net)
    host.apply(first.ops)
    tables.apply(first.ops)
    owned, previous = dict(first.owned), {"g0", "g1", "g2", "g3", "g5"}
    observed = host.observed()._replace(tables=tables.observed())
    net = P.plan_network(GATEWAYS, observed, owned, previous, last=net)
    settled = P.plan(GATEWAYS, observed, owned, previous, network=net)
    assert settled.ops == [] and settled.rules_memo.clean

    # a forward wants the on-demand chains, absent here: planned in full
    host.create("xapi5")
    observed = host.observed()._replace(tables=tables.observed())
    created = P.plan_network(GATEWAYS, observed, owned, previous, last=net)
    assert created.since == (net.live, (GATEWAYS["g5"],))
    assert P._replan_rules(created, observed, settled.rules_memo) is None
    host.delete("xapi5")

    host.create("xapi2")                              # a bridge without forwards
    observed = host.observed()._replace(tables=tables.observed())
    created = P.plan_network(GATEWAYS, observed, owned, previous, last=net)
    assert P._replan_rules(created, observed, settled.rules_memo) is not None
    plan = P.plan(GATEWAYS, observed, owned, previous, network=created, last=settled)
    assert plan.ops[1:] == [P.AddRule(s.table, s.chain, s)
                            for s in rulesmod.gateway_rules(GATEWAYS["g2"])]
    assert plan.status["g2"].state == P.PENDING
