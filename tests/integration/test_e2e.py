"""The whole chain: remote calls -> XAPI -> the bridge appears -> the gateway is applied.

The simulator runs inside the "Dom0" namespace (``--bridges``: it creates and removes the
private networks' bridges there, as XAPI does); the daemon runs there too and follows
XAPI over the Unix socket; the test drives XAPI with the real SDK through the service
layer, like a remote controller."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import XenAPI

from agent.service.networks import Networks
from agent.service.vms import Vms
from agent.xapisim import datamodel as dm
from agent.xapisim import ovs
from tests.integration import netns as N


def sdk(path):
    session = XenAPI.Session("http://%s/" % path.replace("/", "_"),
                             transport=XenAPI.UDSTransport())
    session.xenapi.login_with_password("root", "", "1.0", "controller")
    return session.xenapi


@pytest.mark.parametrize("backend", N.BACKENDS)
def test_network_and_vm_through_xapi_become_a_working_gateway(workdir, daemons, backend):
    if not os.path.exists(os.path.join(dm.default_directory(), "datamodel.json")):
        pytest.skip("no XenAPI datamodel at %s" % dm.default_directory())
    if backend == N.OPENVSWITCH and ovs.installed():
        pytest.skip(ovs.installed())
    topo = N.Topology(bridge="xapi0", backend=backend)
    sockdir = "/tmp/xgwsim-%d-e2e" % os.getpid()
    os.makedirs(sockdir)
    path = os.path.join(sockdir, "xapi")
    # the simulator makes the bridges on the topology's backend: Linux bridges, or in the
    # topology's own Open vSwitch
    network = (["--network-backend", "bridge"] if topo.ovs is None else
               ["--network-backend", "openvswitch", "--ovsdb", topo.ovs.remote])
    sim = topo.dom0.popen([sys.executable, "-m", "agent.xapisim", "--unix", path,
                           "--bridges"] + network,
                          stdout=subprocess.PIPE, universal_newlines=True,
                          env=dict(os.environ, PYTHONPATH=N.REPO))
    try:
        assert sim.stdout.readline().startswith("xapisim: serving")
        daemon = daemons(topo.dom0, workdir, {}, xapi_url="unix:" + path)
        x = sdk(path)
        net = Networks(x).create("private", gateway={"address": N.Topology.PRIVATE})
        assert net["bridge"] == "xapi0"
        vms = Vms(x)
        vms.create("Controller", memory_mib=4096, vcpus=2, nics=["private"],
                   disks=[{"size_gib": 50}], boot="ncd", himn=True)
        assert not topo.dom0.link_exists("xapi0")  # lazily: no VM runs on it yet

        assert vms.start("Controller")["power_state"] == "Running"
        N.wait_for(lambda: topo.dom0.link_exists("xapi0"), message="the bridge")
        N.wait_for(lambda: (daemon.gateway_state("private") or {}).get("state") == "applied",
                   message="the gateway applied")
        if topo.ovs is not None:
            # as xcp-networkd: the bridge and the VIF's port, marked with XAPI's uuids
            net_uuid = x.network.get_uuid(x.network.get_by_name_label("private")[0])
            vm = x.VM.get_by_name_label("Controller")[0]
            vif = [v for v in x.VM.get_VIFs(vm)
                   if x.network.get_name_label(x.VIF.get_network(v)) == "private"][0]
            assert topo.ovs.external_ids_of("Bridge", "xapi0") == {
                "xs-network-uuids": net_uuid}
            [port] = topo.ovs.list_ports("xapi0")
            assert topo.ovs.external_ids_of("Interface", port) == {
                "xs-vif-uuid": x.VIF.get_uuid(vif), "xs-vm-uuid": x.VM.get_uuid(vm),
                "xs-network-uuid": net_uuid, "attached-mac": x.VIF.get_MAC(vif)}
            topo.plug_vm(port="tap1.0")  # the guest's emulated NIC, on the same bridge
        else:
            topo.plug_vm()
        assert topo.vm.run(["ping", "-c", "1", "-W", "2", topo.OUTSIDE]).returncode == 0
        # the daemon's own API (its Unix socket) says so too, and sees the VM through XAPI
        out = topo.dom0.run([sys.executable, "-m", "agent.cli", "-c", daemon.config_path,
                             "gateways", "--json"], check=False)
        assert out.returncode == 0, out.stderr
        assert [g["state"] for g in json.loads(out.stdout) if g["name"] == "private"] == [
            "applied"]
        out = topo.dom0.run([sys.executable, "-m", "agent.cli", "-c", daemon.config_path,
                             "networks", "--json", "show", "private"], check=False)
        assert json.loads(out.stdout)["vms"] == ["Controller"], out.stderr

        vms.shutdown("Controller")  # the last VM stops: XAPI removes the bridge
        N.wait_for(lambda: not topo.dom0.link_exists("xapi0"), message="bridge removed")
        if topo.ovs is not None:
            assert topo.ovs.list_bridges() == []
        N.wait_for(lambda: daemon.gateway_state("private")["state"] == "absent",
                   message="gateway absent")
        assert not any("xgw:" in l for t in ("nat", "filter") for l in topo.dom0.rules(t))
        assert len(vms.destroy("Controller")["disks_destroyed"]) == 1
        assert x.VM.get_by_name_label("Controller") == []
    finally:
        try:
            N.stop(sim)
        finally:
            topo.close()
            shutil.rmtree(sockdir, ignore_errors=True)
