"""The blog's lab end to end: `xgw apply examples/blog-lab.yaml` against the daemon's API,
which drives the XAPI simulator; the VMs start, XAPI's lazy bridges appear in the "Dom0"
namespace, the daemon makes 'private' a gateway, the Compute VM has its HIMN VIF, a "VM"
namespace plugged into the private bridge reaches the outside through NAT, and a client
outside reaches Horizon in that VM through the gateway's port forward."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from agent.xapisim import datamodel as dm
from tests.integration import netns as N

EXAMPLE = os.path.join(N.REPO, "examples", "blog-lab.yaml")
CONTROLLER = "172.16.0.3"   # the Horizon forward's target in the example


def xgw(topo, daemon, *argv):
    out = topo.dom0.run([sys.executable, "-m", "agent.cli", "-c", daemon.config_path] +
                        list(argv), check=False, timeout=120)
    assert out.returncode == 0, "xgw %s: %s%s" % (" ".join(argv), out.stdout, out.stderr)
    return out


def test_xgw_apply_of_the_blog_lab_gives_working_gateways_and_the_horizon_forward(
        workdir, daemons):
    if not os.path.exists(os.path.join(dm.default_directory(), "datamodel.json")):
        pytest.skip("no XenAPI datamodel at %s" % dm.default_directory())
    topo = N.Topology(bridge="unused")
    sockdir = "/tmp/xgwsim-%d-lab" % os.getpid()  # no '_': the SDK's socket URLs
    os.makedirs(sockdir)
    path = os.path.join(sockdir, "xapi")
    # Linux bridges: the subject here is the topology file; test_e2e covers both backends
    sim = topo.dom0.popen([sys.executable, "-m", "agent.xapisim", "--unix", path,
                           "--bridges", "--network-backend", "bridge"],
                          stdout=subprocess.PIPE, universal_newlines=True,
                          env=dict(os.environ, PYTHONPATH=N.REPO))
    server = None
    try:
        assert sim.stdout.readline().startswith("xapisim: serving")
        daemon = daemons(topo.dom0, workdir, {}, xapi_url="unix:" + path)
        out = xgw(topo, daemon, "apply", EXAMPLE)
        assert "topology blog-lab applied" in out.stderr
        assert json.loads(xgw(topo, daemon, "apply", "--json", EXAMPLE).stdout)[
            "changed"] == 0  # the second apply changes nothing
        for vm in ("Controller", "Compute"):  # the example leaves them for after Fuel
            xgw(topo, daemon, "vms", "start", vm)
        private = json.loads(xgw(topo, daemon, "networks", "--json", "show",
                                 "private").stdout)
        bridge = private["bridge"]
        N.wait_for(lambda: topo.dom0.link_exists(bridge), message="the private bridge")
        N.wait_for(lambda: (daemon.gateway_state("private") or {}).get("state") ==
                   "applied", message="the private gateway applied")
        gateways = json.loads(xgw(topo, daemon, "gateways", "--json").stdout)
        assert [g["state"] for g in gateways if g["name"] == "private"] == ["applied"]
        compute = json.loads(xgw(topo, daemon, "vms", "--json", "show", "Compute").stdout)
        assert [n["device"] for n in compute["nics"] if n["himn"]] == [9]

        # the Controller's NIC on 'private', as a namespace in the bridge XAPI made
        topo.dom0.bridge_veth(bridge, "vif9.1", topo.vm, "eth0")
        topo.vm.run(["ip", "addr", "add", CONTROLLER + "/24", "dev", "eth0"])
        topo.vm.run(["ip", "route", "add", "default", "via", "172.16.0.1"])
        assert topo.vm.run(["ping", "-c", "1", "-W", "2", topo.OUTSIDE]).returncode == 0

        # Horizon in the Controller, published on the host's port 8080
        www = os.path.join(sockdir, "www")
        os.makedirs(www)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("horizon dashboard\n")
        server = topo.vm.popen([sys.executable, "-m", "http.server", "80", "--bind",
                                CONTROLLER], cwd=www, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        fetch = ("import urllib.request;print(urllib.request.urlopen("
                 "'http://%s:8080/', timeout=3).read().decode())"
                 % topo.DOM0_UPLINK.split("/")[0])
        N.wait_for(lambda: "horizon" in topo.outside.run([sys.executable, "-c", fetch],
                                                         check=False).stdout,
                   message="Horizon through the forward")

        xgw(topo, daemon, "destroy", EXAMPLE)
        N.wait_for(lambda: not topo.dom0.link_exists(bridge), message="bridge removed")
        assert json.loads(xgw(topo, daemon, "vms", "--json", "list").stdout) == []
    finally:
        try:
            N.stop(server)
            N.stop(sim)
        finally:
            topo.close()
            shutil.rmtree(sockdir, ignore_errors=True)
