"""The README's first command: demo/run, non-interactively, as a newcomer runs it (minus
the set-up, which is tests/run --prepare and runs in CI's own phase of `.ci/run`)."""
import os
import re
import signal
import subprocess
import sys

import pytest

from agent.xapisim import datamodel as dm
from agent.xapisim import ovs
from tests.integration import netns as N

DEMO = os.path.join(N.REPO, "demo", "run")
BRIDGE_CHECKS = ("simulator", "daemon", "apply", "vms", "gateway", "ping", "tcp", "horizon",
                 "destroy", "cleanup")
# on Open vSwitch (the default, as on Dom0) the demo shows a VLAN link too
OVS_CHECKS = BRIDGE_CHECKS[:-2] + ("link",) + BRIDGE_CHECKS[-2:]


def demo(*argv):
    return subprocess.run(["bash", DEMO, "--no-setup"] + list(argv), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300,
                          env=dict(os.environ, PYTHON=sys.executable))


def run_demo(prefix, *argv):
    """The demo's output, after checking it passed every check and left nothing behind."""
    if not os.path.exists(os.path.join(dm.default_directory(), "datamodel.json")):
        pytest.skip("no XenAPI datamodel at %s" % dm.default_directory())
    try:
        out = demo("--non-interactive", "--prefix", prefix, *argv)
    finally:
        left = [ns for ns in N.run(["ip", "netns", "list"]).stdout.split()
                if ns.startswith(prefix)]
        for ns in left:
            N.run(["ip", "netns", "del", ns], check=False)
    assert not left, "the demo left namespaces behind: %s" % left
    assert not [d for d in os.listdir("/tmp") if d.startswith(prefix)]
    assert out.returncode == 0, out.stdout
    return out.stdout


def summary_of(stdout, checks):
    summary = stdout[stdout.index("xapi-gateway demo: summary"):]
    lines = summary.splitlines()[1:]
    assert [l.split()[1] for l in lines[:len(checks)]] == list(checks), summary
    assert all(l.split()[0] == "PASS" for l in lines[:len(checks)]), summary
    assert re.search(r"^DEMO PASSED: %d/%d checks passed in \d+ s$" % (
        len(checks), len(checks)), summary, re.M)
    # what the checks saw, from real packets and the real daemon
    assert "3 of 3 replies" in summary
    assert "the outside saw 198.51.100.1 (NAT)" in summary
    assert "answered 'OpenStack Dashboard (Horizon) on the Controller'" in summary
    assert "Compute has the HIMN on VIF 9" in summary
    assert "gateway private on xapi1: applied" in stdout  # the daemon's own log
    return summary


def test_the_demo_runs_the_blog_lab_on_open_vswitch_with_a_vlan_link():
    if ovs.installed():
        pytest.skip(ovs.installed())
    out = run_demo("xgwt-%d-demo" % os.getpid())
    summary = summary_of(out, OVS_CHECKS)
    assert "Open vSwitch in xgwt-" in out and "--network-backend openvswitch" in out
    # the link, through real OVS: the patch pair with the tag on private's side, packets
    # from an instance with its only NIC on br100 to private's VLAN 102
    assert re.search(r"PASS  link      br100 \(xapi\d\) is VLAN 102 of private \(xapi1\): "
                     r"instance 10.0.102.10 -> 10.0.102.20: 3 of 3 replies", summary), summary
    assert re.search(r"OVS: added link port xgwp\w+ to xapi1 \(tag 102\)", out), out
    assert "no port of the daemon's left in OVS" in summary


def test_the_demo_keeps_the_linux_bridge_path():
    out = run_demo("xgwt-%d-demobr" % os.getpid(), "--network-backend", "bridge")
    summary_of(out, BRIDGE_CHECKS)
    assert "--network-backend bridge" in out and "Open vSwitch in" not in out


