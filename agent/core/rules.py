"""Pure iptables rule generation: what a gateway needs, as data.

The daemon's rules live only in chains it owns, reached by one jump at the top of a
built-in chain. Every rule carries a comment ``xgw:<bridge>:<role>:<subnet>`` that is also
its identity: observation reads only these comments (cheap), and a rule whose comment is
not desired is ours to delete. A rule without our prefix is never touched, even inside our
own chains.
"""
import functools
from collections import namedtuple

KEY_PREFIX = "xgw:"

# (table, built-in chain, our chain): one jump from the built-in to ours, at position 0.
OWN_CHAINS = (
    ("nat", "POSTROUTING", "XGW-POSTROUTING"),
    ("filter", "FORWARD", "XGW-FORWARD"),
)
TABLES = ("nat", "filter")
CHAIN_OF = {table: chain for table, _builtin, chain in OWN_CHAINS}

# src / dst are CIDR strings, prefixed with "!" when inverted; ctstate is a conntrack
# state list or None; target is a built-in target name.
RuleSpec = namedtuple("RuleSpec", "table chain key src dst in_iface out_iface ctstate target")


def rule_key(bridge, role, network):
    return "%s%s:%s:%s" % (KEY_PREFIX, bridge, role, network)


def bridge_of(key):
    """The bridge named in one of our rule keys."""
    return key[len(KEY_PREFIX):].split(":", 1)[0]


def is_ours(comment):
    return comment is not None and comment.startswith(KEY_PREFIX)


@functools.lru_cache(maxsize=8192)
def gateway_rules(gw):
    """The rules of one gateway (a model.Gateway), as a tuple. Pure, so memoised: every
    round that re-plans asks again for every live gateway."""
    net = str(gw.network)
    nat_chain = CHAIN_OF["nat"]
    fwd_chain = CHAIN_OF["filter"]
    rules = []
    if gw.nat:
        # -s NET ! -d NET -j MASQUERADE: traffic leaving the private subnet takes the
        # address of whichever interface it goes out of.
        rules.append(RuleSpec("nat", nat_chain, rule_key(gw.bridge, "masquerade", net),
                              src=net, dst="!" + net, in_iface=None, out_iface=None,
                              ctstate=None, target="MASQUERADE"))
    # Ahead of Dom0's RH-Firewall-1-INPUT (which ends in REJECT): let the subnet out, and
    # let replies back in.
    rules.append(RuleSpec("filter", fwd_chain, rule_key(gw.bridge, "forward-out", net),
                          src=net, dst=None, in_iface=gw.bridge, out_iface=None,
                          ctstate=None, target="ACCEPT"))
    rules.append(RuleSpec("filter", fwd_chain, rule_key(gw.bridge, "forward-back", net),
                          src=None, dst=net, in_iface=None, out_iface=gw.bridge,
                          ctstate="RELATED,ESTABLISHED", target="ACCEPT"))
    return tuple(rules)


def desired_rules(gateways):
    """{(table, chain): {key: RuleSpec}} for an iterable of gateways, in a stable order."""
    out = {(table, chain): {} for table, _b, chain in OWN_CHAINS}
    for gw in gateways:
        for spec in gateway_rules(gw):
            out[(spec.table, spec.chain)][spec.key] = spec
    return out
