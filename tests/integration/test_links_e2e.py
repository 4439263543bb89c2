"""VLAN links end to end, on real Open vSwitch (userspace datapath) in namespaces.

The simulator runs in a "Dom0" namespace with an OVS of the test's own, making each
network's bridge lazily when a VM on it starts (as XAPI and xcp-networkd do); the daemon
runs there too and follows XAPI. A network is declared a VLAN of another the way ``xe``
would: ``xapi-gateway.link=<parent uuid>:<tag>`` in its other_config. What a user sees is
asserted: packets (a VM on br100 reaches a tag-102 port of 'private', not a tag-103 one),
the ports in OVSDB, and the link's state in the daemon's status.
"""
import os
import shutil
import subprocess
import sys
import time

import pytest
import XenAPI

from agent.core import ports
from agent.service.networks import Networks
from agent.service.vms import Vms
from agent.xapisim import datamodel as dm
from agent.xapisim import ovs
from tests.integration import netns as N

LINK_KEY = "xapi-gateway.link"


def sdk(path):
    session = XenAPI.Session("http://%s/" % path.replace("/", "_"),
                             transport=XenAPI.UDSTransport())
    session.xenapi.login_with_password("root", "", "1.0", "links-e2e")
    return session.xenapi


class Lab(object):
    """Dom0 with its OVS, the simulator and the daemon; networks 'private' and 'br100'
    (declared VLAN 102 of 'private'), a VM on each, started: both bridges exist."""

    def __init__(self, workdir, daemons):
        self.dom0 = N.Netns("dom0")
        self.others = []
        self.sim = None
        self.switch = ovs.Ovs.start(self.dom0.name)
        # no '_' in the socket's path: the SDK's Unix-socket URLs cannot carry one
        sockdir = "/tmp/xgwsim-%d-links-%s" % (os.getpid(), self.dom0.name.split("-")[2])
        os.makedirs(sockdir)
        self.sockdir = sockdir
        self.path = os.path.join(sockdir, "xapi")
        self.sim = self.dom0.popen(
            [sys.executable, "-m", "agent.xapisim", "--unix", self.path, "--bridges",
             "--network-backend", "openvswitch", "--ovsdb", self.switch.remote],
            stdout=subprocess.PIPE, universal_newlines=True,
            env=dict(os.environ, PYTHONPATH=N.REPO))
        assert self.sim.stdout.readline().startswith("xapisim: serving")
        conf = os.path.join(workdir, "network.conf")
        with open(conf, "w") as f:
            f.write("openvswitch\n")
        # a long periodic check: what repairs within seconds here is the OVSDB event
        self.daemon = daemons(self.dom0, workdir, {}, xapi_url="unix:" + self.path,
                              agent_opts={"ovsdb": self.switch.remote, "network_conf": conf,
                                          "check_interval": "300"})
        self.x = x = sdk(self.path)
        nets = Networks(x)
        self.private = nets.create("private")
        self.br100 = nets.create("br100")
        self.parent_uuid, self.child_uuid = self.private["uuid"], self.br100["uuid"]
        self.child_port, self.parent_port = ports.link_port_names(self.child_uuid)
        vms = Vms(x)
        vms.create("web", nics=["br100"])
        vms.create("db", nics=["private"])
        vms.start("web")
        vms.start("db")
        self.vms = vms
        self.child_bridge = self.br100["bridge"]
        self.parent_bridge = self.private["bridge"]
        for bridge in (self.child_bridge, self.parent_bridge):
            N.wait_for(lambda: self.dom0.link_exists(bridge), message="bridge %s" % bridge)

    def declare(self, value):
        ref = self.x.network.get_by_name_label("br100")[0]
        self.x.network.remove_from_other_config(ref, LINK_KEY)
        if value is not None:
            self.x.network.add_to_other_config(ref, LINK_KEY, value)

    def link(self):
        for entry in (self.daemon.status() or {}).get("links", []):
            if entry["network"] == self.child_uuid:
                return entry
        return None

    def state(self):
        entry = self.link()
        return entry and entry["state"]

    def own_ports(self, bridge):
        return [p for p in self.switch.list_ports(bridge) if p.startswith("xgw")]

    def endpoint(self, role, bridge, port, address, tag=None):
        ns = N.Netns(role)
        self.others.append(ns)
        N.ovs_endpoint(self.switch, self.dom0, bridge, port, ns, address, tag)
        return ns

    def close(self):
        try:
            N.stop(self.sim)
        finally:
            self.switch.stop()
            for ns in self.others + [self.dom0]:
                ns.delete()
            shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture
