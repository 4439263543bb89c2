"""Pure iptables rule generation: what a gateway needs, as data.

The daemon's rules live only in chains it owns, reached by one jump at the top of a
built-in chain. Every rule carries a comment ``xgw:<bridge>:<role>:<what>`` that is also
its identity (``<what>`` is the subnet, or the forward in its text form such as
``tcp:8080=172.16.1.10:80``): observation reads these comments (cheap), and a rule whose
comment is not desired is ours to delete. A rule without our prefix is never touched,
even inside our own chains.

A forward (DNAT) of a gateway on xapi1 from tcp port 8080 to 172.16.1.10:80 is four rules:

    nat    XGW-PREROUTING  -p tcp -m addrtype --dst-type LOCAL --dport 8080
                           -j DNAT --to-destination 172.16.1.10:80        (role dnat)
    nat    XGW-OUTPUT      ! -d 127.0.0.0/8 -p tcp -m addrtype --dst-type LOCAL
                           --dport 8080 -j DNAT ...                       (role dnat-local)
    filter XGW-FORWARD     -d 172.16.1.10/32 -o xapi1 -p tcp --dport 80
                           -m conntrack --ctstate DNAT -j ACCEPT          (role forward-dnat)
    nat    XGW-POSTROUTING -s 172.16.1.0/24 -d 172.16.1.10/32 -o xapi1 -p tcp --dport 80
                           -m conntrack --ctstate DNAT -j MASQUERADE      (role hairpin)

``--dst-type LOCAL`` takes the port on every address of the host (its uplink, the gateway
addresses) and nothing that merely passes through it. OUTPUT serves Dom0's own processes
connecting to one of its addresses, except loopback: a packet from 127.0.0.1 cannot leave
through a bridge, so connections to localhost keep reaching local services. PREROUTING
matches on every interface, the gateway's own bridge included, so a VM of the subnet can
use the published address too (hairpin): without the ``hairpin`` MASQUERADE the server
would answer that VM directly, from an address it never connected to. The FORWARD accept
takes only connections our DNAT made (``--ctstate DNAT``), not anything routed straight to
the VM's port.

An inbound source (a network allowed to open connections into the subnet, routed and not
NATed) is one rule; replies go out by ``forward-out``, and the MASQUERADE rule never sees
them (nat rules apply to the first packet of a connection, which came from outside):

    filter XGW-FORWARD     -s 192.0.2.0/24 -d 172.16.1.0/24 -o xapi1 -j ACCEPT
                                                                          (role inbound)

XGW-POSTROUTING and XGW-FORWARD always exist once the daemon runs; XGW-PREROUTING and
XGW-OUTPUT (ON_DEMAND) exist, with their jumps, only while a forward needs them, so that a
host without forwards keeps its nat PREROUTING and OUTPUT chains as they were.
"""
import functools
from collections import namedtuple

KEY_PREFIX = "xgw:"

# (table, built-in chain, our chain): one jump from the built-in to ours, at position 0.
OWN_CHAINS = (
    ("nat", "POSTROUTING", "XGW-POSTROUTING"),
    ("nat", "PREROUTING", "XGW-PREROUTING"),
    ("nat", "OUTPUT", "XGW-OUTPUT"),
    ("filter", "FORWARD", "XGW-FORWARD"),
)
ON_DEMAND = frozenset(["XGW-PREROUTING", "XGW-OUTPUT"])
TABLES = ("nat", "filter")
# The chain of each table's per-gateway rules (MASQUERADE, FORWARD accepts).
CHAIN_OF = {"nat": "XGW-POSTROUTING", "filter": "XGW-FORWARD"}
DNAT_CHAIN = "XGW-PREROUTING"
LOCAL_DNAT_CHAIN = "XGW-OUTPUT"
LOOPBACK = "127.0.0.0/8"

# src / dst are CIDR strings, prefixed with "!" when inverted; ctstate is a conntrack
# state list or None; target is a built-in target name. proto ("tcp", "udp"), dport (an
# int), dst_type (an addrtype such as "LOCAL") and to_destination ("ADDRESS:PORT" of a
# DNAT target) are None where the rule has none.
RuleSpec = namedtuple("RuleSpec", "table chain key src dst in_iface out_iface ctstate target "
                                  "proto dport dst_type to_destination")
RuleSpec.__new__.__defaults__ = (None, None, None, None)


def match_of(spec):
    """What the observer reads back from the kernel for a rule made from ``spec``
    (planner.RuleView.match): every field but the comment, target name and ctstate."""
    return (spec.src, spec.dst, spec.in_iface, spec.out_iface, spec.proto, spec.dport,
            spec.dst_type, spec.to_destination)


def rule_key(bridge, role, what):
    return "%s%s:%s:%s" % (KEY_PREFIX, bridge, role, what)


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
    for source in gw.inbound:
        # New connections from an allowed source into the subnet, ahead of Dom0's REJECT.
        rules.append(RuleSpec("filter", fwd_chain, rule_key(gw.bridge, "inbound", str(source)),
                              src=None if source.prefixlen == 0 else str(source), dst=net,
                              in_iface=None, out_iface=gw.bridge, ctstate=None,
                              target="ACCEPT"))
    for fwd in gw.forwards:
        rules.extend(forward_rules(gw, fwd))
    return tuple(rules)


def forward_rules(gw, fwd):
    """The four rules of one forward (see the module docstring)."""
    what = str(fwd)
    to_host = "%s/32" % fwd.to_address
    return (
        RuleSpec("nat", DNAT_CHAIN, rule_key(gw.bridge, "dnat", what), src=None, dst=None,
                 in_iface=None, out_iface=None, ctstate=None, target="DNAT",
                 proto=fwd.proto, dport=fwd.port, dst_type="LOCAL", to_destination=fwd.to),
        RuleSpec("nat", LOCAL_DNAT_CHAIN, rule_key(gw.bridge, "dnat-local", what), src=None,
                 dst="!" + LOOPBACK, in_iface=None, out_iface=None, ctstate=None,
                 target="DNAT", proto=fwd.proto, dport=fwd.port, dst_type="LOCAL",
                 to_destination=fwd.to),
        RuleSpec("nat", CHAIN_OF["nat"], rule_key(gw.bridge, "hairpin", what),
                 src=str(gw.network), dst=to_host, in_iface=None, out_iface=gw.bridge,
                 ctstate="DNAT", target="MASQUERADE", proto=fwd.proto, dport=fwd.to_port),
        RuleSpec("filter", CHAIN_OF["filter"], rule_key(gw.bridge, "forward-dnat", what),
                 src=None, dst=to_host, in_iface=None, out_iface=gw.bridge, ctstate="DNAT",
                 target="ACCEPT", proto=fwd.proto, dport=fwd.to_port),
    )


def desired_rules(gateways):
    """{(table, chain): {key: RuleSpec}} for an iterable of gateways, in a stable order."""
    out = {(table, chain): {} for table, _b, chain in OWN_CHAINS}
    for gw in gateways:
        for spec in gateway_rules(gw):
            out[(spec.table, spec.chain)][spec.key] = spec
    return out
