#!/usr/bin/env python3
"""Where the start-up's time goes, step by step, beside the script and the interpreter.

    sudo .venv/bin/python bench/trace_startup.py [--gateways 1000] [--runs 5]

In a namespace it creates (xgwb-<pid>-...) with N bridges present and nothing applied,
alternately: (1) the daemon starts through bench/traced_daemon.py, which marks when each
step ends (CLOCK_MONOTONIC, compared with the time before the spawn, as run_bench.py's
start-up figure is), and its own ``--cleanup`` undoes it; (2) the script way, timed as
run_bench.py times it (``iptables-restore --noflush`` of the same rules, ``ip -batch`` of
the same addresses, ip_forward on), then undone; (3) the interpreter's own floor: a
Python that does nothing, one that imports only the modules a round needs (no event loop),
one that imports asyncio, one that imports the daemon's module, each spawned as the
daemon is (``ip netns exec``). Medians over RUNS, printed as a table:
when each step ends after the spawn and what it took. run_bench.py's "all applied" is the
step "addresses added". Unlike a profile, nothing is slowed but by the marks (~1 us each).
"""
from __future__ import print_function

import argparse
import json
import os
import statistics
import sys
import time

import run_bench as B  # re-executes under the venv if needed; sets up sys.path

TRACED = os.path.join(B.BENCH, "traced_daemon.py")
APPLIED = "addresses added (gateways applied)"
LAST = "round over (status recorded)"
SKIPPED = ("event read",)   # the monitor's, off the start-up's path
# The interpreter's own floor, spawned as the daemon is: nothing; the modules one round
# needs without the event loop or the API (what a daemon that applied the gateways first
# and imported the rest after could not do without); the event loop; the daemon's own
# module, which imports the loop.
ROUND_MODULES = ("logging", "agent.core.config", "agent.core.planner", "agent.adapters.netlink",
                 "agent.adapters.iptables", "agent.adapters.sysctl", "agent.adapters.statefile")
FLOORS = (("python -c pass", "pass"),
          ("python: import what one round needs, no event loop",
           "import " + ", ".join(ROUND_MODULES)),
          ("python -c 'import asyncio'", "import asyncio"),
          ("python -c 'import agent.daemon.main'", "import agent.daemon.main"))


def traced_start(res, ns, n, gateways):
    """One traced start-up: [(step, seconds after the spawn)] up to the first round's
    end, the daemon stopped (its marks are written then) and its work undone."""
    wd = res.workdir()
    out = os.path.join(wd, "marks.json")
    d = res.daemon(ns, wd, gateways, check_interval=10, launcher=[sys.executable, TRACED, out])
    try:
        t0 = time.monotonic()
        d.start(wait_ready=False)
        status = B.wait_status(d, B.all_applied(B.gateway_name(i) for i in range(n)), 120)
        if status is None:
            raise RuntimeError("not all %d gateways applied within 120 s" % n)
        d.wait_notify("READY=1", timeout=60)
    finally:
        d.stop()
        B.undo_daemon(ns, d)
    with open(out) as f:
        marks = json.load(f)
    steps = []
    for step, at, _thread in marks:
        if step in SKIPPED:
            continue
        steps.append((step, at - t0))
        if step == LAST:
            break
    return steps


def floor(ns, code):
    env = dict(os.environ, PYTHONPATH=B.REPO)
    t0 = time.monotonic()
    ns.run([sys.executable, "-c", code], env=env)
    return time.monotonic() - t0


def numbered(steps):
    """Repeated step names (one mark per table) told apart: 'a table observed (2)'."""
    seen, out = {}, []
    for step, at in steps:
        seen[step] = seen.get(step, 0) + 1
        out.append(("%s (%d)" % (step, seen[step]) if seen[step] > 1 else step, at))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description="trace the daemon's start-up step by step")
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("trace_startup.py: needs root")
    n = args.gateways
    B.compile_agent()
    res = B.Resources()
    made = False
    try:
        ns = res.netns("trace")
        # the script's iptables-restore takes this lock, not the host's
        os.environ["XTABLES_LOCKFILE"] = os.path.join(res.workdir(), "xtables.lock")
        indices = list(range(n))
        gateways = B.gateways_config(indices)
        B.create_bridges_batch(ns, indices)
        made = True
        load = os.getloadavg()[0]
        traces, scripts, floors = [], [], {label: [] for label, _c in FLOORS}
        for _run in range(args.runs):
            traces.append(numbered(traced_start(res, ns, n, gateways)))
            sc = B.script_startup(ns, n)
            if sc["verify"]["complete"] != n:
                raise RuntimeError("the script applied %s of %d" % (sc["verify"], n))
            scripts.append(sc)
            for label, code in FLOORS:
                floors[label].append(floor(ns, code))
        order = [step for step, _at in traces[0]]
        print("start-up with %d bridges, nothing applied: medians of %d runs, load %.2f at "
              "the start, Python %s" % (n, args.runs, load, sys.version.split()[0]))
        print("%-58s | %9s | %9s" % ("daemon: step (traced)", "ends at", "took"))
        print("%s-+-%s-+-%s" % ("-" * 58, "-" * 9, "-" * 9))
        previous = 0.0
        for step in order:
            ats = [dict(t).get(step) for t in traces]
            ats = [a for a in ats if a is not None]
            at = statistics.median(ats)
            print("%-58s | %6.1f ms | %6.1f ms" % (step, at * 1000, (at - previous) * 1000))
            previous = at
        applied = statistics.median(dict(t)[APPLIED] for t in traces)
        total = statistics.median(s["total_s"] for s in scripts)
        print()
        print("%-58s | %9s" % ("the same start-up, other ways", "took"))
        print("%s-+-%s" % ("-" * 58, "-" * 9))
        print("%-58s | %6.1f ms" % ("daemon: spawn -> gateways applied", applied * 1000))
        print("%-58s | %6.1f ms" % ("script: iptables-restore + ip -batch + sysctl", total * 1000))
        for key, label in (("restore_s", "  iptables-restore --noflush"),
                           ("ip_batch_s", "  ip -batch"), ("sysctl_s", "  sysctl")):
            print("%-58s | %6.1f ms" % (label, statistics.median(s[key] for s in scripts) * 1000))
        for label, _code in FLOORS:
            print("%-58s | %6.1f ms" % (label, statistics.median(floors[label]) * 1000))
        print("daemon / script: %.1fx" % (applied / total))
        return 0
    finally:
        os.environ.pop("XTABLES_LOCKFILE", None)
        if made:
            B.delete_bridges(ns, range(n))
        res.close()


if __name__ == "__main__":
    sys.exit(main())
