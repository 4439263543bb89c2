"""Sources of desired gateways, behind one interface: ``gateways() -> {name: Gateway}``;
and of VLAN links: ``links() -> agent.core.links.Resolved`` (the DesiredLinks to make and a
LinkStatus for every network that declares one).

The configuration file is the first source; XAPI (networks' other_config) joins it later
through the same interface, and ``Merged`` puts several together, refusing a name that two
sources both define. ``invalid() -> {name: desired.Invalid}`` reports what is not applied,
with the XAPI network uuid where there is one (the journal's NETWORK=).
"""
import logging

from agent.core import links as linksmod
from agent.core import placement, tunnels
from agent.core.desired import Invalid, network_of
from agent.errors import GatewayInvalid, StateError

log = logging.getLogger(__name__)


class StaticSource(object):
    """Gateways from the configuration file; replaced as a whole on reload."""

    def __init__(self, gateways=None):
        self._gateways = dict(gateways or {})
        self.version = 0  # changes whenever gateways() may return something else

    def replace(self, gateways):
        self._gateways = dict(gateways)
        self.version += 1

    def gateways(self):
        return self._gateways

    def invalid(self):
        return {}

    def links(self):
        return NO_LINKS  # the config file names bridges, not networks: no links


class XapiSource(object):
    """Gateways from the networks' other_config in XAPI (agent.core.desired).

    Updated by the XAPI watcher; until the first update (XAPI not reachable yet) it
    serves the last desired state cached on disk, so gateways (and links) keep being
    enforced across daemon restarts while XAPI is away. ``backend``: the host's network
    backend (agent.adapters.ovsdb: "openvswitch" or "bridge"), which decides whether a
    link can be made at all."""

    def __init__(self, cache=None, backend=linksmod.OPENVSWITCH):
        from agent.core.desired import gateways_from_networks
        self._derive = gateways_from_networks
        self._cache = cache
        self.backend = backend
        self._gateways, self._invalid, self._links = {}, {}, NO_LINKS
        self.version = 0
        self.connected = False
        self.reason = "not connected yet"
        if cache is not None:
            networks = cache.load()
            if networks:
                self._take(networks)

    def _take(self, networks):
        self._gateways, self._invalid = self._derive(networks)
        self._links = linksmod.resolve(networks, self.backend)

    def update(self, networks):
        self._take(networks)
        self.version += 1
        if self._cache is not None:
            try:
                self._cache.save(networks)
            except StateError as exc:  # a full disk: enforce all the same, say so
                log.warning("cannot cache XAPI's networks: %s", exc)

    def gateways(self):
        return self._gateways

    def invalid(self):
        return self._invalid

    def links(self):
        return self._links


NO_LINKS = linksmod.Resolved((), {})


class MergedSource(object):
    """Several sources as one; a name defined twice is kept from the first source and
    reported invalid from the others."""

    def __init__(self, *sources):
        self.sources = sources

    @property
    def version(self):
        return tuple(s.version for s in self.sources)

    def gateways(self):
        merged = {}
        for source in self.sources:
            for name, gw in source.gateways().items():
                merged.setdefault(name, gw)
        return merged

    def invalid(self):
        merged, seen = {}, {}
        for source in self.sources:
            merged.update(source.invalid())
            for name, gw in source.gateways().items():
                if name in seen and seen[name] is not gw:
                    merged[name + "@" + gw.source] = Invalid(
                        gw.bridge, "gateway name %s is already defined by %s"
                        % (name, seen[name].source), network=network_of(gw))
                seen.setdefault(name, gw)
        return merged

    def links(self):
        """The links of the one source that has networks (XAPI); none without it."""
        for source in self.sources:
            resolved = source.links()
            if resolved.status:
                return resolved
        return NO_LINKS


