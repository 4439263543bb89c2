"""The Dom0 side of the simulator: the bridges XAPI creates lazily.

XAPI creates the bridge of a private network when a VM with a VIF on it starts (or the
network is attached), and deletes it when the last such VM stops. With ``Bridges`` on,
the simulator does the same for real, through netlink, in the network namespace it runs
in (run it with ``ip netns exec NS``): that is what lets a test or demo run the whole
chain, remote call -> XAPI -> bridge appears -> udev/netlink -> gateway.
"""
import errno
import logging

log = logging.getLogger(__name__)


class Bridges(object):
    def __init__(self, enabled=False):
        self.enabled = enabled
        self.created = set()
        self._ipr = None

    def sync(self, wanted):
        """Make the bridges the simulator created exactly ``wanted`` (a set of names)."""
        for name in sorted(wanted - self.created):
            self._add(name)
        for name in sorted(self.created - wanted):
            self._remove(name)

    def _ip(self):
        if self._ipr is None:
            from pyroute2 import IPRoute
            self._ipr = IPRoute()
        return self._ipr

    def _add(self, name):
        self.created.add(name)
        if not self.enabled:
            return
        from pyroute2.netlink.exceptions import NetlinkError
        ipr = self._ip()
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
        index = ipr.link_lookup(ifname=name)[0]
        ipr.link("set", index=index, state="up")
        log.info("bridge %s up", name)

    def _remove(self, name):
        self.created.discard(name)
        if not self.enabled:
            return
        from pyroute2.netlink.exceptions import NetlinkError
        ipr = self._ip()
        found = ipr.link_lookup(ifname=name)
        if found:
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise
        log.info("bridge %s removed", name)
