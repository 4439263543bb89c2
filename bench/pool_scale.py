#!/usr/bin/env python3
"""Spanning networks at pool scale: 8 simulated hosts x 50 networks that span the pool,
each with a gateway; how long until every host's daemon has made its VXLAN ports, how
many ports each host holds, and how long until the star and the gateways have moved after
the serving (center) host is shut down.

    sudo .venv/bin/python bench/pool_scale.py                    # 8 x 50, 3 failovers
    sudo .venv/bin/python bench/pool_scale.py --hosts 4 --networks 10 --rounds 2

The XAPI simulator runs as a pool (tests/integration/pool.py's Lab: each host a network
namespace with its own Open vSwitch, one xapi-gateway daemon per host namespace on the
pool's XAPI). The networks are made as the API does it (agent.service.networks, ``span:
pool``: network.create, a VNI, tunnel.create vxlan on every host) with a gateway
10.231.<i>.1/24 each. Measured:
- build: from the last network's creation returning (and from the first one's start)
  until every daemon's status agrees on every network's star, says its ports are
  applied, and each host's OVSDB holds exactly those ports of the daemon
  (``ovs-vsctl find Port external_ids:xapi-gateway-kind=tunnel``, one call a host);
- ports per host, as each host's OVSDB holds them: the center (hub) of a network has a
  port to every other host, a spoke one port to the hub;
- each round shuts the host that is the center of the most networks down through XAPI
  (``host.disable`` then ``host.shutdown``) and measures, from host.disable: agree (every
  remaining daemon names the same live center for every network), ports (the new star
  in every remaining host's OVSDB), named (every gateway named to one live host by every
  remaining daemon), served once (and its address on that host's bridge, on no other).
Each round shuts one more host down, so the rounds are few (default 3, to stay within
~5 minutes on a loaded machine): p99 over few rounds is their max, and is labelled so.
The state is sampled in a loop (status files each turn; the OVSDB and addresses, one
subprocess a host, once the status agrees), so a figure is late by up to one turn.

Namespaces are named xgwb-<pid>-<n>-pool-...; all of them go at the end, also on an
error or Ctrl-C. No packet leaves them.
"""
import collections
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from agent.core import tunnels  # noqa: E402
from agent.service.networks import Networks  # noqa: E402
from agent.xapisim import ovs  # noqa: E402
from tests.integration import netns as N  # noqa: E402
from tests.integration.pool import Lab  # noqa: E402
from pool_failover import parse, percentile  # noqa: E402  (bench/, the script's directory)


def gateway(i):
    return "10.231.%d.1/24" % i


def status_agrees(live, uuids):
    """{network uuid: its status entry (of the first live host)} when every live daemon
    agrees on every network's center and ports per host, the center is live, and each
    says its own ports are applied; also {host number: [port names it should have]}.
    (None, None) otherwise."""
    live_uuids = {h.uuid for h in live}
    shapes, wanted = {}, {}
    for host in live:
        entries = {e["network"]: e for e in (host.daemon.status() or {}).get("tunnels", [])}
        names = []
        for uuid in uuids:
            entry = entries.get(uuid)
            if entry is None or entry["center"] not in live_uuids:
                return None, None
            if entry["here"] and entry.get("here_state") != "applied":
                return None, None
            shape = (entry["center"], tuple((p["host"], p["ports"]) for p in entry["ports"]
                                            if p["host"] in live_uuids))
            if shapes.setdefault(uuid, shape) != shape:
                return None, None
            names.extend(p["name"] for p in entry["here"])
        wanted[host.number] = sorted(names)
    return shapes, wanted


def ovs_ports(host):
    """The names of the daemon's tunnel ports in the host's OVSDB (None on an error)."""
    try:
        out = host.ovs.vsctl("--bare", "--columns=name", "find", "Port",
                             "external_ids:xapi-gateway-kind=%s" % tunnels.KIND)
    except ovs.OvsError:
        return None
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def ports_match(live, wanted):
    return all(ovs_ports(h) == wanted[h.number] for h in live)


def addresses(host):
    """{address/prefix: [devices]} of the host namespace."""
    out = host.ns.run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
    found = collections.defaultdict(list)
    for line in out.splitlines():
        fields = line.split()
        found[fields[3]].append(fields[1])
    return found


def served(lab, live, names, bridges):
    """2 when every gateway is named to the same live host by every live daemon and its
    address is on that host's bridge and on no other host; 1 when only named so; 0."""
    serving = {}
    for host in live:
        gateways = {g["name"]: g.get("host") for g in (host.daemon.status() or {})
                    .get("gateways", [])}
        for name in names:
            if serving.setdefault(name, gateways.get(name)) != gateways.get(name):
                return 0
    by_uuid = {h.uuid: h for h in live}
    if any(serving[name] not in by_uuid for name in names):
        return 0
    carried = {h.number: addresses(h) for h in live}
    for i, name in enumerate(names):
        for number, found in carried.items():
            here = bridges[name] in found.get(gateway(i), [])
            if here != (number == by_uuid[serving[name]].number):
                return 1
    return 2


def count_ports(lab, live, shapes):
    """{host number: (ports in its OVSDB, networks it is the center of)}."""
    centers = collections.Counter(center for center, _ in shapes.values())
    return {h.number: (len(ovs_ports(h) or ()), centers.get(h.uuid, 0)) for h in live}


