"""The best a script can do, for the benchmark's side-by-side figures.

The same end state as the daemon's (the address of each gateway on its bridge, the kernel's
connected route that comes with it, the daemon's chains, jumps and rules with their
comments, ip_forward on), made by the fastest tools a shell script has:

  - one ``ip addr add`` and one ``iptables-restore --noflush`` per bridge (latency), and
  - one ``iptables-restore --noflush`` of every rule plus one ``ip -batch`` of every
    address (start-up).

The rules come from core.rules (the daemon's own rule generation), rendered in
iptables-save notation here, so the script's table and the daemon's hold the same rules.
Bench-only: nothing in the agent uses it.
"""
from agent.core import model
from agent.core import rules as rulesmod
from driver import bridge_name, gateway_cidr, gateway_name


def gateway(i):
    return model.make_gateway(gateway_name(i), bridge_name(i), gateway_cidr(i), nat=True)


def rule_line(spec):
    """``-A CHAIN ...`` of a core.rules.RuleSpec, as iptables-save prints it."""
    words = ["-A", spec.chain]
    for flag, value in (("-s", spec.src), ("-d", spec.dst), ("-i", spec.in_iface),
                        ("-o", spec.out_iface)):
        if value:
            words += (["!", flag, value[1:]] if value.startswith("!") else [flag, value])
    if spec.proto:
        words += ["-p", spec.proto]
    if spec.dst_type:
        words += ["-m", "addrtype", "--dst-type", spec.dst_type]
    if spec.dport is not None:
        words += ["-m", spec.proto, "--dport", str(spec.dport)]
    if spec.ctstate:
        words += ["-m", "conntrack", "--ctstate", spec.ctstate]
    words += ["-m", "comment", "--comment", '"%s"' % spec.key, "-j", spec.target]
    if spec.to_destination:
        words += ["--to-destination", spec.to_destination]
    return " ".join(words)


def restore_text(indices, chains=True):
    """iptables-restore input for the gateways ``indices``: with ``chains``, the daemon's
    always-present chains and their jumps at the top of the built-ins too (the start-up
    script); without, only the rules, appended to chains that exist (the per-bridge one).
    Use with ``--noflush`` so that Dom0's own rules stay."""
    per_table = {"nat": [], "filter": []}
    for i in indices:
        for spec in rulesmod.gateway_rules(gateway(i)):
            per_table[spec.table].append(rule_line(spec))
    out = []
    for table in rulesmod.TABLES:
        out.append("*%s" % table)
        if chains:
            for t, builtin, chain in rulesmod.OWN_CHAINS:
                if t == table and chain not in rulesmod.ON_DEMAND:
                    out.append(":%s - [0:0]" % chain)
                    out.append("-I %s 1 -j %s" % (builtin, chain))
        out.extend(per_table[table])
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def address_batch(indices):
    """``ip -batch`` input adding each gateway's address to its bridge."""
    return "".join("address add %s dev %s\n" % (gateway_cidr(i), bridge_name(i))
                   for i in indices)
