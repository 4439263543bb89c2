"""Which host of a pool serves each gateway (pure).

A pool's hosts share one database, other_config included, so every host's daemon sees
every gateway. For a network on the wire (one with PIFs: a VLAN or a physical network, one
L2 segment across the hosts that have it), only one host may put the gateway address on
the segment. Every host computes the same choice from the pool database alone, so no
election traffic is needed:

1. ``xapi-gateway.host`` (a host's uuid, or its name_label when that names exactly one
   host) pins the gateway: the pinned host serves it while it is live, enabled and has
   the network attached ("pinned"). While it is not, the rule below chooses, and the
   reason says why the pin does not hold.
2. Otherwise the host with the lowest uuid among the live, enabled hosts with the network
   attached; when no enabled host has it, the lowest uuid among the live ones (a host in
   maintenance still serves rather than nobody: a one-host pool keeps its gateways).
3. No live host with the network attached: nobody serves it ("unserved").

"Live" is ``host_metrics.live`` and, for the other hosts, reachable: this host hears their
heartbeats (agent.core.liveness), since XAPI marks a host that simply died dead only
after about 10 minutes. Views of reachability differ between hosts for a moment, so for
a wired network the answer here is whom placement wants; the claim in XAPI
(agent.core.claims) decides who actually serves.

A host-local network (no PIFs: XAPI's single-server private network) has a separate bridge
on each host where it is in use, and XAPI keeps its VMs on one host; the host that has its
bridge serves it, as on a single host ("here" on every host until some host uses it; the
bridges are separate segments, so that is no conflict). A pin does not move it: its VMs
decide where it is. Gateways of the config file are host-local too (they name a bridge of
this host), but a pin there says which host of the pool applies it (a file shared by
several hosts).

A pin that names no host of the pool, or a name_label shared by several hosts, makes the
gateway ``invalid`` (the state every bad value gets): it is served nowhere and the reason
names the key to fix. Whether a pin names a host is decided here, with the pool's records;
its syntax is agent.core.model.parse_host's.

The input is a Pool snapshot (``snapshot`` builds it from XAPI records); the answer, one
Decision per gateway, is the same on every host but for ``here``.
"""
from collections import namedtuple

from agent.core import desired
from agent.errors import GatewayInvalid

HERE = "here"
ELSEWHERE = "elsewhere"
UNSERVED = "unserved"
INVALID = "invalid"


class Host(namedtuple("Host", "uuid name enabled live reachable")):
    """A pool member: uuid, name_label, host.enabled, host_metrics.live, and whether this
    host hears its heartbeats (agent.core.liveness; a host is always reachable from
    itself, and every host is reachable where heartbeats are off)."""
    __slots__ = ()

    @property
    def up(self):
        return self.live and self.reachable


Host.__new__.__defaults__ = (True,)


class Network(namedtuple("Network", "uuid wired attached")):
    """``wired``: the network has PIFs (a VLAN or physical network, one segment across the
    hosts that have it); ``attached``: frozenset of the uuids of the hosts where it is up
    (a wired network: its PIF is attached there; a host-local one: a VIF on it is)."""
    __slots__ = ()


class Pool(namedtuple("Pool", "hosts networks")):
    """``hosts``: tuple of Host; ``networks``: {network uuid: Network}."""
    __slots__ = ()

    def host(self, uuid):
        for host in self.hosts:
            if host.uuid == uuid:
                return host
        return None

    def reaching(self, unreachable):
        """This pool as a host sees it that does not hear the hosts in ``unreachable``."""
        if not unreachable:
            return self
        return Pool(tuple(h._replace(reachable=h.uuid not in unreachable)
                          for h in self.hosts), self.networks)


class Decision(namedtuple("Decision", "state host reason")):
    """``state``: HERE (this host serves it), ELSEWHERE, UNSERVED or INVALID; ``host``: the
    serving Host, None when no single host serves it; ``reason``: why, in words."""
    __slots__ = ()

    @property
    def here(self):
        return self.state == HERE

    def as_dict(self):
        """What status and the API show: {host, host_name, placement}."""
        return {"host": self.host.uuid if self.host else None,
                "host_name": self.host.name if self.host else None,
                "placement": self.reason}


def resolve_pin(hosts, pin, field=desired.HOST):
    """The Host that ``pin`` (a uuid or a name_label) names among ``hosts``; raises
    GatewayInvalid when it names none, or several (a name_label shared by hosts)."""
    by_uuid = [h for h in hosts if h.uuid == pin]
    if by_uuid:
        return by_uuid[0]
    by_name = [h for h in hosts if h.name == pin]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        raise GatewayInvalid("%s %r names %d hosts of the pool (%s); pin by uuid"
                             % (field, pin, len(by_name),
                                ", ".join(sorted(h.uuid for h in by_name))),
                             field=field, value=pin)
    raise GatewayInvalid("%s %r is no host of this pool; hosts: %s"
                         % (field, pin, ", ".join("%s (%s)" % (h.name, h.uuid) for h in
                                                  sorted(hosts, key=lambda h: h.uuid))
                            or "none known"), field=field, value=pin)


def place(pool, this_host, gateways):
    """{gateway name: Decision} for ``gateways`` (agent.core.model.Gateway values) on the
    host whose uuid is ``this_host``."""
    return {gw.name: place_one(pool, this_host, gw) for gw in gateways}


def place_one(pool, this_host, gateway):
    uuid = desired.network_of(gateway)
    if uuid is None:
        try:
            pinned = resolve_pin(pool.hosts, gateway.host) if gateway.host else None
        except GatewayInvalid as exc:
            return Decision(INVALID, None, str(exc))
        return _config_file(this_host, pinned)
    return place_network(pool, this_host, uuid, gateway.host)


