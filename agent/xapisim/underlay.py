"""The hosts of a simulated pool, for real: a network namespace per host, and the wire
between them (root).

Each host's Dom0 is a namespace ``<prefix>-h<n>``; its management PIF (eth0, on network
xenbr0) is a veth whose other end is a port of the underlay bridge ``ul0`` in namespace
``<prefix>-ul``, which stands for the physical network between the hosts (and for the
world outside: ``ul0`` has the address ``OUTSIDE``, the last of the subnet). As on a Dom0,
eth0 is a port of the bridge ``xenbr0`` and the host's management address sits on
``xenbr0``: an Open vSwitch bridge (userspace datapath) on that backend, which is also what
lets OVS tunnels between the hosts route, or a Linux bridge on the bridge backend.

Powering a host off takes it off the wire (eth0 down) and its bridges away; powering it
on puts it back. ``close`` deletes every namespace made here, and with them what runs
inside; nothing outside them is touched.
"""
import ipaddress
import subprocess

from agent.xapisim import netns as hostns

UNDERLAY_BRIDGE = "ul0"
MANAGEMENT_BRIDGE = "xenbr0"  # the bridge of eth0's network, as xapi names it
MANAGEMENT_DEVICE = "eth0"
DEFAULT_SUBNET = "10.99.0.0/24"


class Underlay(object):
    """``hosts`` namespaces on one wire. ``address(n)``: host n's management address
    (n from 1), ``namespace(n)``: its namespace; ``outside``: the underlay's own
    address; ``netmask``: the subnet's."""

    def __init__(self, prefix, hosts, subnet=DEFAULT_SUBNET):
        self.prefix = prefix
        self.subnet = ipaddress.ip_network(subnet)
        if hosts + 2 > self.subnet.num_addresses - 1:
            raise ValueError("subnet %s is too small for %d hosts" % (subnet, hosts))
        self.count = hosts
        self.namespaces = []
        self.outside = str(self.subnet.broadcast_address - 1)
        self.netmask = str(self.subnet.netmask)
        self.wire = hostns.Netns("%s-ul" % prefix)
        try:
            self.wire.create()
            self.namespaces.append(self.wire)
            self.wire.run(["ip", "link", "add", UNDERLAY_BRIDGE, "type", "bridge"])
            self.wire.run(["ip", "addr", "add", "%s/%d" % (self.outside, self.subnet.prefixlen),
                           "dev", UNDERLAY_BRIDGE])
            self.wire.run(["ip", "link", "set", UNDERLAY_BRIDGE, "up"])
            for n in range(1, hosts + 1):
                ns = hostns.Netns(self.namespace(n))
                ns.create()
                self.namespaces.append(ns)
                port = self.port(n)
                self.wire.run(["ip", "link", "add", port, "type", "veth", "peer", "name",
                               MANAGEMENT_DEVICE, "netns", ns.name])
                self.wire.run(["ip", "link", "set", port, "master", UNDERLAY_BRIDGE])
                self.wire.run(["ip", "link", "set", port, "up"])
        except BaseException:
            self.close()
            raise

    def namespace(self, n):
        return "%s-h%d" % (self.prefix, n)

    def port(self, n):
        """Host n's end of the wire, in the underlay namespace."""
        return "h%d" % n

    def address(self, n):
        return str(self.subnet.network_address + n)

    def cidr(self, n):
        return "%s/%d" % (self.address(n), self.subnet.prefixlen)

    def plug(self, n, ovs=None):
        """Host n's management interface: eth0 in bridge xenbr0 (of ``ovs``, an
        agent.xapisim.ovs.Ovs in that namespace, or a Linux bridge), the address on
        xenbr0, all up."""
        ns = self.namespace(n)
        if ovs is not None:
            ovs.add_bridge(MANAGEMENT_BRIDGE)
            ovs.add_port(MANAGEMENT_BRIDGE, MANAGEMENT_DEVICE)
        else:
            _ip(ns, "link", "add", MANAGEMENT_BRIDGE, "type", "bridge")
            _ip(ns, "link", "set", MANAGEMENT_DEVICE, "master", MANAGEMENT_BRIDGE)
        _ip(ns, "addr", "add", self.cidr(n), "dev", MANAGEMENT_BRIDGE)
        _ip(ns, "link", "set", MANAGEMENT_BRIDGE, "up")
        self.set_link(n, True)

    def set_link(self, n, up):
        """Host n on the wire (its eth0 and the underlay's port up) or off it."""
        state = "up" if up else "down"
        _ip(self.namespace(n), "link", "set", MANAGEMENT_DEVICE, state)
        self.wire.run(["ip", "link", "set", self.port(n), state])

    def close(self):
        for ns in reversed(self.namespaces):
            ns.delete()
        self.namespaces = []


def _ip(ns, *args):
    proc = subprocess.run(["ip", "-n", ns] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if proc.returncode != 0:
        raise OSError("ip -n %s %s failed: %s" % (ns, " ".join(args), proc.stderr.strip()))
    return proc.stdout
