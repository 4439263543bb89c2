#!/usr/bin/env python3
"""Where a new bridge's latency goes, step by step, in the daemon as the benchmark runs it.

    sudo .venv/bin/python bench/trace_latency.py [--bridges 50] [--runs 1]

run_bench.py's latency phase (Linux bridges made one at a time over rtnetlink, as XAPI
makes them; latency from just before the creating request to the gateway's
since_monotonic), with the daemon started through bench/traced_daemon.py, which marks
when each step of each round ends. Each bridge's sample is matched with the round that
stamped it (the mark "addresses added" is the stamp) and cut into: the creating call (the
driver's two requests), until the monitor's read of the event returns, until the round
begins, and the round's own steps up to the stamp. Medians over every bridge of every
run, beside the latency's own. The marks cost ~1 us each; the latency measured here is a
few hundredths of a millisecond above an untraced run's.
"""
from __future__ import print_function

import argparse
import json
import os
import statistics
import sys

import run_bench as B  # re-executes under the venv if needed; sets up sys.path
from trace_startup import numbered

TRACED = os.path.join(B.BENCH, "traced_daemon.py")
STAMP = "addresses added (gateways applied)"
# the round's steps, in the order the reconciler takes them, up to the stamp
ROUND = ("xtables lock taken", "a table observed", "a table observed (2)", "networks planned",
         "rules planned", "a table committed", "a table committed (2)", STAMP)


def rounds_of(marks):
    """[(event read time or None, [(step, time)] of the round from its beginning)] of the
    rounds that added an address, in order."""
    out = []
    last_read = {}
    current = {}
    for step, at, thread in marks:
        if step == "event read":
            last_read[thread] = at
        elif step == "round begins":
            current[thread] = (last_read.pop(thread, None), [(step, at)])
        elif thread in current:
            read, steps = current[thread]
            steps.append((step, at))
            if step == "round over (status recorded)":
                del current[thread]
                if any(s == STAMP for s, _t in steps):
                    out.append((read, numbered(steps)))
    return out


def cut(sample_ms, create_ms, read, steps):
    """{interval: seconds} of one bridge: t0 is its stamp less its latency."""
    at = dict(steps)
    stamp = at[STAMP]
    t0 = stamp - sample_ms / 1000.0
    created = t0 + create_ms / 1000.0
    out = {"the creating call (ip link add, set up)": created - t0}
    begun = at["round begins"]
    if read is not None and read >= t0:
        out["until the monitor's read of the event returns"] = read - created
        out["read -> the round begins (decode, fold, hand-off)"] = begun - read
    previous = begun
    for step in ROUND:
        if step in at:
            out[step] = at[step] - previous
            previous = at[step]
    out["total (the latency)"] = stamp - t0
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description="trace a new bridge's latency step by step")
    parser.add_argument("--bridges", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("trace_latency.py: needs root")
    B.compile_agent()
    cuts, p50s = [], []
    load = os.getloadavg()[0]
    for _run in range(args.runs):
        res = B.Resources()
        try:
            out = os.path.join(res.workdir(), "marks.json")
            result = B.phase_latency(res, args.bridges,
                                     launcher=[sys.executable, TRACED, out])
            with open(out) as f:
                rounds = rounds_of(json.load(f))
        finally:
            res.close()
        samples, creates = result["samples_ms"], result["create_samples_ms"]
        if len(rounds) != len(samples):
            raise RuntimeError("%d rounds added an address for %d bridges: cannot match them"
                               % (len(rounds), len(samples)))
        p50s.append(result["p50_ms"])
        for sample, create, (read, steps) in zip(samples, creates, rounds):
            cuts.append(cut(sample, create, read, steps))
    print("latency of %d bridges made one at a time, %d run(s), load %.2f at the start, "
          "Python %s; p50 of each run: %s ms" % (args.bridges, args.runs, load,
                                                 sys.version.split()[0],
                                                 ", ".join("%.2f" % p for p in p50s)))
    print("%-52s | %9s | %9s" % ("step (traced; medians of each)", "median", "p90"))
    print("%s-+-%s-+-%s" % ("-" * 52, "-" * 9, "-" * 9))
    order = []
    for c in cuts:
        order.extend(k for k in c if k not in order)
    for key in order:
        values = sorted(c[key] for c in cuts if key in c)
        print("%-52s | %6.3f ms | %6.3f ms" % (key, statistics.median(values) * 1000,
                                               B.percentile(values, 90) * 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