def place_network(pool, this_host, uuid, pin=""):
    """The Decision for the XAPI network ``uuid`` (pinned to ``pin`` when not ""): which
    host serves its gateway, and the center of its tunnels when it spans the pool
    (agent.core.tunnels), so that the gateway host is the star's hub."""
    pinned = None
    if pin:
        try:
            pinned = resolve_pin(pool.hosts, pin)
        except GatewayInvalid as exc:
            return Decision(INVALID, None, str(exc))
    network = pool.networks.get(uuid)
    if network is None or not network.wired:
        return _host_local(pool, this_host, network, pinned)
    return _wired(pool, this_host, network, pinned)


def _decide(this_host, host, reason):
    if host is None:
        return Decision(UNSERVED, None, reason)
    return Decision(HERE if host.uuid == this_host else ELSEWHERE, host, reason)


def _wired(pool, this_host, network, pinned):
    attached = [h for h in pool.hosts if h.uuid in network.attached]
    why_not = ""
    if pinned is not None:
        trouble = _unfit(pinned, network)
        if not trouble:
            return _decide(this_host, pinned, "pinned (%s)" % desired.HOST)
        why_not = "pinned to %s, which %s; " % (pinned.name, trouble)
    ready = sorted((h for h in attached if h.up and h.enabled), key=lambda h: h.uuid)
    if ready:
        return _decide(this_host, ready[0], why_not + "lowest uuid among the live, enabled "
                       "hosts with the network attached")
    live = sorted((h for h in attached if h.up), key=lambda h: h.uuid)
    if live:
        return _decide(this_host, live[0], why_not + "no enabled host has the network "
                       "attached; lowest uuid among the live ones")
    return _decide(this_host, None, why_not + "no live host has the network attached")


def unfit(pool, network_uuid, uuid):
    """Why the host ``uuid`` cannot serve the wired network now ('' when it can): what a
    claim's holder is checked against (agent.core.claims)."""
    host, network = pool.host(uuid), pool.networks.get(network_uuid)
    if host is None:
        return "is no host of the pool"
    if network is None:
        return "does not have the network attached"
    return _unfit(host, network)


def _unfit(host, network):
    if not host.live:
        return "is not live"
    if not host.reachable:
        return "is unreachable (no heartbeat)"
    if not host.enabled:
        return "is disabled"
    if host.uuid not in network.attached:
        return "does not have the network attached"
    return ""


def _host_local(pool, this_host, network, pinned):
    note = " (a pin does not move a host-local network)" if pinned else ""
    users = sorted(network.attached) if network is not None else []
    if not users:
        return Decision(HERE, pool.host(this_host), "host-local: served by the host that "
                        "has its bridge, none has it now" + note)
    if this_host in users:
        return Decision(HERE, pool.host(this_host),
                        "host-local: this host has its bridge" + note)
    if len(users) == 1:
        return Decision(ELSEWHERE, pool.host(users[0]),
                        "host-local: that host has its bridge" + note)
    return Decision(ELSEWHERE, None, "host-local: each of %d other hosts serves its own "
                    "bridge" % len(users) + note)


def _config_file(this_host, pinned):
    if pinned is None or pinned.uuid == this_host:
        return Decision(HERE, pinned, "config file of this host" +
                        (" (pinned here)" if pinned else ""))
    return Decision(ELSEWHERE, pinned, "config file: pinned to another host")


def snapshot(hosts, host_metrics, networks, pifs, vifs=None, vms=None):
    """The Pool that XAPI records describe: {ref: record} of host, host_metrics, network,
    PIF, and (for host-local networks in use) VIF and VM. A host whose metrics are unknown
    counts as live (XAPI marks a host dead through its metrics; no record is no mark)."""
    hosts, host_metrics, pifs = hosts or {}, host_metrics or {}, pifs or {}
    vifs, vms = vifs or {}, vms or {}
    members = []
    for ref, rec in hosts.items():
        metrics = host_metrics.get(rec.get("metrics"))
        members.append(Host(rec.get("uuid", ref), rec.get("name_label", ""),
                             bool(rec.get("enabled", True)),
                             bool(metrics.get("live", True)) if metrics else True))
    uuid_of = {ref: rec.get("uuid", ref) for ref, rec in hosts.items()}
    wired, up = {}, {}
    for rec in pifs.values():
        net = rec.get("network")
        wired[net] = True
        if rec.get("currently_attached") and rec.get("host") in uuid_of:
            up.setdefault(net, set()).add(uuid_of[rec["host"]])
    for rec in vifs.values():
        vm = vms.get(rec.get("VM"), {})
        if rec.get("currently_attached") and vm.get("resident_on") in uuid_of:
            if not wired.get(rec.get("network")):
                up.setdefault(rec.get("network"), set()).add(uuid_of[vm["resident_on"]])
    nets = {}
    for ref, rec in networks.items():
        uuid = rec.get("uuid", ref)
        nets[uuid] = Network(uuid, bool(wired.get(ref)), frozenset(up.get(ref, ())))
    return Pool(tuple(sorted(members, key=lambda h: h.uuid)), nets)


def management_addresses(hosts, pifs):
    """{host uuid: management address} from XAPI records: the IP of the host's PIF with
    ``management`` true, else ``host.address``; '' when neither is known."""
    addresses = {}
    for ref, rec in (hosts or {}).items():
        addresses[rec.get("uuid", ref)] = rec.get("address", "") or ""
    for rec in (pifs or {}).values():
        host = (hosts or {}).get(rec.get("host"))
        if host is not None and rec.get("management") and rec.get("IP"):
            addresses[host.get("uuid", rec.get("host"))] = rec["IP"]
    return addresses
