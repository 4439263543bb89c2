"""Sources of desired gateways, behind one interface: ``gateways() -> {name: Gateway}``.

The configuration file is the first source; XAPI (networks' other_config) joins it later
through the same interface, and ``Merged`` puts several together, refusing a name that two
sources both define. ``invalid() -> {name: desired.Invalid}`` reports what is not applied,
with the XAPI network uuid where there is one (the journal's NETWORK=).
"""
import logging

from agent.core.desired import Invalid, network_of
from agent.errors import StateError

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


class XapiSource(object):
    """Gateways from the networks' other_config in XAPI (agent.core.desired).

    Updated by the XAPI watcher; until the first update (XAPI not reachable yet) it
    serves the last desired state cached on disk, so gateways keep being enforced
    across daemon restarts while XAPI is away."""

    def __init__(self, cache=None):
        from agent.core.desired import gateways_from_networks
        self._derive = gateways_from_networks
        self._cache = cache
        self._gateways, self._invalid = {}, {}
        self.version = 0
        self.connected = False
        self.reason = "not connected yet"
        if cache is not None:
            networks = cache.load()
            if networks:
                self._gateways, self._invalid = self._derive(networks)

    def update(self, networks):
        self._gateways, self._invalid = self._derive(networks)
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
