"""Desired gateways from XAPI network records (pure).

A network's gateway lives in its other_config, so ``xe network-param-set uuid=...
other-config:xapi-gateway.address=172.16.1.1/24`` is a supported interface:

    xapi-gateway.address   CIDR of the gateway (required to have a gateway)
    xapi-gateway.nat       true/false (default true)
    xapi-gateway.forwards  port forwards (DNAT) from the host to hosts of the subnet, as
                           comma-separated PROTO:PORT=ADDRESS:PORT entries (default none)

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
KNOWN = frozenset([ADDRESS, NAT, FORWARDS])
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
    ours = [rec for rec in records.values()
            if any(k.startswith(PREFIX) for k in rec.get("other_config", {}))]
    labels = {}
    for rec in ours:
        labels[rec.get("name_label", "")] = labels.get(rec.get("name_label", ""), 0) + 1
    gateways, invalid = {}, {}
    for rec in sorted(ours, key=lambda r: r.get("uuid", "")):
        label, uuid = rec.get("name_label", ""), rec.get("uuid", "")
        name = label if labels[label] == 1 and _valid_name(label) else \
            "network-%s" % uuid[:8]
        config = rec["other_config"]
        bridge = rec.get("bridge", "")
        unknown = sorted(k for k in config if k.startswith(PREFIX) and k not in KNOWN)
        try:
            if unknown:
                raise GatewayInvalid("unknown key %s (known: %s)"
                                     % (", ".join(unknown), ", ".join(sorted(KNOWN))))
            if ADDRESS not in config:
                raise GatewayInvalid("%s is missing" % ADDRESS)
            gateways[name] = model.make_gateway(
                name, bridge, config[ADDRESS], config.get(NAT, "true"),
                source=SOURCE_PREFIX + uuid, forwards=config.get(FORWARDS, ""))
        except GatewayInvalid as exc:
            invalid[name] = Invalid(bridge, "network %s (%s): %s" % (label, uuid, exc),
                                    network=uuid or None)
    return gateways, invalid


def _valid_name(label):
    try:
        model.parse_name(label)
        return True
    except GatewayInvalid:
        return False
