"""Sources of desired gateways, behind one interface: ``gateways() -> {name: Gateway}``.

The configuration file is the first source; XAPI (networks' other_config) joins it later
through the same interface, and ``Merged`` puts several together, refusing a name that two
sources both define.
"""


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
