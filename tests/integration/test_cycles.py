"""Many bridge create/delete cycles: the daemon neither leaks nor leaves anything behind."""
import json
import os
import sys

from tests.integration import netns as N

CYCLES = int(os.environ.get("XGW_CYCLES", "1000"))


def test_bridge_cycles_leave_no_stale_rules_and_no_fd_growth(workdir, daemons):
    dom0 = N.Netns("cycles")
    try:
        # The periodic check also runs during the cycles, as in production.
        daemon = daemons(dom0, workdir, {"private": {"bridge": "xapi1",
                                                     "address": "172.16.1.1/24"}},
                         agent_opts={"log_level": "info", "check_interval": "2"})
        status_path = os.path.join(daemon.runtime_dir, "status.json")
        # warm up (first use of every code path opens what it keeps open), then measure
        dom0.run([sys.executable, os.path.join(N.HELPERS, "cycles.py"), status_path, "xapi1",
                  "private", "3"])
        fds_before = daemon.settled_fd_count()
        out = dom0.run([sys.executable, os.path.join(N.HELPERS, "cycles.py"), status_path,
                        "xapi1", "private", str(CYCLES)], timeout=900)
        result = json.loads(out.stdout)
        assert result["timeouts"] == 0, result
        assert daemon.settled_fd_count() <= fds_before, "file descriptors grew over %d cycles" % CYCLES
        assert daemon.proc.poll() is None
        for table in ("nat", "filter"):
            lines = dom0.rules(table)
            assert not any("xgw:" in l for l in lines), "stale rule: %s" % lines
            assert len(lines) == len(set(lines)), "duplicate rule: %s" % lines
        assert dom0.rules("filter") == ["-A FORWARD -j XGW-FORWARD"]
        assert dom0.rules("nat") == ["-A POSTROUTING -j XGW-POSTROUTING"]
        print("%d cycles in %.1f s" % (CYCLES, result["seconds"]))
    finally:
        dom0.delete()
