#!/usr/bin/env python3
"""Where the daemon's memory goes, with N gateways applied.

    sudo .venv/bin/python bench/memory.py [--gateways 1000] [--trace 1] [--api 20]

In a namespace it creates (xgwb-<pid>-...) with N bridges present, the daemon starts with
N gateways to apply (through bench/memprobe_daemon.py). Once all are applied (and, with
``--api K``, after K requests of GET /v1/gateways and /v1/health on its Unix socket) it
prints the daemon's VmRSS and VmHWM, its resident memory per mapping
(``/proc/PID/smaps``: the heap, anonymous mappings, the interpreter, each shared library),
then asks the daemon for a dump (SIGUSR1): the modules it imported, the objects the
collector sees by type, the deep size of its long-lived structures and, with ``--trace
FRAMES``, tracemalloc's live allocations by file and by line. Tracing adds its own memory:
the RSS printed first is from a daemon without it (``--trace 0``, the default); run again
with ``--trace 1`` for the allocations.
"""
from __future__ import print_function

import argparse
import json
import os
import signal
import socket
import sys
import time

import run_bench as B  # re-executes under the venv if needed; sets up sys.path

PROBE = os.path.join(B.BENCH, "memprobe_daemon.py")


def smaps(pid):
    """[(rss kB, mapping)] summed per mapping name (anonymous ones as [anon])."""
    sums = {}
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):
                parts = line.split()
                name = parts[5] if len(parts) > 5 else "[anon]"
            elif head == "Rss:":
                sums[name] = sums.get(name, 0) + int(line.split()[1])
    return sorted(((kb, n) for n, kb in sums.items()), reverse=True)


def summarize_malloc_info(xml):
    """One line per glibc arena of malloc_info's XML: in use? the system's, free chunks."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return "  " + xml[:200]
    lines = []
    for heap in root.findall("heap") + [root]:
        def total(tag, kind):
            return sum(int(e.get("size", 0)) for e in heap.findall(tag) if e.get("type") == kind)
        lines.append("  %s: system %.1f MB, free (fast %.1f + rest %.1f) MB, mmapped %.1f MB"
                     % ("arena %s" % heap.get("nr") if heap is not root else "all",
                        total("system", "current") / 1048576.0,
                        total("total", "fast") / 1048576.0,
                        total("total", "rest") / 1048576.0,
                        total("total", "mmap") / 1048576.0))
    return "\n".join(lines)


def get(path, url):
    """One GET over the Unix socket; the answer's length."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % url).encode())
    n = 0
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        n += len(chunk)
    s.close()
    return n


def main(argv=None):
    parser = argparse.ArgumentParser(description="where the daemon's memory goes")
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--trace", type=int, default=0, metavar="FRAMES",
                        help="tracemalloc with this many frames (0: off)")
    parser.add_argument("--api", type=int, default=0, metavar="K",
                        help="K requests of each API case before measuring")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", help="also write the dump here")
    parser.add_argument("--restart", action="store_true",
                        help="measure a second daemon started on the converged state "
                             "(what a restart finds) instead of the first")
    parser.add_argument("--interval", default="10", help="check_interval (default 10)")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds between all applied and the measure (default 0.5, "
                             "as run_bench.py; more lets idle checks run first)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("memory.py: needs root")
    n = args.gateways
    res = B.Resources()
    try:
        ns = res.netns("mem")
        wd = res.workdir()
        indices = list(range(n))
        B.create_bridges_batch(ns, indices)
        out = os.path.join(wd, "dump.json")
        launcher = [sys.executable, PROBE, out] + (["--trace", str(args.trace)]
                                                   if args.trace else [])
        d = B.BenchDaemon(ns, wd, B.gateways_config(indices),   # Linux bridges (network.conf)
                          agent_opts={"check_interval": args.interval, "log_level": "info"},
                          launcher=launcher)
        res.daemons.append(d)
        if args.restart:
            d.start(timeout=300)
            if B.wait_status(d, B.all_applied(B.gateway_name(i) for i in indices),
                             300) is None:
                sys.exit("memory.py: not all %d gateways applied" % n)
            d.stop()
        load = os.getloadavg()[0]
        d.start(wait_ready=False)
        d.wait_notify("READY=1", timeout=300)
        if B.wait_status(d, B.all_applied(B.gateway_name(i) for i in indices), 300) is None:
            sys.exit("memory.py: not all %d gateways applied" % n)
        time.sleep(args.settle)
        pid = d.proc.pid
        mem = B.rss_kb(pid)
        print("%d gateways applied (load %.2f%s): VmRSS %.1f MB, VmHWM %.1f MB"
              % (n, load, ", tracemalloc on: RSS includes its own" if args.trace else "",
                 mem["VmRSS"] / 1024.0, mem["VmHWM"] / 1024.0))
        if args.api:
            sock = os.path.join(d.runtime_dir, "api.sock")
            sizes = [get(sock, "/v1/gateways") for _ in range(args.api)]
            sizes += [get(sock, "/v1/health") for _ in range(args.api)]
            mem = B.rss_kb(pid)
            print("after %d API requests (%d bytes): VmRSS %.1f MB, VmHWM %.1f MB"
                  % (len(sizes), sum(sizes), mem["VmRSS"] / 1024.0, mem["VmHWM"] / 1024.0))
        maps = smaps(pid)
        print("\nresident per mapping (kB, from /proc/%d/smaps; total %d):" % (
            pid, sum(kb for kb, _ in maps)))
        for kb, name in maps[:args.top]:
            print("  %7d  %s" % (kb, name))
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while not os.path.exists(out) and time.monotonic() < deadline:
            time.sleep(0.1)
        with open(out) as f:
            data = json.load(f)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(data, f, indent=1)
        print("\nbefore the dump: %s; after malloc_trim(0) (%.2f ms): %s" % (
            ", ".join("%s %s" % kv for kv in sorted(data["status"].items())
                      if kv[0] in ("VmRSS", "RssAnon")), data["malloc_trim_s"] * 1000,
            ", ".join("%s %s" % kv for kv in sorted(data["status_after_trim"].items()))))
        print("\n%d modules imported; %d objects tracked by the collector (%d were frozen)"
              % (len(data["modules"]), data["gc_objects"], data["frozen"]))
        print("\nlong-lived structures (deep size, each object counted once, kB):")
        for what, size in sorted(data["structures"].items(), key=lambda kv: -kv[1]):
            print("  %8.1f  %s" % (size / 1024.0, what))
        print("\ncollector-tracked objects by type (count, shallow kB):")
        for name, count, size in data["by_type"][:args.top]:
            print("  %8d %8.1f  %s" % (count, size / 1024.0, name))
        print("\n%d threads; pymalloc:" % len(data["threads"]))
        print("  " + data["allocators"]["pymalloc"].replace("\n", "\n  ").rstrip())
        print("\nglibc malloc_info, per arena (the last line: all):")
        print(summarize_malloc_info(data["allocators"]["malloc_info"]))
        if args.trace:
            cur, peak = data["traced"]
            print("\ntracemalloc: %.1f MB live, %.1f MB peak" % (cur / 1048576.0,
                                                              peak / 1048576.0))
            for key in ("by_file", "by_line"):
                print("\n%s (kB, blocks):" % key)
                for where, size, count in data[key][:args.top]:
                    print("  %8.1f %7d  %s" % (size / 1024.0, count, where))
        d.stop()
    finally:
        res.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
