"""Desired state in XAPI: the daemon follows networks' other_config through event.from,
reports bad values, and keeps enforcing while XAPI restarts."""
import itertools
import json
import os
import shutil
import sys

import pytest
import XenAPI

from agent.xapisim import datamodel as dm
from agent.xapisim import server
from agent.xapisim.engine import Engine
from agent.xapisim.seed import seed
from tests.integration import netns as N

_n = itertools.count()


@pytest.fixture
def xapi():
    """The simulator on a Unix socket; network namespaces share the filesystem, so the
    daemon in its namespace reaches it as Dom0's daemon reaches /var/lib/xcp/xapi."""
    if not os.path.exists(os.path.join(dm.default_directory(), "datamodel.json")):
        pytest.skip("no XenAPI datamodel at %s" % dm.default_directory())
    engine = Engine(dm.Datamodel.load())
    seed(engine)
    directory = "/tmp/xgwsim-%d-%d" % (os.getpid(), next(_n))
    os.makedirs(directory)
    path = os.path.join(directory, "xapi")
    sim = {"engine": engine, "path": path, "servers": server.serve(engine, unix_path=path)[0]}
    yield sim
    server.shutdown(sim["servers"])
    shutil.rmtree(directory, ignore_errors=True)


def sdk(path):
    session = XenAPI.Session("http://%s/" % path.replace("/", "_"), transport=XenAPI.UDSTransport())
    session.xenapi.login_with_password("root", "", "1.0", "test")
    return session.xenapi


def state(daemon, name):
    gw = daemon.gateway_state(name)
    return gw and gw["state"]


def test_gateway_from_network_other_config_with_xapi_restart(xapi, workdir, daemons):
    api = sdk(xapi["path"])
    net = api.network.create({"name_label": "private", "other_config": {}})
    bridge = api.network.get_bridge(net)  # chosen by XAPI, never by the user
    topo = N.Topology(bridge=bridge)
    try:
        network_conf = os.path.join(workdir, "network.conf")
        with open(network_conf, "w") as f:  # this host's bridges are Linux bridges
            f.write("bridge\n")
        daemon = daemons(topo.dom0, workdir, {}, xapi_url="unix:" + xapi["path"],
                         agent_opts={"network_conf": network_conf})
        N.wait_for(lambda: (daemon.status() or {}).get("xapi", {}).get("connected"),
                   message="connected to XAPI")
        # the preflight through the same socket: XAPI, the HIMN and the ext default SR are
        # there, and the running daemon made the kernel ready
        out = topo.dom0.run([sys.executable, "-m", "agent.cli", "-c", daemon.config_path,
                             "doctor", "--json"], check=False)
        checks = {c["name"]: c["status"] for c in json.loads(out.stdout)["checks"]}
        assert (checks["xapi"], checks["himn"], checks["default SR"]) == ("ok", "ok", "ok")
        assert out.returncode == 0, checks
        # what `xe network-param-set other-config:xapi-gateway.address=...` does
        api.network.add_to_other_config(net, "xapi-gateway.address", N.Topology.PRIVATE)
        N.wait_for(lambda: state(daemon, "private") == "absent", timeout=3,
                   message="the gateway, waiting for its bridge")
        gw = daemon.gateway_state("private")
        assert gw["bridge"] == bridge and gw["source"].startswith("xapi:")
        topo.create_bridge()  # the first VM on the network starts
        N.wait_for(lambda: state(daemon, "private") == "applied", message="applied")
        assert N.Topology.PRIVATE in topo.dom0.addresses(bridge)
        assert topo.vm.run(["ping", "-c", "1", "-W", "2", topo.OUTSIDE]).returncode == 0

        # a bad value on another network is reported and stops nothing
        bad = api.network.create({"name_label": "broken", "other_config": {
            "xapi-gateway.address": "172.16.9.0/24"}})
        N.wait_for(lambda: state(daemon, "broken") == "invalid", timeout=3, message="invalid")
        assert "host bits all zero" in daemon.gateway_state("broken")["reason"]
        assert state(daemon, "private") == "applied"

        # XAPI restarts: gateways stay enforced while it is away...
        server.shutdown(xapi["servers"])
        N.wait_for(lambda: daemon.status()["xapi"]["connected"] is False, timeout=5,
                   message="XAPI seen as gone")
        topo.dom0.run(["ip", "addr", "flush", "dev", bridge])
        N.wait_for(lambda: N.Topology.PRIVATE in topo.dom0.addresses(bridge), timeout=3,
                   message="drift repaired without XAPI")
        # ...a change made meanwhile (in XAPI's database) is applied once it is back
        engine = xapi["engine"]
        engine.record("network", bad)["other_config"]["xapi-gateway.address"] = "172.16.9.1/24"
        xapi["servers"] = server.serve(engine, unix_path=xapi["path"])[0]
        N.wait_for(lambda: daemon.status()["xapi"]["connected"], timeout=15,
                   message="reconnected")
        N.wait_for(lambda: state(daemon, "broken") == "absent", timeout=5,
                   message="the corrected gateway")
        assert state(daemon, "private") == "applied"
    finally:
        topo.close()