def interrupt(prefix, at, total, *argv):
    """Runs the demo and sends it SIGTERM when step ``at`` (of ``total``) starts: it
    cleans up, says so and which checks were not reached, and leaves nothing behind."""
    if not os.path.exists(os.path.join(dm.default_directory(), "datamodel.json")):
        pytest.skip("no XenAPI datamodel at %s" % dm.default_directory())
    proc = subprocess.Popen([sys.executable, os.path.join(N.REPO, "demo", "lab.py"),
                             "--non-interactive", "--prefix", prefix] + list(argv),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[%d/%d]" % (at, total)):
                proc.send_signal(signal.SIGTERM)
                break
        rest = proc.communicate(timeout=120)[0]
    finally:
        N.stop(proc)
        left = [ns for ns in N.run(["ip", "netns", "list"]).stdout.split()
                if ns.startswith(prefix)]
        for ns in left:
            N.run(["ip", "netns", "del", ns], check=False)
    assert proc.returncode == 1, "".join(seen) + rest
    assert re.search(r"^DEMO FAILED: \d+/%d checks passed in \d+ s \(interrupted\)$"
                     % total, rest, re.M), rest
    assert re.search(r"^  PASS  cleanup ", rest, re.M), rest
    assert not left, "the interrupted demo left namespaces behind: %s" % left
    assert not [d for d in os.listdir("/tmp") if d.startswith(prefix)]
    return rest


def test_an_interrupted_demo_still_cleans_up_and_says_so():
    # the lab is up, the VMs are being started
    interrupt("xgwt-%d-demoint" % os.getpid(), 5, 11)


def test_the_demo_refuses_a_bad_prefix_before_doing_anything():
    out = demo("--prefix", "Bad_Prefix")
    assert out.returncode == 2
    assert "--prefix: lower-case letters" in out.stdout


POOL_CHECKS = ("simulator", "daemons", "apply", "vms", "tunnels", "gateway", "ping", "tcp",
               "horizon", "failover", "destroy", "cleanup")


def test_the_pool_demo_shows_the_multi_host_lab_and_a_failover():
    """demo/run --hosts 3: examples/pool-lab.yaml on three simulated hosts on real OVS, a
    daemon each; the summary's lines say what real packets and the daemons showed."""
    if ovs.installed():
        pytest.skip(ovs.installed())
    prefix = "xgwt-%d-dpool" % os.getpid()
    out = run_demo(prefix, "--hosts", "3")
    summary = out[out.index("xapi-gateway demo: summary"):]
    lines = summary.splitlines()[1:]
    assert [l.split()[1] for l in lines[:len(POOL_CHECKS)]] == list(POOL_CHECKS), summary
    assert all(l.split()[0] == "PASS" for l in lines[:len(POOL_CHECKS)]), summary
    assert re.search(r"^DEMO PASSED: 12/12 checks passed in \d+ s$", summary, re.M), summary
    assert "each hears the others' heartbeats" in summary
    assert re.search(r"PASS  vms       Fuel on host 1 \(xgw-sim\), Controller on host 2 "
                     r"\(xgw-sim-2\), Compute on host 3 \(xgw-sim-3\)$", summary, re.M)
    # the star: private's around host 1 (its gateway host), two ports there, one elsewhere
    assert re.search(r"private: center h1, h1:2 h2:1 h3:1", summary), summary
    assert re.search(r"states h1 applied, h2 elsewhere, h3 elsewhere", summary), summary
    assert "Compute on host 3 -> outside through host 1's NAT: the outside saw " \
           "198.51.100.1\n" in summary
    assert "on host 2 answered 'OpenStack Dashboard (Horizon) on the Controller'" in summary
    failover = re.search(
        r"PASS  failover  host 1 shut down; the gateway on host (\d) \(xgw-sim-\d\) after "
        r"[\d.]+ s; Compute's pings resumed ([\d.]+) s after host.disable \(outage "
        r"([\d.]+) s\); the outside now sees 198.51.100.(\d); Horizon through "
        r"198.51.100.(\d); re-shaped: .*private: center h(\d), ", summary)
    assert failover, summary
    new = failover.group(1)
    assert new in "23" and failover.group(4) == failover.group(5) == failover.group(6) == new
    assert 0 < float(failover.group(3)) <= float(failover.group(2)) + 1
    print(re.search(r"^  PASS  failover .*$", summary, re.M).group(0))


def test_an_interrupted_pool_demo_removes_the_pool_too():
    if ovs.installed():
        pytest.skip(ovs.installed())
    # the pool is up with its daemons and the lab applied: the tunnels are being checked
    rest = interrupt("xgwt-%d-dpint" % os.getpid(), 6, 12, "--hosts", "3")
    assert re.search(r"^  ----  failover  not reached$", rest, re.M), rest
