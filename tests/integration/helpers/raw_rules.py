"""Put one gateway's chains, jumps and rules into this namespace's tables, then print
each table's fingerprint (size, entry count, digest without counters) as JSON.

    python raw_rules.py adapter|python-iptables

``adapter``: the planner's operations through agent.adapters.iptables (raw entries).
``python-iptables``: the same operations made the way the adapter made them before, with
python-iptables Rule objects: the reference the raw entries must equal byte for byte.
"""
import json
import sys

import iptc

from agent.adapters.iptables import Iptables, TableReader
from agent.core import model
from agent.core import planner as P
from agent.core import rules as rulesmod

GATEWAYS = [
    model.make_gateway("g1", "xapi1", "172.16.1.1/24", nat=True,
                       forwards=model.parse_forwards("tcp:8080=172.16.1.10:80,"
                                                     "udp:5353=172.16.1.11:53"),
                       inbound=model.parse_inbound("192.0.2.0/24")),
    model.make_gateway("g2", "xapi2", "172.16.2.1/24", nat=False,
                       inbound=model.parse_inbound("any")),
    model.make_gateway("g3", "xapi3", "172.16.3.1/24", nat=True,
                       forwards=model.parse_forwards("tcp:2222=172.16.3.10:22")),
]


def build_rule(spec):
    """A python-iptables Rule for a RuleSpec (the adapter's former writer)."""
    rule = iptc.Rule()
    if spec.src:
        rule.src = spec.src
    if spec.dst:
        rule.dst = spec.dst
    if spec.in_iface:
        rule.in_interface = spec.in_iface
    if spec.out_iface:
        rule.out_interface = spec.out_iface
    if spec.proto:
        rule.protocol = spec.proto
    if spec.dst_type:
        rule.create_match("addrtype").dst_type = spec.dst_type
    if spec.dport is not None:
        rule.create_match(spec.proto).dport = str(spec.dport)
    if spec.ctstate:
        rule.create_match("conntrack").ctstate = spec.ctstate
    rule.create_match("comment").comment = spec.key
    target = iptc.Target(rule, spec.target)
    if spec.to_destination:
        target.to_destination = spec.to_destination
    rule.target = target
    return rule


def reference_apply(table_name, ops):
    table = iptc.Table(table_name)
    table.autocommit = False
    table.refresh()
    for op in ops:
        if isinstance(op, P.EnsureChain):
            table.create_chain(op.chain)
        elif isinstance(op, P.FixJump):
            assert not op.delete
            rule = iptc.Rule()
            rule.target = iptc.Target(rule, op.chain)
            iptc.Chain(table, op.builtin).insert_rule(rule, 0)
        elif isinstance(op, P.AddRule):
            iptc.Chain(table, op.chain).append_rule(build_rule(op.spec))
        else:
            raise AssertionError("unexpected operation %r" % (op,))
    table.commit()


def main():
    mode = sys.argv[1]
    adapter = Iptables()
    tables = {t: adapter.observe(t) for t in rulesmod.TABLES}
    links = {gw.bridge: P.Link(10 + i, gw.bridge, True, "bridge")
             for i, gw in enumerate(GATEWAYS)}
    observed = P.Observed(links=links, addresses={}, routes=set(), tables=tables,
                          ip_forward=True)
    plan = P.plan({gw.name: gw for gw in GATEWAYS}, observed)
    for table in rulesmod.TABLES:
        ops = plan.table_ops(table)
        if mode == "adapter":
            adapter.apply(table, ops)
        else:
            reference_apply(table, ops)
    # what the observer reads back now, and what the planner would still change
    tables = {t: adapter.observe(t) for t in rulesmod.TABLES}
    again = P.plan({gw.name: gw for gw in GATEWAYS}, observed._replace(tables=tables))
    reader = TableReader()
    # compared with another process's: the entries themselves (a large table's digest
    # is a hash keyed per process), whatever the tables' size
    reader.KEPT = 1 << 30
    print(json.dumps({
        "fingerprints": {t: [reader.fingerprint(t)[0], reader.fingerprint(t)[1],
                             reader.fingerprint(t)[2].hex()] for t in rulesmod.TABLES},
        "rules": sum(len(plan.table_ops(t)) for t in rulesmod.TABLES),
        "left": [type(op).__name__ for op in again.ops if not isinstance(op, P.AddAddress)],
    }))


if __name__ == "__main__":
    main()