def run(hosts, networks, rounds, backend, interval):
    lab = Lab(hosts, backend, prefix="xgwb-%d-1-pool" % os.getpid())
    results = {"rounds": []}
    try:
        api = lab.api()
        for host in lab.hosts:
            lab.start_daemon(host.number, agent_opts={"log_level": "info"})
        service = Networks(api)
        names = ["span%02d" % i for i in range(networks)]
        uuids, bridges = [], {}
        first = time.monotonic()
        for i, name in enumerate(names):
            rec = service.create(name, gateway={"address": gateway(i)}, span="pool")
            uuids.append(rec["uuid"])
            bridges[name] = rec["bridge"]
        last = time.monotonic()
        live = list(lab.hosts)
        deadline = last + 300
        while True:
            shapes, wanted = status_agrees(live, uuids)
            if shapes is not None and ports_match(live, wanted):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the spanning networks were not in place in 300 s")
            time.sleep(interval)
        done = time.monotonic()
        results.update(create=last - first, after_last=done - last, after_first=done - first,
                       ports=count_ports(lab, live, shapes))
        print("built: %d networks created in %.1f s; every host's ports applied %.2f s after "
              "the last one" % (networks, last - first, done - last), flush=True)
        N.wait_for(lambda: served(lab, live, names, bridges) == 2, timeout=120,
                   message="every gateway served once")
        for r in range(rounds):
            centers = collections.Counter(c for c, _ in shapes.values())
            center, hubbed = centers.most_common(1)[0]
            old = next(h for h in lab.hosts if h.uuid == center)
            live.remove(old)
            marks = {}
            started = time.monotonic()
            api.host.disable(old.ref)
            api.host.shutdown(old.ref)
            deadline = started + 120
            while len(marks) < 4 and time.monotonic() < deadline:
                now = time.monotonic()
                new_shapes, wanted = status_agrees(live, uuids)
                if new_shapes is not None:
                    marks.setdefault("agree", now - started)
                    if "ports" not in marks and ports_match(live, wanted):
                        marks["ports"] = now - started
                        shapes = new_shapes
                if "served" not in marks:
                    stage = served(lab, live, names, bridges)
                    if stage >= 1:
                        marks.setdefault("named", now - started)
                    if stage == 2:
                        marks["served"] = now - started
                time.sleep(interval)
            old.daemon.stop()  # gone with its host
            if len(marks) < 4:
                raise RuntimeError("round %d did not converge in 120 s: %s" % (r + 1, marks))
            results["rounds"].append(dict(marks, old=old.number, hubbed=hubbed))
            print("round %d: host %d (center of %d networks) shut down: agree %.2f s, ports "
                  "%.2f s, gateways named %.2f s, served once %.2f s" % (
                      r + 1, old.number, hubbed, marks["agree"], marks["ports"],
                      marks["named"], marks["served"]),
                  flush=True)
    finally:
        lab.close(check=False)
    return results


def options(parser):
    parser.add_argument("--networks", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.05,
                        help="pause between two samples (s)")


def main(argv=None):
    # VXLAN ports need Open vSwitch: no other backend
    parser, args = parse(argv, __doc__, "pool_scale.py", 3, ("openvswitch",), options)
    if not 1 <= args.networks <= 250:
        parser.error("--networks must be 1..250")
    started = time.monotonic()
    res = run(args.hosts, args.networks, args.rounds, args.backend, args.interval)
    rounds = res["rounds"]
    n = len(rounds)
    print("\n%d hosts x %d spanning networks (each with a gateway), %d failovers "
          "(%.0f s in all)" % (args.hosts, args.networks, n, time.monotonic() - started))
    print("%-58s %10s" % ("creating the networks (API's span pool, one after another)",
                          "%.1f s" % res["create"]))
    print("%-58s %10s" % ("xapi-gateway: every port applied, after the last created",
                          "%.2f s" % res["after_last"]))
    print("%-58s %10s" % ("xapi-gateway: every port applied, after the first started",
                          "%.2f s" % res["after_first"]))
    print("\nports per host in its OVSDB (the daemon's tunnel ports):")
    for number, (ports, hubbed) in sorted(res["ports"].items()):
        print("  host %d: %4d ports, center of %d networks" % (number, ports, hubbed))
    total = sum(p for p, _ in res["ports"].values())
    print("  in all: %d ports (a full mesh would be %d)" % (
        total, args.networks * args.hosts * (args.hosts - 1)))
    p99 = "p99" if n >= 100 else "p99 (= max of %d)" % n
    print("\n%-52s %9s %18s" % ("after the center host is shut down through XAPI", "p50", p99))
    for key, label in (("agree", "every daemon names the new centers"),
                       ("ports", "the new star in every host's OVSDB"),
                       ("named", "every daemon names one host a gateway"),
                       ("served", "every gateway served once")):
        values = [r[key] for r in rounds]
        print("%-52s %8.2fs %17.2fs" % ("xapi-gateway: " + label, percentile(values, 50),
                                        percentile(values, 99)))
    print("%-52s %9s" % ("by hand (no daemon): ports to make with ovs-vsctl", total))
    print("%-52s %9s" % ("by hand: after the center dies, the star and gateways", "never"))
    print("%-52s %9s" % ("  (VMs on the networks it centered cut off until someone", ""))
    print("%-52s %9s" % ("   re-makes every port and moves every gateway)", "minutes"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