def lab(workdir, daemons):
    if not os.path.exists(os.path.join(dm.default_directory(), "datamodel.json")):
        pytest.skip("no XenAPI datamodel at %s" % dm.default_directory())
    reason = ovs.installed()
    if reason:
        pytest.skip(reason + " (tests/run installs it)")
    made = Lab(workdir, daemons)
    yield made
    made.daemon.stop()
    made.close()


def test_a_link_carries_only_its_tag_and_is_repaired_and_dropped(lab):
    vm = lab.endpoint("web", lab.child_bridge, "tap1.0", "192.168.60.10/24")
    v102 = lab.endpoint("t102", lab.parent_bridge, "p102", "192.168.60.20/24", tag=102)
    v103 = lab.endpoint("t103", lab.parent_bridge, "p103", "192.168.60.30/24", tag=103)
    assert not N.pings(vm, "192.168.60.20")   # separate networks before the link

    lab.declare("%s:102" % lab.parent_uuid)
    N.wait_for(lambda: lab.state() == "applied", timeout=20, message="the link applied")
    entry = lab.link()
    assert (entry["parent"], entry["tag"], entry["reason"]) == (lab.parent_uuid, 102, None)
    assert lab.switch.get("Port", lab.parent_port, "tag") == "102"
    assert lab.switch.get("Port", lab.child_port, "tag") == "[]"
    assert N.pings(vm, "192.168.60.20", count=3)
    assert not N.pings(vm, "192.168.60.30")
    assert not N.pings(v103, "192.168.60.10")

    # someone deletes the parent's patch port: the OVSDB event brings it back at once
    # (the periodic check is 300 s away)
    lab.switch.vsctl("del-port", lab.parent_port)
    started = time.monotonic()
    N.wait_for(lambda: lab.parent_port in lab.switch.list_ports(lab.parent_bridge),
               timeout=10, interval=0.005, message="the patch port restored")
    restored = time.monotonic() - started
    assert restored < 5, restored
    assert lab.switch.get("Port", lab.parent_port, "tag") == "102"
    assert N.pings(vm, "192.168.60.20", count=2)

    # the link dropped from other_config: both ports go, the networks are apart again
    lab.declare(None)
    N.wait_for(lambda: lab.link() is None and not lab.own_ports(lab.parent_bridge)
               and not lab.own_ports(lab.child_bridge), timeout=20,
               message="the link removed")
    assert not N.pings(vm, "192.168.60.20")
    assert N.pings(v102, "192.168.60.20")  # (its own address: the namespace is fine)


def test_the_child_bridge_going_leaves_nothing_on_the_parent(lab):
    lab.declare("%s:102" % lab.parent_uuid)
    N.wait_for(lambda: lab.state() == "applied", timeout=20, message="the link applied")
    assert lab.own_ports(lab.parent_bridge) == [lab.parent_port]
    # the last VM on br100 stops: XAPI removes its bridge (and the child's port with it)
    lab.vms.shutdown("web", force=True)
    N.wait_for(lambda: not lab.dom0.link_exists(lab.child_bridge), message="br100's bridge")
    N.wait_for(lambda: lab.state() == "waiting", timeout=20, message="the link waiting")
    assert lab.link()["reason"] == "bridge %s does not exist on this host" % lab.child_bridge
    assert lab.own_ports(lab.parent_bridge) == []
    assert lab.child_bridge not in lab.switch.list_bridges()
    # the parent's bridge keeps only what XAPI put there
    assert all(not p.startswith("xgw") for p in lab.switch.list_ports(lab.parent_bridge))
    # and the link comes back with the bridge
    lab.vms.start("web")
    N.wait_for(lambda: lab.state() == "applied", timeout=20, message="the link again")
    assert lab.own_ports(lab.child_bridge) == [lab.child_port]
    # the clean-up (the RPM's uninstall runs it) takes the link's ports away too
    assert lab.daemon.stop() == 0
    out = lab.dom0.run([sys.executable, "-m", "agent.daemon.main", "-c",
                        lab.daemon.config_path, "--cleanup"]).stdout
    assert "OVS: removed link port %s from %s" % (lab.child_port, lab.child_bridge) in out
    assert lab.own_ports(lab.child_bridge) == lab.own_ports(lab.parent_bridge) == []
