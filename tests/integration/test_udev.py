"""The real hooks/ rule under a private systemd-udevd, and the daemon reacting to it.

Runs in ``unshare -m -n``: its own network namespace, and its own /run and /sys, so the
private udevd and its rules never meet the host's.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.integration import netns as N

UDEVD = "/lib/systemd/systemd-udevd"


def scenario(workdir, mode):
    proc = subprocess.run(["unshare", "-m", "-n", sys.executable,
                           os.path.join(N.HELPERS, "udev_scenario.py"), workdir, mode],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, cwd=N.REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.path.exists(UDEVD) or shutil.which("udevadm") is None,
                    reason="needs systemd-udevd and udevadm (apt install udev)")
def test_rule_tags_xapi_bridges_and_the_daemon_reacts(workdir):
    result = scenario(workdir, "udev")
    assert result["udevd_ready"] and result["daemon_started"], result["log"]
    # the rule: xapi7 is tagged for us and for systemd, br0 is left alone
    assert "xapi-gateway" in result["xapi7_info"]
    assert "SYSTEMD_WANTS=xapi-gateway.service" in result["xapi7_info"]
    assert "xapi-gateway" not in result["br0_info"]
    # the daemon listened to udev, filtered by the tag: it heard xapi7 and not br0
    log = result["log"]
    assert "listening to udev events for network devices tagged xapi-gateway" in log
    events = [l for l in log.splitlines() if ": udev: " in l]
    assert any("add xapi7" in l for l in events), log
    assert not any("br0" in l for l in events), events
    assert result["applied"], log
    assert "172.16.7.1/24" in result["address"]


def test_kernel_uevents_without_udevd(workdir):
    result = scenario(workdir, "kernel")
    log = result["log"]
    assert "listening to kernel events for network devices" in log
    events = [l for l in log.splitlines() if ": udev: " in l]
    assert any("add xapi7" in l for l in events), log
    assert result["applied"], log
    assert "172.16.7.1/24" in result["address"]
