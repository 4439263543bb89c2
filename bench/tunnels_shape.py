#!/usr/bin/env python3
"""What a pool change costs each daemon for networks that span the pool: the time of
agent.core.tunnels.shapes (the star of every spanning network, computed from the pool's
records on every host after each change of hosts, PIFs or tunnels), and the VXLAN ports
each host carries.

    .venv/bin/python bench/tunnels_shape.py                  # 8 hosts x 50 networks, 64 x 200
    .venv/bin/python bench/tunnels_shape.py --hosts 16 --networks 100 --repeat 50

Pure computation, no root: the records are built as XAPI holds them (a management PIF
with an address per host, one tunnel per host and network over it). The centers are
spread by pins (``xapi-gateway.host``, round robin) as gateways would spread them; then
the host with the most ports dies (``host_metrics.live`` false) and the shapes are
computed again: the ports move to the next centers.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent.core import desired, tunnels  # noqa: E402


def records(hosts, networks, pinned=True):
    recs = {"host": {}, "host_metrics": {}, "network": {}, "PIF": {}, "tunnel": {}}
    uuids = ["%08x-0000-4000-8000-%012x" % (n, n) for n in range(1, hosts + 1)]
    for n, uuid in enumerate(uuids, 1):
        recs["host_metrics"]["m%d" % n] = {"live": True}
        recs["host"]["h%d" % n] = {"uuid": uuid, "name_label": "host-%d" % n,
                                   "enabled": True, "metrics": "m%d" % n,
                                   "software_version": {"network_backend": "openvswitch"}}
        recs["PIF"]["e%d" % n] = {"device": "eth0", "host": "h%d" % n, "network": "eth0",
                                  "IP": "10.%d.%d.%d" % (n >> 16, (n >> 8) & 255, n & 255),
                                  "MTU": 1500, "management": True, "currently_attached": True}
    for k in range(1, networks + 1):
        config = {desired.VNI: str(k)}
        if pinned:
            config[desired.ADDRESS] = "10.200.%d.1/24" % (k % 250)
            config[desired.HOST] = uuids[(k - 1) % hosts]
        recs["network"]["n%d" % k] = {"uuid": "net-%06d" % k, "name_label": "net-%d" % k,
                                      "bridge": "xapi%d" % k, "MTU": 1450,
                                      "other_config": config}
        for n in range(1, hosts + 1):
            access = "a%d-%d" % (k, n)
            recs["PIF"][access] = {"device": "tunnel%d" % k, "host": "h%d" % n,
                                   "network": "n%d" % k, "IP": "", "MTU": -1,
                                   "currently_attached": True}
            recs["tunnel"]["t%d-%d" % (k, n)] = {"access_PIF": access,
                                                 "transport_PIF": "e%d" % n}
    return recs, uuids


def timed(recs, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        shapes = tunnels.shapes(recs)
        times.append(time.perf_counter() - started)
    return shapes, statistics.median(times) * 1000, max(times) * 1000


def per_host(shapes, uuids):
    return [len(tunnels.ports_on(shapes, u)) for u in uuids]


def run(hosts, networks, repeat):
    recs, uuids = records(hosts, networks)
    shapes, median, worst = timed(recs, repeat)
    ports = per_host(shapes, uuids)
    print("%3d hosts x %3d networks: shapes %.1f ms (median of %d, max %.1f); ports per host "
          "min %d max %d, total %d (= 2 x networks x (hosts - 1): %d)"
          % (hosts, networks, median, repeat, worst, min(ports), max(ports), sum(ports),
             2 * networks * (hosts - 1)))
    busiest = max(range(hosts), key=lambda i: ports[i])
    recs["host_metrics"]["m%d" % (busiest + 1)]["live"] = False
    shapes, median, worst = timed(recs, repeat)
    after = per_host(shapes, uuids)
    moved = sum(1 for s in shapes.values() if s.center and s.center.uuid != uuids[busiest]
                and s.reason.startswith("the network's gateway host (pinned to"))
    print("    host-%d (%d ports) dies: shapes %.1f ms; its %d centers moved; ports per "
          "live host min %d max %d, total %d" % (
              busiest + 1, ports[busiest], median, moved,
              min(p for i, p in enumerate(after) if i != busiest),
              max(after), sum(after)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int)
    parser.add_argument("--networks", type=int)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    sizes = [(args.hosts, args.networks)] if args.hosts and args.networks else \
        [(8, 50), (64, 200)]
    for hosts, networks in sizes:
        run(hosts, networks, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
