"""Spanning networks on a simulated pool of three hosts on real Open vSwitch: the star of
VXLAN ports (agent.core.tunnels) written by the daemon's OVSDB writer, real packets
through the tunnels over the underlay.

Each host is a namespace with its own OVS (userspace datapath), its management address on
xenbr0, the hosts joined by the simulator's underlay (agent.xapisim.pool, underlay). The
network is made through the service layer as the API makes it (network.create with MTU
1450 and a VNI, tunnel.create on every host, which makes its bridge on every host); then,
from the pool's records as XAPI holds them, each host's ports are computed and written
through agent.adapters.ovsdb, which is what every host's daemon does with them.
"""
import os

import pytest
import XenAPI

from agent.adapters import ovsdb
from agent.core import tunnels
from agent.service.networks import Networks
from agent.xapisim import datamodel as dm
from agent.xapisim import netns as hostns
from agent.xapisim import ovs, server
from agent.xapisim import pool as members
from agent.xapisim.engine import Engine
from tests.integration import netns as N

CLASSES = ("network", "PIF", "tunnel", "host", "host_metrics")


class Lab(object):
    """Three hosts in namespaces, XAPI (the simulator) served over HTTP, one OVSDB
    connection per host."""

    def __init__(self, prefix):
        self.engine = Engine(dm.Datamodel.load())
        self.sim = members.Pool(self.engine, hosts=3, real=True, prefix=prefix)
        self.servers = self.writers = None
        self.vms = []
        try:
            self.servers, (host, port) = server.serve(self.engine, host="127.0.0.1",
                                                      port=0)
            session = XenAPI.Session("http://%s:%d" % (host, port))
            session.xenapi.login_with_password("root", "", "1.0", "tunnels-test")
            self.x = session.xenapi
            self.writers = [ovsdb.Ovsdb(self.sim.ovsdb(n)).start() for n in (1, 2, 3)]
            for writer in self.writers:
                N.wait_for(lambda: writer.connected, timeout=20, message="OVSDB")
            self.uuids = [self.x.host.get_uuid(ref) for ref in self.sim.hosts]
        except BaseException:
            self.close()
            raise

    def shapes(self):
        records = {cls: getattr(self.x, cls).get_all_records() for cls in CLASSES}
        return tunnels.shapes(records)

    def sync(self):
        """Every host's daemon's work: its ports of the pool's shapes, written."""
        shapes = self.shapes()
        for n, writer in enumerate(self.writers):
            specs = [p.spec() for p in tunnels.ports_on(shapes, self.uuids[n])]
            results, _writes = writer.sync_ports(tunnels.KIND, specs)
            assert all(state == "applied" for state, _why in results.values()), results
        return shapes

    def own_ports(self, n, bridge):
        """host n's (from 1) ports of ``bridge`` that the daemon owns, with their
        remote_ip."""
        switch = self.sim.bridges(n).ovs
        return sorted(switch.get("Interface", p, "options")
                      for p in switch.list_ports(bridge)
                      if switch.external_ids_of("Port", p).get("xapi-gateway-kind") == "tunnel")

    def vm(self, n, bridge, address):
        """A VM's NIC on host n's ``bridge``, MTU 1450 as the network's."""
        ns = N.Netns("vm%d" % n)
        self.vms.append(ns)
        host = hostns.Netns(self.sim.namespace(n))
        # a port name of its own each time: a deleted namespace's veth goes asynchronously
        port = "vm%d-%d" % (n, len(self.vms))
        N.ovs_endpoint(self.sim.bridges(n).ovs, host, bridge, port, ns, address)
        ns.run(["ip", "link", "set", "eth0", "mtu", str(tunnels.MTU)])
        return ns

    def close(self):
        try:
            for writer in self.writers or ():
                writer.stop()
            if self.servers:
                server.shutdown(self.servers)
        finally:
            for ns in self.vms:
                ns.delete()
            self.sim.close()


@pytest.fixture
def lab():
    if not os.path.exists(os.path.join(dm.default_directory(), "datamodel.json")):
        pytest.skip("no XenAPI datamodel at %s" % dm.default_directory())
    reason = ovs.installed()
    if reason:
        pytest.skip(reason + " (tests/run installs it)")
    made = Lab("xgwt-%d-%s" % (os.getpid(), os.urandom(2).hex()))
    yield made
    made.close()


