#!/usr/bin/env python3
"""Placement convergence in a simulated pool: how long until every host agrees on the new
gateway host after the serving host goes down, and until traffic flows through it.

    sudo .venv/bin/python bench/pool_failover.py                # 8 hosts, 5 failovers
    sudo .venv/bin/python bench/pool_failover.py --hosts 4 --rounds 2

The XAPI simulator runs as a pool (``--hosts N --bridges``: each host a network namespace
with its own Open vSwitch, the hosts' eth0 on one underlay), one xapi-gateway daemon per
host namespace on the pool's XAPI (tests/integration/pool.py). A VLAN network on every
host's eth0 carries a gateway; a VM namespace on the host that will be shut down last
pings the underlay's own address (the outside) through it. Each round shuts the serving
host down through XAPI (``host.disable`` then ``host.shutdown``, as ``xe host-shutdown``
needs) and measures, from the host.disable call:
- agree: every remaining daemon's status names the same new host;
- address: the gateway address on the new host's bridge, and on no other;
- ping: the first ping from the VM that succeeds through the new host;
and the most hosts seen carrying the address at once while the round ran.

Namespaces are named xgwb-<pid>-<n>-pool-...; all of them go at the end, also on an
error or Ctrl-C. No packet leaves them.
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tests.integration import netns as N  # noqa: E402
from tests.integration.pool import Lab  # noqa: E402

GATEWAY = "172.16.1.1/24"
VLAN_TAG = 102


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]


def carriers(lab, bridge):
    return [h.number for h in lab.hosts if GATEWAY in h.ns.addresses(bridge)]


def agreed(lab, live):
    """The number of the host every live daemon names for the gateway, else None."""
    named = {(h.daemon.gateway_state("vlan") or {}).get("host") for h in live}
    if len(named) != 1:
        return None
    [uuid] = named
    return next((h.number for h in lab.hosts if h.uuid == uuid), None)


def run(hosts, rounds, backend):
    lab = Lab(hosts, backend, prefix="xgwb-%d-1-pool" % os.getpid())
    results = []
    try:
        api = lab.api()
        for host in lab.hosts:
            lab.start_daemon(host.number, agent_opts={"log_level": "info"})
        [eth0] = api.network.get_by_name_label("Pool-wide network associated with eth0")
        net = api.network.create({"name_label": "vlan", "other_config": {}})
        api.pool.create_VLAN_from_PIF(api.network.get_PIFs(eth0)[0], net, str(VLAN_TAG))
        bridge = api.network.get_bridge(net)
        api.network.add_to_other_config(net, "xapi-gateway.address", GATEWAY)
        order = sorted(lab.hosts, key=lambda h: h.uuid)  # the rule's order of servers
        vm = lab.plug_vm(order[-1].number, bridge, "172.16.1.10/24", GATEWAY.split("/")[0])
        live = list(lab.hosts)
        N.wait_for(lambda: agreed(lab, live) == order[0].number, timeout=30,
                   message="agreement on the first server")
        N.wait_for(lambda: lab.pings(vm, lab.outside), timeout=30, message="the way out")
        for r in range(rounds):
            old, new = order[r], order[r + 1]
            live.remove(old)
            most = 0
            marks = {}
            started = time.monotonic()
            api.host.disable(old.ref)
            api.host.shutdown(old.ref)
            deadline = started + 120
            while len(marks) < 3 and time.monotonic() < deadline:
                if "agree" not in marks and agreed(lab, live) == new.number:
                    marks["agree"] = time.monotonic() - started
                carrying = carriers(lab, bridge)
                most = max(most, len(carrying))
                if "address" not in marks and carrying == [new.number]:
                    marks["address"] = time.monotonic() - started
                if "ping" not in marks and lab.pings(vm, lab.outside, wait=0.2):
                    marks["ping"] = time.monotonic() - started
            old.daemon.stop()  # gone with its host
            if len(marks) < 3:
                raise RuntimeError("round %d did not converge in 120 s: %s" % (r + 1, marks))
            results.append(dict(marks, old=old.number, new=new.number, most=most))
            print("round %d: host %d -> host %d: agree %.3f s, address %.3f s, ping %.3f s, "
                  "carriers at once <= %d" % (r + 1, old.number, new.number, marks["agree"],
                                              marks["address"], marks["ping"], most),
                  flush=True)
    finally:
        lab.close(check=False)
    return results


def parse(argv, doc, script, rounds, backends, extra=None):
    """The options of a pool benchmark (this one's and bench/pool_scale.py's): --hosts,
    --rounds, --backend and what ``extra(parser)`` adds; exits unless run as root."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=rounds,
                        help="failovers (each shuts one more host down; at most hosts - 2)")
    parser.add_argument("--backend", choices=backends, default="openvswitch")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("%s needs root (network namespaces)" % script)
    if not 1 <= args.rounds <= args.hosts - 2:
        parser.error("--rounds must be 1..hosts-2")
    return parser, args


def main(argv=None):
    _parser, args = parse(argv, __doc__, "pool_failover.py", 5, ("openvswitch", "bridge"))
    started = time.monotonic()
    results = run(args.hosts, args.rounds, args.backend)
    print("\n%d hosts on %s, %d failovers (%.0f s in all)" % (
        args.hosts, args.backend, len(results), time.monotonic() - started))
    print("%-46s %9s %9s" % ("after the serving host is shut down through XAPI", "p50", "max"))
    for key, label in (("agree", "every daemon names the new host"),
                       ("address", "address on the new host only"),
                       ("ping", "first ping through the new host")):
        values = [r[key] for r in results]
        print("%-46s %8.3fs %8.3fs" % ("xapi-gateway: " + label, percentile(values, 50),
                                       max(values)))
    print("%-46s %9s" % ("xapi-gateway: most hosts carrying it at once",
                         max(r["most"] for r in results)))
    print("%-46s %9s" % ("without it: the gateway on the dead host", "never"))
    print("%-46s %9s" % ("  moved by hand (notice, pick, ip+iptables)", "minutes"))
    print("%-46s %9s" % ("  host_metrics.live of a host that just dies", "~600 s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
