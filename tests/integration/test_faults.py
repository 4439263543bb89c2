"""Faults that must not take the daemon down (issue 11, item 1): a round that fails, be
it on the xtables lock held by another program or on a full state directory, is logged,
reported (status.json, /v1/health, /metrics) and retried with backoff; the daemon keeps
running, keeps enforcing what it can, and repairs once the fault is gone.

The daemon runs for real in a network namespace; the full filesystem is a small tmpfs
mounted over its state directory in a private mount namespace (nothing on the host)."""
import json
import os
import signal
import subprocess

import pytest

from agent.api.client import _UnixConnection  # the one way to speak HTTP on a Unix socket
from tests.integration import netns as N

GW = {"private": {"bridge": "xapi1", "address": "172.16.1.1/24"}}


def get(daemon, path):
    """(HTTP status, body text) of GET ``path`` on the daemon's Unix socket."""
    conn = _UnixConnection(os.path.join(daemon.runtime_dir, "api.sock"), 10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError as exc:
        raise AssertionError("GET %s: %s; daemon exit status %s; log:\n%s"
                             % (path, exc, daemon.proc.poll(), daemon.log()))
    finally:
        conn.close()


def health(daemon):
    return json.loads(get(daemon, "/v1/health")[1])


def metric(daemon, name):
    for line in get(daemon, "/metrics")[1].splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def make_bridge(ns):
    ns.run(["ip", "link", "add", "xapi1", "type", "bridge"])
    ns.run(["ip", "link", "set", "xapi1", "up"])


def forward_jumps(ns):
    return [r for r in ns.rules("filter") if r.startswith("-A FORWARD -j XGW-FORWARD")]


def test_a_held_xtables_lock_fails_rounds_but_never_the_daemon(workdir, daemons):
    dom0 = N.Netns("lock")
    holder = None
    try:
        make_bridge(dom0)
        # WATCHDOG_USEC=400000: pings every 0.2 s while the reconciler shows signs of
        # life; a round now lasts 3 s waiting for the lock, which is not being stuck.
        daemon = daemons(dom0, workdir, GW, agent_opts={"xtables_wait": "1"},
                         env={"WATCHDOG_USEC": "400000"})
        N.wait_for(lambda: (daemon.gateway_state("private") or {}).get("state") == "applied",
                   message="gateway applied")
        assert health(daemon)["status"] == "ok"

        # Another program (a hung `iptables -w`) holds the lock for as long as it likes.
        lock = os.path.join(workdir, "xtables.lock")
        holder = subprocess.Popen(["flock", "-x", lock, "sleep", "600"],
                                  start_new_session=True)
        N.wait_for(lambda: subprocess.run(["flock", "-n", lock, "true"]).returncode != 0,
                   message="the lock held by the other program")
        # ... and meanwhile something removes the daemon's jump (drift to repair later).
        dom0.ipt("-D", "FORWARD", "-j", "XGW-FORWARD")

        N.wait_for(lambda: health(daemon)["status"] == "degraded", timeout=15,
                   message="health degraded")
        answer = health(daemon)
        assert any("xtables lock" in p for p in answer["problems"]), answer
        N.wait_for(lambda: (metric(daemon, "xgw_reconcile_failures_total") or 0) >= 2,
                   timeout=20, message="two failed rounds counted")
        assert metric(daemon, "xgw_reconcile_failing") == 1
        failure = daemon.status()["round_failure"]
        assert failure["code"] == "xtables_lock_timeout" and failure["consecutive"] >= 2
        assert daemon.proc.poll() is None
        assert forward_jumps(dom0) == []   # nothing written without the lock
        pings = daemon.notifications().count("WATCHDOG=1")
        N.wait_for(lambda: daemon.notifications().count("WATCHDOG=1") >= pings + 10,
                   timeout=3, message="watchdog pings go on while the lock is waited for")

        os.killpg(holder.pid, signal.SIGTERM)  # flock and its sleep, which has the lock too
        holder.wait()
        holder = None
        N.wait_for(lambda: len(forward_jumps(dom0)) == 1, timeout=15,
                   message="the jump put back once the lock is free")
        N.wait_for(lambda: health(daemon)["status"] == "ok", timeout=10,
                   message="health ok again")
        assert health(daemon)["problems"] == []
        assert metric(daemon, "xgw_reconcile_failing") == 0
        assert daemon.status()["round_failure"] is None
        log = daemon.log()
        # logged when it starts failing and when it recovers, not once per round
        assert log.count("reconcile rounds fail") == 1, log
        assert "reconcile rounds succeed again" in log
        assert daemon.stop() == 0
    finally:
        if holder is not None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
        dom0.delete()


def in_mounts(daemon, *command):
    """``command`` in the daemon's own mount namespace (where its tmpfs is)."""
    return subprocess.run(["nsenter", "-t", str(daemon.proc.pid), "-m"] + list(command),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


def test_a_full_state_directory_fails_rounds_but_never_the_daemon(workdir, daemons):
    if subprocess.run(["which", "unshare", "nsenter"], stdout=subprocess.DEVNULL).returncode:
        pytest.skip("needs unshare and nsenter")
    dom0 = N.Netns("full")
    state = os.path.join(workdir, "state")
    os.makedirs(state)
    # The daemon in a private mount namespace where its state directory is a 64 KiB tmpfs.
    prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
              'mount -n -t tmpfs -o size=64k,mode=0700 xgwt-state "$0" && exec "$@"', state]
    try:
        daemon = daemons(dom0, workdir, GW, prefix=prefix)
        assert in_mounts(daemon, "df", "--output=size", state).stdout.split()[-1] == "64"
        in_mounts(daemon, "dd", "if=/dev/zero", "of=%s/filler" % state, "bs=4k")
        assert in_mounts(daemon, "sh", "-c", "echo x > %s/probe" % state).returncode != 0

        make_bridge(dom0)  # a new gateway: kernel changes and a record that cannot be saved
        N.wait_for(lambda: health(daemon)["status"] == "degraded", timeout=15,
                   message="health degraded")
        answer = health(daemon)
        assert any("state.json" in p for p in answer["problems"]), answer
        # The gateway is enforced all the same: VMs keep their network.
        assert "172.16.1.1/24" in dom0.addresses("xapi1")
        assert daemon.gateway_state("private")["state"] == "applied"
        assert daemon.status()["round_failure"]["code"] == "state_error"
        assert daemon.proc.poll() is None

        in_mounts(daemon, "rm", "%s/filler" % state)
        N.wait_for(lambda: health(daemon)["status"] == "ok", timeout=15,
                   message="health ok once there is room (a retry with backoff)")
        saved = json.loads(in_mounts(daemon, "cat", "%s/state.json" % state).stdout)
        assert saved["owned"] == {"xapi1": "172.16.1.1/24"}
        assert daemon.stop() == 0
    finally:
        dom0.delete()
