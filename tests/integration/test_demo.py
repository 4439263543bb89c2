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


def test_an_interrupted_demo_still_cleans_up_and_says_so():
    if not os.path.exists(os.path.join(dm.default_directory(), "datamodel.json")):
        pytest.skip("no XenAPI datamodel at %s" % dm.default_directory())
    prefix = "xgwt-%d-demoint" % os.getpid()
    proc = subprocess.Popen([sys.executable, os.path.join(N.REPO, "demo", "lab.py"),
                             "--non-interactive", "--prefix", prefix],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[5/11]"):   # the lab is up, the VMs are being started
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
    assert re.search(r"^DEMO FAILED: \d+/11 checks passed in \d+ s \(interrupted\)$", rest,
                     re.M), rest
    assert re.search(r"^  PASS  cleanup ", rest, re.M), rest
    assert not left, "the interrupted demo left namespaces behind: %s" % left
    assert not [d for d in os.listdir("/tmp") if d.startswith(prefix)]


def test_the_demo_refuses_a_bad_prefix_before_doing_anything():
    out = demo("--prefix", "Bad_Prefix")
    assert out.returncode == 2
    assert "--prefix: lower-case letters" in out.stdout
