"""The netlink mirror for real, in namespaces: events keep it equal to the kernel, and a
resync loses no event that arrives while the kernel is re-read."""
import json
import os
import sys
import time

from tests.integration import netns as N

GW = {"private": {"bridge": "xapi1", "address": N.Topology.PRIVATE, "nat": "yes"}}


def helper_result(role, script):
    """Run tests/integration/helpers/``script`` in a namespace of its own: the JSON of its
    last line."""
    ns = N.Netns(role)
    try:
        out = ns.run([sys.executable, os.path.join(N.HELPERS, script)],
                     env=dict(os.environ, PYTHONPATH=N.REPO)).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        ns.delete()


def test_events_keep_the_mirror_equal_to_a_dump():
    """Links, addresses (one labelled), routes in the main table and another, a port
    leaving its bridge, a rename, deletions: after each, the mirror equals a dump."""
    assert helper_result("mirror", "mirror_steps.py") == {}


def test_events_held_during_writes_are_folded_in_afterwards():
    """A round holds the monitor while it writes (NetlinkMonitor.held): its own writes'
    events wait in the socket and none is lost: once the hold is left the mirror has the
    address and on_change names the bridge."""
    result = helper_result("held", "monitor_held.py")
    assert result["held"] == {"mirror": False, "on_change": []}
    assert result["after"]["mirror"] is True
    assert ["br7"] in result["after"]["on_change"]


def test_a_round_in_the_monitors_thread_folds_the_events_queued_meanwhile():
    """A round the monitor's own thread runs (Engine.request_here) reads no events while
    it works; fold_pending folds those queued (the bridge set up during the round is seen
    up before the round records it) and reports them, from that thread only."""
    result = helper_result("fold", "monitor_fold.py")
    assert result["thread"] == "netlink-monitor"
    assert result["before"] is False and result["other_thread"] is False
    assert result["after"] is True
    assert result["calls"][-1] == ["br8"] and len(result["calls"]) >= 2


def test_bridge_created_during_a_resync_becomes_a_gateway_at_once(topo, workdir, daemons):
    """xapi1 appears after the periodic resync's dump was read and before it replaced the
    mirror (resync_race.py holds the daemon exactly there). Its event must not be lost
    with the old mirror: the gateway is applied at once, not at the next resync."""
    launcher = [sys.executable, os.path.join(N.HELPERS, "resync_race.py"), "xapi1", "2", "--"]
    daemon = daemons(topo.dom0, workdir, GW, launcher=launcher,
                     agent_opts={"resync_interval": "10"})
    assert daemon.gateway_state("private")["state"] == "absent"
    # dump 1 is at start; dump 2 is the periodic resync 10 s later, which creates xapi1
    N.wait_for(lambda: topo.dom0.link_exists("xapi1"), timeout=20, interval=0.05,
               message="xapi1 created during the periodic resync")
    created = time.monotonic()
    N.wait_for(lambda: (daemon.gateway_state("private") or {}).get("state") == "applied",
               timeout=5, message="gateway applied within 5 s (the next resync is in 10 s)")
    assert time.monotonic() - created < 5
    assert topo.dom0.addresses("xapi1") == [N.Topology.PRIVATE]
    assert "created during dump 2" in daemon.log()