def counts(shape, lab):
    return [len(shape.ports.get(uuid, ())) for uuid in lab.uuids]


def test_vms_on_three_hosts_talk_through_the_star_which_follows_the_pool(lab):
    rec = Networks(lab.x).create("lab", span="pool")
    bridge = rec["bridge"]
    for n in (1, 2, 3):
        ns = hostns.Netns(lab.sim.namespace(n))
        N.wait_for(lambda: "%s:" % bridge in ns.run(["ip", "-o", "link"]).stdout,
                   message="bridge %s on host %d" % (bridge, n))
    vms = [lab.vm(n, bridge, "192.168.70.%d/24" % n) for n in (1, 2, 3)]
    assert not N.pings(vms[2], "192.168.70.1")       # no tunnel ports yet: apart

    shape = lab.sync()[rec["uuid"]]
    center = lab.uuids.index(shape.center.uuid)       # the lowest uuid: any of the three
    assert sorted(counts(shape, lab)) == [1, 1, 2] and counts(shape, lab)[center] == 2
    hub_address = lab.sim.underlay.address(center + 1)
    for n in (1, 2, 3):
        options = lab.own_ports(n, bridge)
        if n - 1 == center:
            assert len(options) == 2
        else:
            assert options == ['{key="1", remote_ip="%s"}' % hub_address]
    # a VM on host 3 reaches a VM on host 1, and spoke to spoke goes through the hub
    assert N.pings(vms[2], "192.168.70.1", count=3)
    assert N.pings(vms[0], "192.168.70.2") and N.pings(vms[1], "192.168.70.3")
    # the whole 1450-byte MTU crosses, unfragmented (DF), VXLAN's 50 bytes on a 1500 wire
    assert vms[2].run(["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1422",
                       "192.168.70.1"], check=False).returncode == 0

    # a spoke leaves (its tunnel destroyed): the hub keeps one port, the rest still talk
    spoke = next(n for n in range(3) if n != center)
    other = 3 - center - spoke
    tunnel = next(t for t, r in lab.x.tunnel.get_all_records().items()
                  if lab.x.PIF.get_host(r["access_PIF"]) == lab.sim.hosts[spoke])
    lab.x.tunnel.destroy(tunnel)
    shape = lab.sync()[rec["uuid"]]
    assert counts(shape, lab)[center] == 1 and counts(shape, lab)[spoke] == 0
    assert "no tunnel of this network" in dict(shape.problems)[lab.uuids[spoke]]
    assert len(lab.own_ports(center + 1, bridge)) == 1
    assert N.pings(vms[other], "192.168.70.%d" % (center + 1), count=2)

    # it joins again: two ports on the hub again
    transport = next(p for p, r in lab.x.PIF.get_all_records().items()
                     if r["host"] == lab.sim.hosts[spoke] and r["management"])
    lab.x.tunnel.create(transport, lab.x.network.get_by_uuid(rec["uuid"]), "vxlan")
    vms[spoke].delete()      # its bridge was made anew: plug the VM again
    vms[spoke] = lab.vm(spoke + 1, bridge, "192.168.70.%d/24" % (spoke + 1))
    shape = lab.sync()[rec["uuid"]]
    assert sorted(counts(shape, lab)) == [1, 1, 2]
    assert N.pings(vms[spoke], "192.168.70.%d" % (other + 1), count=3)

    # failover: the center is disabled; the next lowest uuid becomes the hub, the old one
    # a spoke, and the VMs on the other two hosts still talk
    lab.x.host.disable(lab.sim.hosts[center])
    shape = lab.sync()[rec["uuid"]]
    new_center = lab.uuids.index(shape.center.uuid)
    assert new_center != center and counts(shape, lab)[new_center] == 2
    assert len(lab.own_ports(new_center + 1, bridge)) == 2
    assert len(lab.own_ports(center + 1, bridge)) == 1
    last = 3 - center - new_center
    assert N.pings(vms[last], "192.168.70.%d" % (center + 1), count=3)
    assert N.pings(vms[center], "192.168.70.%d" % (new_center + 1), count=2)
