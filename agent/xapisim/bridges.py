"""The Dom0 side of the simulator: the bridges XAPI creates lazily, on the host's backend.

XAPI creates the bridge of a private network when a VM with a VIF on it starts (or the
network is attached), and deletes it when the last such VM stops. The simulator keeps the
same record (``created``: the bridge names) and, with a real backend, does the same for
real in the network namespace it runs in (run it with ``ip netns exec NS``): that is what
lets a test or demo run the whole chain, remote call -> XAPI -> bridge appears ->
udev/netlink -> gateway.

One interface, ``Bridges``, three implementations, chosen per run as Dom0's
/etc/xensource/network.conf chooses:
- ``Bridges``: records only (no root needed; unit tests);
- ``LinuxBridges``: a Linux bridge per network, through netlink;
- ``OvsBridges``: an Open vSwitch bridge per network (userspace datapath here), with the
  external_ids xcp-networkd sets (``xs-network-uuids`` on the Bridge), and a port per
  live VIF whose Interface carries ``xs-vif-uuid``, ``xs-vm-uuid``, ``xs-network-uuid``
  and ``attached-mac``, as on a Dom0 (an internal port here: there is no real domain
  whose backend device could be plugged).
"""
import errno
import itertools
import logging
from collections import namedtuple

log = logging.getLogger(__name__)

BACKENDS = ("openvswitch", "bridge")  # Dom0's names (network.conf); the first is XAPI's default

# what the backend needs of a network whose bridge should exist, and of its live VIFs;
# a VLAN network's bridge has a ``parent`` bridge and a ``tag`` (None otherwise)
BridgeSpec = namedtuple("BridgeSpec", "network_uuid vifs parent tag")
BridgeSpec.__new__.__defaults__ = (None, None)
VifSpec = namedtuple("VifSpec", "vif_uuid vm_uuid network_uuid mac domid device")


def spec(engine, network_ref, vif_refs, parent=None, tag=None):
    """The BridgeSpec of network ``network_ref`` with live VIFs ``vif_refs`` (a VLAN
    network's: on bridge ``parent`` with ``tag``)."""
    net = engine.objects["network"][network_ref]
    vifs = []
    for ref in vif_refs:
        vif = engine.objects["VIF"][ref]
        vm = engine.objects["VM"][vif["VM"]]
        vifs.append(VifSpec(vif["uuid"], vm["uuid"], net["uuid"], vif["MAC"],
                            int(vm.get("domid") or 0), str(vif["device"])))
    return BridgeSpec(net["uuid"], tuple(vifs), parent, tag)


class Bridges(object):
    """Keeps ``created`` (bridge names) and ``ports`` (VIF uuid -> (bridge, port name))
    as XAPI would have them; subclasses make them real through the hooks."""

    backend = None
    # the host's own bridges of physical PIFs (a pool host's xenbr0): VLAN bridges are
    # made on these only (fake bridges on Open vSwitch)
    uplinks = frozenset()

    def __init__(self):
        self.created = set()
        self.ports = {}
        self._domids = {}               # VM uuid -> stand-in domid when the record has none
        self._next_domid = itertools.count(1)

    def sync(self, wanted):
        """Make what the simulator created exactly ``wanted`` ({bridge: BridgeSpec}):
        VIF ports go before their bridge, bridges come before their ports."""
        vifs = {}
        for bridge, bspec in wanted.items():
            for vif in bspec.vifs:
                vifs[vif.vif_uuid] = (bridge, vif)
        for uuid, (bridge, port) in sorted(self.ports.items()):
            # a VIF leaves its port when it goes, moves, or its VM's new domain (a
            # reboot: a new domid) names its backend device anew
            if uuid not in vifs or vifs[uuid][0] != bridge or \
                    self.port_name(vifs[uuid][1]) != port:
                del self.ports[uuid]
                self.remove_port(bridge, port)
        for name in sorted(self.created - set(wanted)):
            self.created.discard(name)
            self.remove_bridge(name)
        for name in sorted(set(wanted) - self.created):
            self.created.add(name)
            self.add_bridge(name, wanted[name])
        for uuid, (bridge, vif) in sorted(vifs.items()):
            if uuid not in self.ports:
                port = self.port_name(vif)
                self.ports[uuid] = (bridge, port)
                self.add_port(bridge, port, vif)

    def port_name(self, vif):
        """``vif<domid>.<device>`` as Dom0 names a VIF's backend device (a stand-in domid
        per VM when its record has none)."""
        domid = vif.domid if vif.domid > 0 else self._domids.setdefault(
            vif.vm_uuid, next(self._next_domid))
        return "vif%d.%s" % (domid, vif.device)

    def describe(self):
        return "%s bridges" % self.backend

    def close(self):
        """Remove what the simulator made (it is stopping)."""
        self.sync({})

    # hooks: the record-only backend makes nothing
    def add_bridge(self, name, bspec):
        pass

    def remove_bridge(self, name):
        pass

    def add_port(self, bridge, port, vif):
        pass

    def remove_port(self, bridge, port):
        pass


