"""Desired gateways from XAPI network records (pure).

A network's gateway lives in its other_config, so ``xe network-param-set uuid=...
other-config:xapi-gateway.address=172.16.1.1/24`` is a supported interface:

    xapi-gateway.address   CIDR of the gateway (required to have a gateway)
    xapi-gateway.nat       true/false (default true)
    xapi-gateway.forwards  port forwards (DNAT) from the host to hosts of the subnet, as
                           comma-separated PROTO:PORT=ADDRESS:PORT entries (default none)
    xapi-gateway.public    true/false (default false): allow a subnet outside the private
                           (RFC 1918) and shared (RFC 6598) ranges
    xapi-gateway.inbound   outside networks allowed to open connections into the subnet,
                           routed and not NATed: comma-separated CIDRs, or ``any``
                           (default none: only replies come in)
    xapi-gateway.host      the pool host (uuid or name_label) that serves the gateway while
                           it is live and enabled (default: agent.core.placement chooses);
                           a name that is no host of the pool makes the gateway invalid
    xapi-gateway.link      PARENT:TAG: this network is VLAN TAG of the network whose uuid
                           is PARENT (agent.core.links); independent of a gateway: a network
                           with only this key has none
    xapi-gateway.vni       the network spans the pool: the VXLAN key (1-16777215, unique in
                           the pool) of the tunnels the daemons make between the hosts'
                           bridges (agent.core.tunnels); a network may have it without a
                           gateway

    xe network-param-set uuid=<network uuid>          (one command, wrapped here)
       other-config:xapi-gateway.forwards=tcp:8080=172.16.1.10:80,udp:5353=172.16.1.11:53

PROTO is tcp or udp, the first PORT the one on the host's own addresses, ADDRESS:PORT the
destination inside the subnet (":PORT" may be left out when it is the same); see
agent.core.model for the whole format. The service layer writes it canonically: lower
case, sorted by protocol and port, every destination port written.

The bridge comes from the network record, never from the user. A network whose values
are invalid is reported (name -> reason) and not applied; it does not stop the others.
A gateway from XAPI has the source ``xapi:<network uuid>`` (``network_of`` reads it back),
so that status and logs (the journal's NETWORK=) name the network to fix.
"""
from collections import namedtuple

from agent.core import model
from agent.errors import GatewayInvalid

PREFIX = "xapi-gateway."
ADDRESS = PREFIX + "address"
NAT = PREFIX + "nat"
FORWARDS = PREFIX + "forwards"
PUBLIC = PREFIX + "public"
INBOUND = PREFIX + "inbound"
HOST = PREFIX + "host"
LINK = PREFIX + "link"
VNI = PREFIX + "vni"
# Keys of a network that are not its gateway's: a network with only these has no gateway.
NETWORK_KEYS = frozenset([LINK, VNI])
KNOWN = frozenset([ADDRESS, NAT, FORWARDS, PUBLIC, INBOUND, HOST]) | NETWORK_KEYS
# Marks what a declarative topology manages (value: the topology's name), on networks and
# VMs. Deliberately outside PREFIX: a mark alone does not make a network a gateway.
TOPOLOGY_MARK = "xapi-gateway-topology"
SOURCE_PREFIX = "xapi:"


class Invalid(namedtuple("Invalid", "bridge reason")):
    """What ``invalid`` maps a name to: ``(bridge, reason)``, and as ``network`` the uuid of
    the XAPI network whose values are invalid (None where not known)."""

    def __new__(cls, bridge, reason, network=None):
        self = super(Invalid, cls).__new__(cls, bridge, reason)
        self.network = network
        return self


def network_of(gateway):
    """The XAPI network uuid of a gateway from XAPI (source ``xapi:<uuid>``), else None."""
    source = getattr(gateway, "source", None) or ""
    if not source.startswith(SOURCE_PREFIX):
        return None
    return source[len(SOURCE_PREFIX):] or None