class PlacedSource(object):
    """The gateways of ``inner`` that agent.core.placement gives this host.

    ``update_pool(records)`` takes the pool's host, host_metrics and PIF records (from the
    XAPI watcher). Until they are known, or while this host is not found among them, every
    gateway is served here, as on a single host. While XAPI is away the last pool picture
    stays (emergency mode: the status quo). A gateway placed elsewhere, or on no host, is
    not in ``gateways()``, so the planner removes exactly what this host had put in place
    for it; ``placement()`` says, for every gateway, which host serves it and why."""

    def __init__(self, inner, this_host=""):
        self.inner = inner
        self.this_host = this_host   # [xapi] host or the inventory's uuid; "" unknown
        self._pool = None
        self._records = {}
        self._shapes = (None, {})
        self._ports = (None, None)
        self._pool_version = 0
        self._cached = (None, {})
        self.problem = None          # why placement is not in force, None when it is

    @property
    def version(self):
        return (self.inner.version, self._pool_version)

    def update_pool(self, records):
        """``records``: {"network": {ref: rec}, "host": ..., "host_metrics": ..., "pif": ...,
        "tunnel": ...} as the XAPI watcher follows them."""
        self._pool = placement.snapshot(records.get("host"), records.get("host_metrics"),
                                        records.get("network") or {}, records.get("pif"))
        self._records = records
        self._pool_version += 1

    def tunnels(self):
        """{network uuid: tunnels.Shape} of the networks that span the pool, as the pool's
        last records describe them (empty until they are known)."""
        if self._pool is None:
            return {}
        if self._shapes[0] != self._pool_version:
            self._shapes = (self._pool_version, tunnels.shapes(self._records, self._pool))
        return self._shapes[1]

    def tunnel_ports(self):
        """The VXLAN ports this host should have (tunnels.Port, sorted by name), or None
        while the pool or this host is not known: then the daemon leaves its tunnel ports
        as they are (after a restart while the master is away, the status quo)."""
        key = (self._pool_version, self.this_host)
        if self._ports[0] != key:   # an idle round asks again: the same answer, cached
            me = self.me()
            self._ports = (key, tunnels.ports_on(self.tunnels(), me) if me else None)
        return self._ports[1]

    def tunnel_status(self, results=None):
        """Status of every spanning network: its Shape as a dict (VNI, center, ports per
        host, the hosts left out), its bridge, the ports this host should have and, from
        ``results`` ({network uuid: (state, reason)}, the reconciler's), what the OVS writer
        made of them here (``here_state``: applied, waiting, error; None: no ports here
        or not written yet)."""
        results = results or {}
        me = self.me()
        hosts = self._pool.hosts if self._pool is not None else ()
        out = []
        for uuid, shape in sorted(self.tunnels().items(), key=lambda i: i[1].name):
            view = shape.as_dict(hosts)
            here = shape.ports.get(me, ()) if me else ()
            state, reason = results.get(uuid, (None, None)) if here else (None, None)
            view.update(network=uuid, name=shape.name, bridge=shape.bridge,
                        here=[{"name": p.name, "remote_ip": p.remote_ip, "key": p.key}
                              for p in here], here_state=state, here_reason=reason)
            out.append(view)
        return out

    def me(self):
        """This host's uuid in the pool, "" while it is not known."""
        if self._pool is None or not self.this_host:
            return ""
        try:
            return placement.resolve_pin(self._pool.hosts, self.this_host, "[xapi] host").uuid
        except GatewayInvalid:
            return ""

    def _decisions(self):
        key = self.version
        if self._cached[0] == key:
            return self._cached[1]
        decisions, before, self.problem = {}, self.problem, None
        if self._pool is None:
            self.problem = "no pool records yet"
        elif not self.this_host:
            self.problem = "this host's uuid is not known ([xapi] host, inventory)"
        else:
            try:
                me = placement.resolve_pin(self._pool.hosts, self.this_host, "[xapi] host")
            except GatewayInvalid as exc:  # say it, and serve as on a single host
                self.problem = str(exc)
            else:
                decisions = placement.place(self._pool, me.uuid,
                                            self.inner.gateways().values())
        if self.problem != before and self._pool is not None:
            if self.problem:
                log.warning("pool placement not in force (%s): serving every gateway here",
                            self.problem)
            else:
                log.info("pool placement in force for host %s", self.this_host)
        self._cached = (key, decisions)
        return decisions

    def links(self):
        """Links need no placement: a link joins two host-local networks (a network with a
        PIF is refused), so each host makes it where both bridges are."""
        return self.inner.links()

    def placement(self):
        """{gateway name: placement.Decision}; empty while placement is not in force."""
        return self._decisions()

    def gateways(self):
        decisions = self._decisions()
        return {name: gw for name, gw in self.inner.gateways().items()
                if name not in decisions or decisions[name].here}

    def invalid(self):
        merged = dict(self.inner.invalid())
        gateways = self.inner.gateways()
        for name, decision in self._decisions().items():
            if decision.state == placement.INVALID:
                gw = gateways[name]
                merged[name] = Invalid(gw.bridge, "%s: %s" % (name, decision.reason),
                                       network=network_of(gw))
        return merged

    def elsewhere(self):
        """{name: (Gateway, Decision)} of the gateways another host serves, or none."""
        gateways = self.inner.gateways()
        return {name: (gateways[name], d) for name, d in self._decisions().items()
                if d.state in (placement.ELSEWHERE, placement.UNSERVED)}