class LinuxBridges(Bridges):
    """Linux bridges through netlink (VIFs get no device on this backend), in network
    namespace ``netns`` (None: the one this process runs in). A VLAN network's bridge
    is not made for real: kernel VLAN devices are unavailable where this runs (no 8021q),
    so it stays a record."""

    backend = "bridge"

    def __init__(self, netns=None):
        super(LinuxBridges, self).__init__()
        self.netns = netns
        self._ipr = None

    def _ip(self):
        if self._ipr is None:
            from pyroute2 import IPRoute
            self._ipr = IPRoute()
        return self._ipr

    def _ip_in_netns(self, *args):
        """``ip -n NETNS ARGS``: whether it succeeded (a pool host's namespace)."""
        import subprocess
        return subprocess.run(["ip", "-n", self.netns] + list(args), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    def add_bridge(self, name, bspec):
        from pyroute2.netlink.exceptions import NetlinkError
        if bspec.tag is not None:
            return
        if self.netns:
            self._ip_in_netns("link", "add", name, "type", "bridge")
            if not self._ip_in_netns("link", "set", name, "up"):
                raise OSError("cannot make bridge %s in %s" % (name, self.netns))
            log.info("bridge %s up in %s", name, self.netns)
            return
        ipr = self._ip()
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
        index = ipr.link_lookup(ifname=name)[0]
        ipr.link("set", index=index, state="up")
        log.info("bridge %s up", name)

    def remove_bridge(self, name):
        from pyroute2.netlink.exceptions import NetlinkError
        if self.netns:
            self._ip_in_netns("link", "del", name)
            return
        ipr = self._ip()
        found = ipr.link_lookup(ifname=name)
        if found:
            try:
                ipr.link("del", index=found[0])
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise
        log.info("bridge %s removed", name)

    def close(self):
        try:
            super(LinuxBridges, self).close()
        finally:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None


class OvsBridges(Bridges):
    """Open vSwitch bridges and VIF ports, as xcp-networkd makes them. ``ovsdb``: the
    remote of a running OVS (``unix:PATH``); without it, a private ovsdb-server and
    ovs-vswitchd are started in this namespace and stopped by ``close``."""

    backend = "openvswitch"

    def __init__(self, ovsdb=None, netns=None):
        super(OvsBridges, self).__init__()
        from agent.xapisim import ovs
        self.ovs = ovs.Ovs(ovsdb, netns) if ovsdb else ovs.Ovs.start(netns)

    def describe(self):
        return "openvswitch bridges, %s OVSDB %s" % (
            "private" if self.ovs.directory else "running", self.ovs.remote)

    def add_bridge(self, name, bspec):
        ids = {"xs-network-uuids": bspec.network_uuid}
        if bspec.tag is not None:  # a VLAN: a fake bridge on its parent, as networkd
            self.ovs.add_fake_bridge(name, bspec.parent, bspec.tag, ids)
        else:
            self.ovs.add_bridge(name, ids)
        log.info("OVS bridge %s up", name)

    def remove_bridge(self, name):
        self.ovs.del_bridge(name)
        log.info("OVS bridge %s removed", name)

    def add_port(self, bridge, port, vif):
        self.ovs.add_port(bridge, port, {"xs-vif-uuid": vif.vif_uuid, "xs-vm-uuid": vif.vm_uuid,
                                         "xs-network-uuid": vif.network_uuid,
                                         "attached-mac": vif.mac}, internal=True)

    def remove_port(self, bridge, port):
        self.ovs.del_port(bridge, port)

    def close(self):
        try:
            super(OvsBridges, self).close()
        finally:
            self.ovs.stop()  # only stops daemons it started


def make(backend, real, ovsdb=None, netns=None):
    """The Bridges of a run (or of one host of a pool, in namespace ``netns``):
    record-only unless ``real``; else ``backend``'s."""
    if backend not in BACKENDS:
        raise ValueError("network backend %r is not one of: %s" % (backend, ", ".join(BACKENDS)))
    if not real:
        return Bridges()
    return OvsBridges(ovsdb, netns) if backend == "openvswitch" else LinuxBridges(netns)