def gateways_from_networks(records):
    """``records``: {ref: network record (as XAPI returns it)}.

    Returns (gateways {name: Gateway}, invalid {name: Invalid(bridge, reason)}). A gateway is
    named after its network's name_label when that is a valid, unique name, otherwise
    ``network-<first 8 of its uuid>``."""
    ours = [rec for rec in records.values() if has_gateway(rec.get("other_config", {}))]
    labels = {}
    for rec in ours:
        labels[rec.get("name_label", "")] = labels.get(rec.get("name_label", ""), 0) + 1
    gateways, invalid = {}, {}
    for rec in sorted(ours, key=lambda r: r.get("uuid", "")):
        label, uuid = rec.get("name_label", ""), rec.get("uuid", "")
        name = label if labels[label] == 1 and _valid_name(label) else \
            "network-%s" % uuid[:8]
        bridge = rec.get("bridge", "")
        try:
            gateways[name] = read_gateway(rec, name)
        except GatewayInvalid as exc:
            invalid[name] = Invalid(bridge, "network %s (%s): %s" % (label, uuid, exc),
                                    network=uuid or None)
    return gateways, invalid


def has_gateway(config):
    """Does an other_config declare a gateway: a key of ours other than NETWORK_KEYS (a
    link or a VNI alone is no gateway; an unknown key of ours is a gateway's typo)?"""
    return any(k.startswith(PREFIX) and k not in NETWORK_KEYS for k in config)


def read_gateway(rec, name=None):
    """The Gateway that a network record's other_config holds, None when it has no
    ``xapi-gateway.*`` key; raises GatewayInvalid when its values are invalid. ``name``:
    the gateway's name (default: the network's uuid). The one reader of these keys: the
    daemon, the API's network views and the topology planner all call it."""
    config = rec.get("other_config", {})
    if not has_gateway(config):
        return None
    uuid = rec.get("uuid", "")
    unknown = sorted(k for k in config if k.startswith(PREFIX) and k not in KNOWN)
    if unknown:
        raise GatewayInvalid("unknown key %s (known: %s)"
                             % (", ".join(unknown), ", ".join(sorted(KNOWN))))
    if ADDRESS not in config:
        raise GatewayInvalid("%s is missing" % ADDRESS)
    return model.make_gateway(
        name or "network-%s" % (uuid[:8] or "unknown"), rec.get("bridge", ""), config[ADDRESS], config.get(NAT, "true"),
        source=SOURCE_PREFIX + uuid, forwards=config.get(FORWARDS, ""),
        public=config.get(PUBLIC, "false"), inbound=config.get(INBOUND, ""),
        host=config.get(HOST))


def gateway_view(rec):
    """A network's gateway as the API shows it ({address, nat, forwards, public, inbound,
    host}), None without one. Invalid values are shown as stored, with no forwards (status
    says why); ``host`` is the pin, null when not pinned."""
    config = rec.get("other_config", {})
    try:
        gw = read_gateway(rec)
    except GatewayInvalid:
        if ADDRESS not in config:
            return None
        return {"address": config[ADDRESS], "nat": config.get(NAT, "true") == "true",
                "forwards": [], "public": config.get(PUBLIC, "false") == "true",
                "inbound": [], "host": config.get(HOST) or None}
    if gw is None:
        return None
    return {"address": str(gw.address), "nat": gw.nat,
            "forwards": [f.as_dict() for f in gw.forwards], "public": gw.public,
            "inbound": [model.format_inbound((n,)) for n in gw.inbound], "host": gw.host or None}


def other_config(address, nat=True, forwards=(), public=False, inbound=(), host=""):
    """The other_config keys of a gateway, canonical: what the service layer writes."""
    config = {ADDRESS: str(address), NAT: "true" if nat else "false"}
    if forwards:
        config[FORWARDS] = model.format_forwards(forwards)
    if public:
        config[PUBLIC] = "true"
    if inbound:
        config[INBOUND] = model.format_inbound(inbound)
    if host:
        config[HOST] = host
    return config


def _valid_name(label):
    try:
        model.parse_name(label)
        return True
    except GatewayInvalid:
        return False
