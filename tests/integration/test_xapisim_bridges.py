"""The simulator's Dom0 side on Open vSwitch: XAPI's lazy bridges and VIF ports, made in
a real OVS (userspace datapath) with the external_ids xcp-networkd sets, and nothing of
it left behind when the simulator stops."""
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import XenAPI

from agent.xapisim import ovs
from tests.integration import netns as N


@pytest.fixture
def host():
    reason = ovs.installed()
    if reason:
        pytest.skip(reason + " (tests/run installs it)")
    ns = N.Netns("simovs")
    sockdir = "/tmp/xgwsim-%d-ovs" % os.getpid()
    os.makedirs(sockdir)
    yield ns, os.path.join(sockdir, "xapi")
    ns.delete()
    shutil.rmtree(sockdir, ignore_errors=True)


def start_sim(ns, path, *extra):
    sim = ns.popen([sys.executable, "-m", "agent.xapisim", "--unix", path, "--bridges"]
                   + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   universal_newlines=True, env=dict(os.environ, PYTHONPATH=N.REPO))
    line = sim.stdout.readline()
    assert line.startswith("xapisim: serving"), sim.communicate()
    return sim, line


def sdk(path):
    session = XenAPI.Session("http://%s/" % path.replace("/", "_"),
                             transport=XenAPI.UDSTransport())
    session.xenapi.login_with_password("root", "", "1.0", "test")
    return session.xenapi


def new_vm(x, name, net):
    template = x.VM.get_by_name_label("Other install media")[0]
    vm = x.VM.clone(template, name)
    x.VM.provision(vm)
    x.VM.set_is_a_template(vm, False)
    vif = x.VIF.create({"VM": vm, "network": net, "device": "0", "MAC": "",
                        "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
                        "qos_algorithm_params": {}})
    return vm, vif


def ovs_in(ns):
    """The live OVS daemons whose network namespace is ``ns`` (pidof would count every
    namespace's, and zombies not yet reaped)."""
    found = []
    for pid in ns.run(["ip", "netns", "pids", ns.name]).stdout.split():
        try:
            with open("/proc/%s/stat" % pid) as f:
                stat = f.read()
        except (IOError, OSError):
            continue  # gone meanwhile
        name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
        if name in ("ovsdb-server", "ovs-vswitchd") and state != "Z":
            found.append(int(pid))
    return found


def ids(o, table, row):
    return o.external_ids_of(table, row)


def test_lazy_bridges_and_vif_ports_in_a_private_ovs(host):
    ns, path = host
    sim, line = start_sim(ns, path)  # openvswitch is the default, as on Dom0
    try:
        remote = re.search(r"private OVSDB (unix:\S+)\)", line).group(1)
        o = ovs.Ovs(remote, ns.name)  # a client of the simulator's own OVS
        pids = ovs_in(ns)
        assert len(pids) == 2
        x = sdk(path)
        net = x.network.create({"name_label": "private", "other_config": {}})
        bridge, net_uuid = x.network.get_bridge(net), x.network.get_uuid(net)
        a, vif_a = new_vm(x, "a", net)
        b, vif_b = new_vm(x, "b", net)
        assert o.list_bridges() == []  # lazily: no VM runs on it yet
        x.VM.start(a, False, False)
        assert o.list_bridges() == [bridge]
        assert ids(o, "Bridge", bridge) == {"xs-network-uuids": net_uuid}
        assert o.get("Bridge", bridge, "datapath_type") == "netdev"
        flags = re.search(r"<(.*)>", ns.run(["ip", "-o", "link", "show", bridge]).stdout)
        assert "UP" in flags.group(1).split(",")  # set up, as networkd does
        [port_a] = o.list_ports(bridge)
        assert re.match(r"^vif\d+\.0$", port_a)
        assert ids(o, "Interface", port_a) == {
            "xs-vif-uuid": x.VIF.get_uuid(vif_a), "xs-vm-uuid": x.VM.get_uuid(a),
            "xs-network-uuid": net_uuid, "attached-mac": x.VIF.get_MAC(vif_a)}
        x.VM.start(b, False, False)
        ports = o.list_ports(bridge)
        assert len(ports) == 2 and port_a in ports
        [port_b] = set(ports) - {port_a}
        assert ids(o, "Interface", port_b)["xs-vm-uuid"] == x.VM.get_uuid(b)
        x.VM.hard_shutdown(a)  # its port goes, the bridge stays: b still runs on it
        assert o.list_ports(bridge) == [port_b]
        assert not o.device_exists(port_a)
        x.VM.hard_shutdown(b)  # the last VM stops: XAPI removes the bridge
        assert o.list_bridges() == []
        assert not o.device_exists(bridge)
        x.VM.start(b, False, False)  # a new domain: its VIF's device is named anew
        assert o.list_ports(bridge) == ["vif%s.0" % x.VM.get_domid(b)] != [port_b]
    finally:
        sim.send_signal(signal.SIGTERM)
        out, err = sim.communicate(timeout=15)
    # stopping takes its bridges and the private OVS with it
    assert sim.returncode == 0, err
    assert not any(ovs.alive(pid) for pid in pids)
    assert not os.path.exists(remote[len("unix:"):])
    left = ns.run(["ip", "-o", "link"]).stdout
    assert bridge not in left and "ovs-netdev" not in left and "vif" not in left


def test_pointed_at_a_running_ovs_it_removes_only_its_own(host):
    ns, path = host
    o = ovs.Ovs.start(ns.name)
    try:
        o.add_bridge("xenbr9", {"xs-network-uuids": "someone-else"})  # not the simulator's
        sim, line = start_sim(ns, path, "--network-backend", "openvswitch", "--ovsdb", o.remote)
        try:
            assert "running OVSDB %s" % o.remote in line
            x = sdk(path)
            net = x.network.create({"name_label": "private", "other_config": {}})
            vm, _vif = new_vm(x, "a", net)
            x.VM.start(vm, False, False)
            bridge = x.network.get_bridge(net)
            assert o.list_bridges() == sorted([bridge, "xenbr9"])
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.communicate(timeout=15)
        assert sim.returncode == 0
        assert o.list_bridges() == ["xenbr9"]  # its own bridge went, the other stayed
        assert ids(o, "Bridge", "xenbr9") == {"xs-network-uuids": "someone-else"}
        assert o.pids()  # and the OVS it did not start still runs
    finally:
        o.stop()


def test_a_bad_ovsdb_or_backend_is_refused(host):
    ns, path = host
    for extra, message in ((["--ovsdb", "tcp:1.2.3.4:6640"], "is not unix:/PATH"),
                           (["--network-backend", "vswitch"], "invalid choice")):
        proc = ns.run([sys.executable, "-m", "agent.xapisim", "--unix", path, "--bridges"]
                      + extra, check=False, env=dict(os.environ, PYTHONPATH=N.REPO))
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
