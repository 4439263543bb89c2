#!/usr/bin/env python3
"""PNG plots of the benchmark's results (matplotlib: requirements/bench.txt).

    .venv/bin/python bench/plots.py RESULTS.json [OUTDIR]     (default bench/results)

run_bench.py --plots calls ``write`` on the results it just measured. Three figures:
  latency-cdf.png   bridge appears -> gateway complete: the daemon, the best script, the
                    seed's commands without their sleep (cumulative distribution);
  startup.png       start-up time against the number of gateways: the daemon beside
                    iptables-restore + ip -batch of the same rules and addresses;
  idle-check.png    the cost of one idle check against the number of gateways.
"""
from __future__ import print_function

import json
import os
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.join(BENCH, "results")


def available():
    """None if matplotlib can be used, else why not."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return ("matplotlib is not installed; for the plots: .venv/bin/pip install -r "
                "requirements/bench.txt")
    return None


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _subtitle(results):
    return "%s cpus, load %.2f at start, Python %s%s" % (
        results.get("cpus"), results.get("loadavg_at_start", 0.0), results.get("python"),
        ", --quick" if results.get("quick") else "")


def _plain(axis):
    """Tick labels of a log axis as plain numbers (3, 10, 40), not powers of ten."""
    from matplotlib.ticker import FuncFormatter
    fmt = FuncFormatter(lambda value, _pos: "%g" % value)
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(fmt)


def latency_cdf(results, path):
    series = []
    for key, label in (("latency", "xapi-gateway daemon"),
                       ("script", "best script: ip addr add + iptables-restore --noflush"),
                       ("seed", "seed script's commands, no sleep")):
        data = results.get(key) or {}
        samples = sorted(data.get("samples_ms") or ())
        if samples:
            series.append((label, samples))
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    for label, samples in series:
        n = len(samples)
        ax.step(samples, [(i + 1) / float(n) for i in range(n)], where="post",
                label="%s (p50 %.2f ms, n=%d)" % (label, samples[(n - 1) // 2], n))
    ax.set_xscale("log")
    _plain(ax.xaxis)
    ax.set_xlabel("bridge appears -> gateway complete (ms, log scale)")
    ax.set_ylabel("fraction of bridges")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _finish(plt, fig, ax, "Latency, one bridge at a time", results, path)


def _gateways_axes(ax, counts, ylabel):
    """Log-log axes over the numbers of gateways, ticked at the measured counts."""
    ax.set_xlabel("gateways")
    ax.set_ylabel(ylabel + " (log scale)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(counts)
    ax.set_xticklabels([str(n) for n in counts])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)


def _finish(plt, fig, ax, title, results, path):
    ax.set_title("%s\n%s" % (title, _subtitle(results)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _curve(results):
    return [p for p in results.get("curve") or () if p.get("daemon") and p.get("script")]


def startup(results, path):
    points = _curve(results)
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    daemon = [(p["bridges"], p["daemon"]["applied_s"]) for p in points
              if p["daemon"].get("applied_s") is not None]
    ax.plot([n for n, _ in daemon], [s for _, s in daemon], "o-",
            label="daemon: start -> all applied")
    ax.plot([p["bridges"] for p in points], [p["script"]["total_s"] for p in points], "s-",
            label="iptables-restore + ip -batch of the same")
    ax.plot([p["bridges"] for p in points], [2 * p["script"]["total_s"] for p in points], ":",
            color="grey", label="2x the script (goal)")
    _gateways_axes(ax, [p["bridges"] for p in points], "seconds")
    return _finish(plt, fig, ax, "Start-up with every gateway to apply", results, path)


def idle_check(results, path):
    points = [p for p in _curve(results) if p["daemon"].get("idle_median_ms") is not None]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    counts = [p["bridges"] for p in points]
    ax.plot(counts, [p["daemon"]["idle_median_ms"] for p in points], "o-",
            label="median idle round")
    ax.plot(counts, [p["daemon"]["idle_max_ms"] for p in points], "x--", alpha=0.6,
            label="slowest idle round")
    ax.axhline(5.0, color="grey", linestyle=":", label="goal at 1000: 5 ms")
    _gateways_axes(ax, counts, "ms per check, 0 writes")
    return _finish(plt, fig, ax, "Idle check (nothing to change)", results, path)


def write(results, outdir=DEFAULT_DIR):
    """Write the plots the results have data for; returns their paths."""
    if not os.path.isdir(outdir):
        os.makedirs(outdir)
    written = []
    for name, draw in (("latency-cdf.png", latency_cdf), ("startup.png", startup),
                       ("idle-check.png", idle_check)):
        path = draw(results, os.path.join(outdir, name))
        if path:
            written.append(path)
    return written


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or len(argv) > 2:
        sys.exit("usage: plots.py RESULTS.json [OUTDIR]")
    why = available()
    if why:
        sys.exit("plots.py: %s" % why)
    with open(argv[0]) as f:
        results = json.load(f)
    for path in write(results, argv[1] if len(argv) > 1 else DEFAULT_DIR):
        print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
