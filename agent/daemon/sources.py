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
from agent.core import claims, placement, tunnels
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
        self._claims = {}
        self.version = 0
        self.connected = False
        self.reason = "not connected yet"
        if cache is not None:
            networks = cache.load()
            if networks:
                self._take(networks)

    def _take(self, networks):
        self._claims = {rec.get("uuid", ref): claims.of_network(rec)
                        for ref, rec in networks.items()}
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

    def claims(self):
        """{network uuid: claim value} as last seen (cached on disk across restarts)."""
        return self._claims

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
        self._merged = (None, None)   # (version, gateways()) of the last call

    @property
    def version(self):
        return tuple(s.version for s in self.sources)

    def gateways(self):
        """The merged gateways: the same dict again while no source's version changed
        (callers must not change it): a round asks several times, and the planner
        reuses its work for the same desired state."""
        version = self.version
        if self._merged[0] == version:
            return self._merged[1]
        merged = {}
        for source in self.sources:
            for name, gw in source.gateways().items():
                merged.setdefault(name, gw)
        self._merged = (version, merged)
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
    """The gateways of ``inner`` that agent.core.placement gives this host, and that the
    claim in XAPI (agent.core.claims) lets it serve.

    ``update_pool(records)`` takes the pool's network, host, host_metrics and PIF records
    (from the XAPI watcher); ``set_unreachable(uuids)`` the peers whose heartbeats this
    host does not hear (agent.core.liveness). Until the records are known, or while this
    host is not found among them, every gateway is served here, as on a single host, but
    for a network whose last known claim (``claims_of()``: the networks cached on disk)
    is another host's, and, after a boot of the host (``restarted`` False: the runtime
    directory was empty), one whose cached claim is this host's own: another host may
    have taken it over meanwhile, so it waits for XAPI's answer. After a restart of the
    daemon alone, the kernel still has what it served: the status quo is kept. A gateway placed elsewhere, on no host, or not claimed by this host
    is not in ``gateways()``, so the planner removes exactly what this host had put in
    place for it; ``placement()`` says, for every gateway, which host serves it and why;
    ``claim_writes()`` lists the claim writes this host's verdicts call for.

    Emergency mode: ``set_connected(False)`` after XAPI was reached (the master is away,
    or this host cannot reach it) freezes the gateways served at that moment: they stay
    served, nothing is taken over, nothing dropped, and no claim is written until XAPI
    answers again."""

    def __init__(self, inner, this_host="", claims_of=None, restarted=True):
        self.inner = inner
        self.restarted = restarted   # False after a host boot: cached claims are stale
        self.this_host = this_host   # [xapi] host or the inventory's uuid; "" unknown
        self._claims_of = claims_of or (lambda: {})
        self._pool = None
        self._records = {}
        self._shapes = (None, {})
        self._ports = (None, None)
        self._claims = {}            # {network uuid: raw claim} as last seen in XAPI
        self._unreachable = frozenset()
        self._frozen = None          # emergency mode: the names served when XAPI went
        self._pool_version = 0
        self._cached = (None, ({}, {}))
        self._served = (None, None)  # (version, gateways()) of the last call
        self.problem = None          # why placement is not in force, None when it is

    @property
    def version(self):
        return (self.inner.version, self._pool_version)

    @property
    def emergency(self):
        return self._frozen is not None

    def update_pool(self, records):
        """``records``: {"network": {ref: rec}, "host": ..., "host_metrics": ..., "pif": ...,
        "tunnel": ...} as the XAPI watcher follows them."""
        networks = records.get("network") or {}
        self._pool = placement.snapshot(records.get("host"), records.get("host_metrics"),
                                        networks, records.get("pif"))
        self._records = records
        seen = {rec.get("uuid", ref): claims.of_network(rec) for ref, rec in networks.items()}
        self._claims = {uuid: claims.newer(self._claims.get(uuid, ""), raw)
                        for uuid, raw in seen.items()}
        self._pool_version += 1

    def pool(self):
        """The last Pool snapshot (None before the records came)."""
        return self._pool

    def tunnels(self):
        """{network uuid: tunnels.Shape} of the networks that span the pool, as the pool's
        last records describe them (empty until they are known)."""
        if self._pool is None:
            return {}
        if self._shapes[0] != self._pool_version:
            # the pool as this host hears it: a center that simply died (still live in
            # XAPI for minutes) is replaced when its heartbeats stop, as its gateway is
            me = self.me()
            pool = self._pool.reaching(self._unreachable - {me})
            self._shapes = (self._pool_version, tunnels.shapes(self._records, pool))
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

    def set_unreachable(self, uuids):
        uuids = frozenset(uuids)
        if uuids != self._unreachable:
            self._unreachable = uuids
            self._pool_version += 1

    def note_claim(self, network, value):
        """This host wrote ``value`` ('' removed) as the network's claim: act on it before
        the event says so (the event, when it comes, is the truth)."""
        self._claims[network] = claims.newer(self._claims.get(network, ""), value)
        self._pool_version += 1

    def set_connected(self, connected):
        """XAPI reached or lost; returns True when emergency mode began or ended."""
        if not connected and self._frozen is None and self._pool is not None:
            self._frozen = frozenset(self.gateways())
            self._pool_version += 1
            log.warning("EMERGENCY MODE: XAPI (the pool master) is unreachable: keeping "
                        "the status quo: serving the %d gateway(s) served now (%s), taking "
                        "nothing over, dropping nothing, writing no claim",
                        len(self._frozen), ", ".join(sorted(self._frozen)) or "none")
            return True
        if connected and self._frozen is not None:
            self._frozen = None
            self._pool_version += 1
            log.warning("emergency mode over: XAPI answers again; placement and claims "
                        "in force")
            return True
        return False

    def _decisions(self):
        """({name: placement.Decision}, {name: claims.Verdict}) for the wired networks."""
        key = self.version
        if self._cached[0] == key:
            return self._cached[1]
        decisions, verdicts, before, self.problem = {}, {}, self.problem, None
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
                pool = self._pool.reaching(self._unreachable - {me.uuid})
                gateways = self.inner.gateways()
                decisions = placement.place(pool, me.uuid, gateways.values())
                for name, gw in gateways.items():
                    uuid = network_of(gw)
                    network = pool.networks.get(uuid) if uuid else None
                    if network is None or not network.wired or \
                            decisions[name].state == placement.INVALID:
                        continue
                    verdicts[name] = claims.verdict(
                        decisions[name].here, self._claims.get(uuid, ""), me.uuid,
                        lambda host, uuid=uuid: placement.unfit(pool, uuid, host))
        if self.problem != before and self._pool is not None:
            if self.problem:
                log.warning("pool placement not in force (%s): serving every gateway here",
                            self.problem)
            else:
                log.info("pool placement in force for host %s", self.this_host)
        self._cached = (key, (decisions, verdicts))
        return decisions, verdicts

    def links(self):
        """Links need no placement: a link joins two host-local networks (a network with a
        PIF is refused), so each host makes it where both bridges are."""
        return self.inner.links()

    def placement(self):
        """{gateway name: placement.Decision}; empty while placement is not in force."""
        return self._decisions()[0]

    def gateways(self):
        """The gateways served here: the same dict again while ``version`` is the same
        (callers must not change it)."""
        version = self.version
        if self._served[0] == version:
            return self._served[1]
        served = self._gateways()
        self._served = (version, served)
        return served

    def _gateways(self):
        gateways = self.inner.gateways()
        if self._frozen is not None:
            return {name: gw for name, gw in gateways.items() if name in self._frozen}
        decisions, verdicts = self._decisions()
        if not decisions and self._pool is None:  # no records yet: the cached claims
            cached = self._claims_of()
            return {name: gw for name, gw in gateways.items()
                    if _cached_claim_lets(cached.get(network_of(gw)), self.this_host,
                                          self.restarted)}
        return {name: gw for name, gw in gateways.items()
                if name not in decisions or (decisions[name].here and (
                    name not in verdicts or verdicts[name].serves))}

    def claim_writes(self):
        """[(gateway name, network uuid, Verdict)] of the claim writes wanted now (none in
        emergency mode)."""
        if self._frozen is not None:
            return []
        decisions, verdicts = self._decisions()
        gateways = self.inner.gateways()
        return [(name, network_of(gateways[name]), v) for name, v in sorted(verdicts.items())
                if v.write is not None and name in gateways]

    def invalid(self):
        merged = dict(self.inner.invalid())
        gateways = self.inner.gateways()
        for name, decision in self._decisions()[0].items():
            if decision.state == placement.INVALID:
                gw = gateways[name]
                merged[name] = Invalid(gw.bridge, "%s: %s" % (name, decision.reason),
                                       network=network_of(gw))
        return merged

    def elsewhere(self):
        """{name: (Gateway, Decision)} of the gateways not served here: another host
        serves them, none does, or this host waits for the claim (then the Decision names
        the claim's holder and the claim's state)."""
        gateways = self.inner.gateways()
        served = self.gateways()
        decisions, verdicts = self._decisions()
        out = {}
        for name, d in decisions.items():
            if name in served or d.state == placement.INVALID:
                continue
            verdict = verdicts.get(name)
            if d.here and self._frozen is not None:
                d = placement.Decision(placement.UNSERVED, None, d.reason + "; emergency "
                                       "mode: not served when XAPI went, nothing taken over")
            elif d.here and verdict is not None:
                holder = claims.parse(self._claims.get(network_of(gateways[name]), ""))
                host = self._pool.host(holder.holder) if holder else None
                d = placement.Decision(placement.ELSEWHERE if host else placement.UNSERVED,
                                       host, "%s; %s" % (d.reason, verdict.reason))
            out[name] = (gateways[name], d)
        return out


def _cached_claim_lets(raw, me, restarted):
    """Whether a gateway whose network's cached claim is ``raw`` is served before XAPI's
    records arrive: no claim (not a spanning network, as far as is known), or this
    host's own after a restart of the daemon alone."""
    if not raw:
        return True
    claim = claims.parse(raw)
    return claim is not None and claim.holder == me and restarted
