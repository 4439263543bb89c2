#!/usr/bin/env python3
"""Where the daemon's time goes: cProfile of its start-up and of its idle checks.

    sudo .venv/bin/python bench/profile_daemon.py [--gateways 1000] [--rounds 5] [--top 30]

In a namespace it creates (xgwb-<pid>-...) with N bridges present: (1) the daemon starts
with N gateways to apply, under cProfile (bench/profiled_daemon.py, every thread), and
stops once all are applied; (2) a second daemon starts on that converged state with
check_interval 1 and runs ROUNDS idle checks. Each profile is printed (functions by
cumulative and by own time) and written to bench/results/profile-{startup,idle}.{prof,txt}
(open a .prof with ``python -m pstats``). Profiling slows Python code about 2x: read the
shares, not the absolute times.
"""
from __future__ import print_function

import argparse
import io
import os
import pstats
import sys
import time

import run_bench as B  # re-executes under the venv if needed; sets up sys.path

PROFILED = os.path.join(B.BENCH, "profiled_daemon.py")


def report(prof, title, top, per=1):
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs()
    out.write("%s\n" % title)
    for key in ("cumulative", "tottime"):
        out.write("\n---- by %s time (%s)\n" % (key, "per round: divide by %d" % per
                                                  if per > 1 else "one run"))
        stats.sort_stats(key).print_stats(top)
    return out.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description="cProfile the daemon's start-up and idle check")
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="idle checks to profile")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--outdir", default=os.path.join(B.BENCH, "results"))
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("profile_daemon.py: needs root")
    if not os.path.isdir(args.outdir):
        os.makedirs(args.outdir)
    n = args.gateways
    B.compile_agent()
    res = B.Resources()
    launcher = [sys.executable, PROFILED]
    try:
        ns = res.netns("prof")
        wd = res.workdir()
        indices = list(range(n))
        gateways = B.gateways_config(indices)
        B.create_bridges_batch(ns, indices)
        texts = []
        for phase, interval in (("startup", 10), ("idle", 1)):
            prof = os.path.join(args.outdir, "profile-%s.prof" % phase)
            d = B.BenchDaemon(ns, wd, gateways, agent_opts={"check_interval": str(interval),
                                                            "log_level": "info"},
                              launcher=launcher + [prof])
            res.daemons.append(d)
            load = os.getloadavg()[0]
            t0 = time.monotonic()
            d.start(wait_ready=False)
            status = B.wait_status(d, B.all_applied(B.gateway_name(i) for i in indices), 300)
            if status is None:
                sys.exit("profile_daemon.py: not all %d gateways applied" % n)
            applied = max(gw["since_monotonic"] for gw in status["gateways"]) - t0
            rounds = 1
            if phase == "idle":
                first = status["rounds"]
                deadline = time.monotonic() + 10 + 3 * args.rounds
                while time.monotonic() < deadline:
                    status = d.status()
                    if status["rounds"] >= first + args.rounds:
                        break
                    time.sleep(0.05)
                rounds = status["rounds"]
                if status["writes"]:
                    print("note: %d writes in the idle phase" % status["writes"])
            d.stop(timeout=60)
            title = ("%s, %d gateways: all applied %.3f s after start (under the profiler), "
                     "%d round(s) in this profile, load %.2f"
                     % (phase, n, applied, rounds, load))
            text = report(prof, title, args.top, per=rounds)
            with open(os.path.join(args.outdir, "profile-%s.txt" % phase), "w") as f:
                f.write(text)
            texts.append(text)
        print("\n\n".join(texts))
    finally:
        res.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
