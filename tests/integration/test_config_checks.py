"""What the config file lets through, with the daemon running for real in a namespace:
interfaces that are not bridges, subnets routed on the internet, --check-config against the
daemon's own verdict, and what a SIGHUP applies and what it leaves for a restart."""
import os
import subprocess
import sys

from tests.integration import netns as N
from tests.integration.test_gateway import GW, applied, gateway_in_kernel, ping


def check_config(path):
    return subprocess.run([sys.executable, "-m", "agent.daemon.main", "-c", path,
                           "--check-config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=N.REPO)


def full_log(daemon):
    with open(daemon.log_path) as f:
        return f.read()


def state(daemon, name):
    gw = daemon.gateway_state(name)
    return None if gw is None else gw["state"]


def test_interfaces_that_are_not_bridges_are_refused_and_left_alone(topo, workdir, daemons):
    """bridge = lo, a NIC (a veth here: the kernel of the test host has no dummy links) or
    a VM's vif: --check-config warns, the daemon refuses them with the reason and puts no
    address, route or rule on them; a real bridge beside them works."""
    topo.create_bridge()
    topo.dom0.run(["ip", "link", "add", "eth7", "type", "veth", "peer", "name", "eth7p"])
    topo.dom0.run(["ip", "link", "set", "eth7", "up"])
    gateways = dict(GW)
    gateways["loop"] = {"bridge": "lo", "address": "172.16.5.1/24"}
    gateways["nic"] = {"bridge": "eth7", "address": "172.16.6.1/24"}
    gateways["vif"] = {"bridge": "vif1.0", "address": "172.16.7.1/24"}
    path = N.Daemon(topo.dom0, workdir, gateways).config_path  # writes the file
    checked = topo.dom0.run([sys.executable, "-m", "agent.daemon.main", "-c", path,
                             "--check-config"], check=False,
                            env=dict(os.environ, PYTHONPATH=N.REPO))
    assert checked.returncode == 0, checked.stderr  # valid; the warnings say what will happen
    assert "warning: gateway loop will be refused: lo is not a bridge" in checked.stdout
    assert "warning: gateway nic will be refused: eth7 is not a bridge" in checked.stdout
    assert "warning: gateway vif will be refused: vif1.0 is not a bridge" in checked.stdout
    assert "warning: gateway private" not in checked.stdout
    daemon = daemons(topo.dom0, workdir, gateways)
    N.wait_for(lambda: applied(daemon) and all(state(daemon, n) == "refused"
                                                for n in ("loop", "nic", "vif")),
               message="private applied, the others refused")
    assert daemon.gateway_state("loop")["reason"] == (
        "lo is not a bridge (a loopback or physical interface): a gateway goes on a Linux or "
        "Open vSwitch bridge; the interface is left alone")
    assert "eth7 is not a bridge (an interface of kind veth)" in \
        daemon.gateway_state("nic")["reason"]
    assert "vif1.0 is not a bridge (an interface of kind veth)" in \
        daemon.gateway_state("vif")["reason"]
    assert topo.dom0.addresses("lo") == ["127.0.0.1/8"]
    assert topo.dom0.addresses("eth7") == []
    assert topo.dom0.addresses("vif1.0") == []
    rules = [l for t in ("nat", "filter") for l in topo.dom0.rules(t)]
    assert not any(dev in l for l in rules for dev in ("xgw:lo:", "eth7", "vif1.0"))
    assert gateway_in_kernel(topo.dom0)
    assert ping(topo.vm, topo.OUTSIDE)


def test_a_bridge_replaced_by_a_non_bridge_of_its_name_loses_only_our_address(topo, workdir,
                                                                               daemons):
    """The gateway's bridge goes and a non-bridge takes its name: refused, and the daemon
    does not put its address there."""
    topo.create_bridge()
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    topo.delete_bridge()
    topo.dom0.run(["ip", "link", "add", "xapi1", "type", "veth", "peer", "name", "xapi1p"])
    topo.dom0.run(["ip", "link", "set", "xapi1", "up"])
    N.wait_for(lambda: state(daemon, "private") == "refused", message="refused")
    assert topo.dom0.addresses("xapi1") == []


def test_a_public_subnet_needs_the_opt_in(topo, workdir, daemons):
    topo.create_bridge()
    public = {"private": {"bridge": "xapi1", "address": "198.51.100.1/24"}}
    daemon = N.Daemon(topo.dom0, workdir, public)
    result = check_config(daemon.config_path)
    assert result.returncode == 2
    assert "subnet 198.51.100.0/24 is outside the private ranges" in result.stderr
    assert "mark the gateway public to use it anyway" in result.stderr
    public["private"]["public"] = "yes"
    daemon = daemons(topo.dom0, workdir, public)
    N.wait_for(lambda: applied(daemon), message="applied with public = yes")
    assert "198.51.100.1/24" in topo.dom0.addresses("xapi1")


def test_check_config_says_what_the_daemon_says(topo, workdir, daemons):
    """Two gateways of one file that clash: --check-config, the daemon at start and a
    reload refuse the file with one sentence; the running gateways stay."""
    clashes = {
        "subnet 172.16.1.128/25 overlaps gateway private (172.16.1.0/24)":
            {"bridge": "xapi2", "address": "172.16.1.129/25"},
        "tcp port 8080 is already forwarded by gateway private (to 172.16.1.10:80)":
            {"bridge": "xapi2", "address": "172.16.2.1/24",
             "forwards": "tcp:8080=172.16.2.10:80"},
    }
    private = dict(GW["private"], forwards="tcp:8080=172.16.1.10:80")
    topo.create_bridge()
    for reason, shadow in sorted(clashes.items()):
        daemon = N.Daemon(topo.dom0, workdir, {"private": private, "shadow": shadow})
        result = check_config(daemon.config_path)
        assert result.returncode == 2, result.stdout
        assert reason in result.stderr and "[gateway:shadow]" in result.stderr
        started = daemon.start(wait_ready=False)
        assert started.proc.wait(20) == 2
        assert reason in daemon.log()
        daemon.stop()
    daemon = daemons(topo.dom0, workdir, {"private": private})
    N.wait_for(lambda: applied(daemon), message="gateway")
    for reason, shadow in sorted(clashes.items()):
        daemon.write_config({"private": private, "shadow": shadow})
        before = full_log(daemon).count("reload refused")
        daemon.reload()
        N.wait_for(lambda: full_log(daemon).count("reload refused") > before,
                   message="reload refused")
        assert reason in full_log(daemon).split("reload refused")[-1]
    assert daemon.proc.poll() is None and applied(daemon)
    N.wait_for(lambda: ping(topo.vm, topo.OUTSIDE), message="the VM still reaches out")
    assert daemon.gateway_state("shadow") is None


def test_reload_applies_what_it_can_and_names_what_needs_a_restart(topo, workdir, daemons):
    """SIGHUP with an emptied file: the gateways go (that is live), but runtime_dir stays
    where it is (status.json is still published there) and the log and status name it as
    needing a restart. A changed check_interval takes effect at once."""
    topo.create_bridge()
    daemon = daemons(topo.dom0, workdir, GW, agent_opts={"check_interval": "3600"})
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    # check_interval 3600: a drift of the rules is not repaired by the periodic check
    # until the reload makes it 0.5 s (netlink events do not cover iptables)
    daemon.write_config(GW, agent_opts={"check_interval": "0.5"})
    daemon.reload()
    N.wait_for(lambda: "check_interval" in daemon.log(), message="reload logged")
    topo.dom0.ipt("-t", "nat", "-F", "XGW-POSTROUTING")
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), timeout=5,
               message="drift repaired by the new check_interval")

    with open(daemon.config_path, "w") as f:
        f.write("")
    daemon.reload()
    N.wait_for(lambda: topo.dom0.addresses("xapi1") == [], message="gateway removed")
    status_path = os.path.join(daemon.runtime_dir, "status.json")
    N.wait_for(lambda: daemon.status() and daemon.status()["gateways"] == [],
               message="status still published in the running runtime_dir")
    status = daemon.status()
    assert "[agent] runtime_dir" in " ".join(status["restart_needed"])
    assert "[agent] state_dir" in " ".join(status["restart_needed"])
    assert os.path.exists(status_path)
    line = [l for l in full_log(daemon).splitlines() if "restart the daemon to apply" in l]
    assert len(line) == 1
    assert "[agent] runtime_dir (%s -> /run/xapi-gateway)" % daemon.runtime_dir in line[0]
    assert daemon.proc.poll() is None
