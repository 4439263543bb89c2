#!/usr/bin/env python3
"""Where one round's time goes when a bridge appears: the reconciler's steps timed alone.

    sudo .venv/bin/python bench/profile_round.py [--gateways 50] [--bridges 30]

In a namespace it creates (xgwb-<pid>-...) with the Dom0 firewall and GATEWAYS bridges
already applied, it makes BRIDGES more bridges one at a time (ip link add, set up, as
XAPI does) and runs the daemon's Reconciler on each with the real adapters (netlink,
libiptc, sysctl, the xtables lock; the netlink mirror kept by the monitor's events),
timing its steps: observe both tables, plan the network half (the gateways whose
bridges changed), plan the rules (incrementally, and in full where the incremental plan
cannot), each iptables commit, the netlink batch, and the record; and the same for the
follow-up round the daemon's own events bring (its commit changed the tables, so they
are walked again). It prints the median and the largest of each. It also times one
``ip address add`` process on a fresh bridge and on an old one (what the best script
pays for the same kernel work). No daemon process, no event loop: the daemon's
netlink monitor handing the event to the kernel thread, and the bridge's own creation,
are what the benchmark's latency adds on top.
"""
from __future__ import print_function

import argparse
import json
import os
import statistics
import sys

import run_bench as B  # re-executes under the venv if needed; sets up sys.path

SCRIPT = r'''
import json, os, subprocess, sys, tempfile, time
from collections import OrderedDict
from agent.adapters.iptables import Iptables, XtablesLock
from agent.adapters.netlink import Netlink, NetlinkMonitor, NetlinkView
from agent.adapters.statefile import StateFile
from agent.adapters.sysctl import Sysctl
from agent.core import model
from agent.core import planner as P
from agent.daemon.reconciler import Reconciler
from agent.daemon.sources import MergedSource, PlacedSource, StaticSource

n, m = int(sys.argv[1]), int(sys.argv[2])
def cidr(i):
    return "10.%d.%d.1/24" % (100 + i // 256, i % 256)
gateways = OrderedDict()
for i in range(n + m):
    gw = model.make_gateway("gw%d" % i, "xapi%d" % i, cidr(i))
    gateways[gw.name] = gw
subprocess.run(["ip", "-batch", "-"], check=True, input="".join(
    "link add xapi%d type bridge\nlink set xapi%d up\n" % (i, i) for i in range(n)).encode())
work = tempfile.mkdtemp()
view, netlink = NetlinkView(), Netlink()
reconciler = Reconciler(PlacedSource(MergedSource(StaticSource(gateways)), ""), view, netlink,
                        Iptables(), Sysctl(), XtablesLock(os.path.join(work, "lock")),
                        StateFile(work))
# the netlink mirror kept current by events, as in the daemon (a dump would make every
# object anew, and the planner compares what changed by identity first)
monitor = NetlinkMonitor(view, on_change=lambda names: None,
                         on_overflow=lambda: view.resync(netlink.dump))
monitor.start()
view.resync(netlink.dump)
def mirrored(predicate, what):
    deadline = time.monotonic() + 5
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("the netlink mirror never showed " + what)
        time.sleep(0.0002)
def settled(i):   # the daemon's own address and its connected route are in the mirror
    link = view.link("xapi%d" % i)
    if link is None:
        return False
    _g, _links, addresses, routes = view.snapshot()
    return (gateways["gw%d" % i].address in addresses.get(link.index, ())
            and any(r.ifindex == link.index for r in routes))
times = {}
collecting = [None]   # only the rounds of a new bridge: the prefix of their labels
def timed(owner, name, label):
    func = getattr(owner, name)
    def wrapper(*args, **kw):
        t = time.perf_counter()
        try:
            return func(*args, **kw)
        finally:
            if collecting[0] is not None:
                times.setdefault(collecting[0] + label, []).append(
                    (time.perf_counter() - t) * 1000)
    setattr(owner, name, wrapper)
reconciler.run_round()
mirrored(lambda: all(settled(i) for i in range(n)), "the first gateways applied")
reconciler.run_round()
timed(reconciler.iptables, "observe", "observe a table (fingerprint; walk if changed)")
timed(P, "plan_network", "plan the network half (gateways that changed)")
timed(P, "_plan_rules", "plan the rules (all gateways)")
timed(P, "_replan_rules", "plan the rules (gateways that became live; else all)")
timed(reconciler, "_plan", "_plan: all of the planning")
timed(reconciler.netlink, "apply", "netlink batch (address add)")
timed(reconciler.iptables, "apply", "iptables: load, append, commit (per table)")
timed(reconciler, "_record", "_record (status, state file)")
rounds, follow = [], []
for i in range(n, n + m):
    subprocess.run(["ip", "link", "add", "xapi%d" % i, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", "xapi%d" % i, "up"], check=True)
    mirrored(lambda: getattr(view.link("xapi%d" % i), "up", False), "xapi%d up" % i)
    collecting[0] = ""
    t = time.perf_counter()
    result = reconciler.run_round()
    rounds.append((time.perf_counter() - t) * 1000)
    assert result.ops >= 4 and not result.errors, result
    collecting[0] = None
    mirrored(lambda: settled(i), "xapi%d's address and route" % i)
    collecting[0] = "follow-up: "
    t = time.perf_counter()
    reconciler.run_round()   # the round the daemon's own events bring (its writes seen)
    follow.append((time.perf_counter() - t) * 1000)
    collecting[0] = None
def process(dev, address):
    t = time.perf_counter()
    subprocess.run(["ip", "address", "add", address, "dev", dev], check=True)
    return (time.perf_counter() - t) * 1000
fresh, old = [], []
for i in range(10):
    subprocess.run(["ip", "link", "add", "probe%d" % i, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", "probe%d" % i, "up"], check=True)
    fresh.append(process("probe%d" % i, "10.250.%d.1/24" % i))
    old.append(process("xapi0", "10.251.%d.1/32" % i))
print(json.dumps({"round": rounds, "follow": follow, "steps": times, "ip_fresh": fresh, "ip_old": old}))
'''


def main(argv=None):
    parser = argparse.ArgumentParser(description="time one round's steps for a new bridge")
    parser.add_argument("--gateways", type=int, default=50, help="bridges applied before")
    parser.add_argument("--bridges", type=int, default=30, help="new bridges, one at a time")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("profile_round.py: needs root")
    B.compile_agent()
    res = B.Resources()
    try:
        ns = res.netns("round")
        load = os.getloadavg()[0]
        out = ns.run([sys.executable, "-c", SCRIPT, str(args.gateways), str(args.bridges)],
                     env=dict(os.environ, PYTHONPATH=B.REPO))
        data = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        res.close()
    print("one round per new bridge, %d gateways applied before, %d new bridges, load %.2f"
          % (args.gateways, args.bridges, load))
    rows = [("the round, start to end", data["round"]),
            ("follow-up: the round, start to end", data["follow"])]
    rows += sorted(data["steps"].items())
    rows += [("`ip address add` process, fresh bridge", data["ip_fresh"]),
             ("`ip address add` process, old bridge", data["ip_old"])]
    width = max(len(label) for label, _v in rows)
    for label, values in rows:
        print("%-*s  median %7.3f ms  max %7.3f ms  (n=%d)"
              % (width, label, statistics.median(values), max(values), len(values)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