def _links(daemon):
    return {ln["name"]: ln for ln in (daemon.status() or {}).get("links", [])}


@pytest.mark.parametrize("network_conf,state,reason", [
    ("bridge", "refused", "this host uses Linux bridges (network.conf: bridge); a link is a "
     "pair of Open vSwitch patch ports, so it needs the openvswitch backend"),
    # accepted, and handed to the OVS writer: this daemon's OVSDB socket has no server
    # (the test's own path), so the writer's verdict is an error that says so
    ("openvswitch", "error", "OVSDB at unix:{sock} does not answer (cannot connect: no "
     "socket {sock})")])
def test_a_link_in_other_config_reaches_the_daemons_status(xapi, workdir, daemons, topo,
                                                            network_conf, state, reason):
    """xe network-param-set other-config:xapi-gateway.link=... on a running daemon: its
    verdict in status.json and `xgw status`, a bad value's sentence, and nothing once the
    key is dropped. (What OVS makes of an accepted link: test_links_e2e.py.)"""
    api = sdk(xapi["path"])
    private = api.network.create({"name_label": "private", "other_config": {}})
    br100 = api.network.create({"name_label": "br100", "other_config": {}})
    path = os.path.join(workdir, "network.conf")
    with open(path, "w") as f:
        f.write(network_conf + "\n")
    daemon = daemons(topo.dom0, workdir, {}, xapi_url="unix:" + xapi["path"],
                     agent_opts={"network_conf": path})
    N.wait_for(lambda: (daemon.status() or {}).get("xapi", {}).get("connected"),
               message="connected to XAPI")
    api.network.add_to_other_config(br100, "xapi-gateway.link",
                                    "%s:102" % api.network.get_uuid(private))
    N.wait_for(lambda: _links(daemon).get("br100", {}).get("state") == state, timeout=5,
               message="the link's state")
    link = _links(daemon)["br100"]
    if reason is not None:
        reason = reason.format(sock=os.path.join(workdir, "ovsdb.sock"))
    assert (link["parent_name"], link["tag"], link["reason"]) == ("private", 102, reason)
    assert link["bridge"] == api.network.get_bridge(br100)
    out = topo.dom0.run([sys.executable, "-m", "agent.cli", "-c", daemon.config_path,
                         "status"], check=False)
    row = [line.split() for line in out.stdout.splitlines() if line.startswith("br100")]
    assert row and row[0][2:5] == ["private", "102", state], out.stdout
    assert "; 1 link: 1 %s" % state in out.stdout

    api.network.remove_from_other_config(br100, "xapi-gateway.link")
    api.network.add_to_other_config(br100, "xapi-gateway.link", "private:102")
    N.wait_for(lambda: _links(daemon).get("br100", {}).get("state") == "invalid", timeout=5,
               message="the bad value's state")
    assert _links(daemon)["br100"]["reason"].startswith(
        "parent network private does not exist; xapi-gateway.link takes the parent's uuid")
    assert daemon.status()["round_failure"] is None   # a bad link never fails a round

    api.network.remove_from_other_config(br100, "xapi-gateway.link")
    N.wait_for(lambda: _links(daemon) == {}, timeout=5, message="the link dropped")
