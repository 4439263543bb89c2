"""In-namespace half of the xapi-gateway benchmark.

run_bench.py starts this with ``ip netns exec NS python bench/driver.py MODE ...`` inside a
namespace it created, so that the bridges made here are that namespace's (as XAPI makes
them in Dom0: create the bridge, then set it up, over netlink). The driver never touches
any other namespace, sends no packets, and every loop is bounded in count and time.
It prints one JSON object on its last line of output.

Modes:
  latency  create bridges one at a time; after each, wait until the daemon's status.json
           says that bridge's gateway is "applied"; latency = since_monotonic - t0.
  burst    create every bridge as fast as possible, then wait until all are applied.
  seed     the seed way: per bridge, launch bench/seed-gateway.sh as udev would.
  script   the best a script can do (bench/baseline.py): per bridge, one ``ip addr add``
           and one ``iptables-restore --noflush`` of the daemon's rules for it, run at
           once after the bridge is made; latency = both done - t0.

Backends (``--backend``): ``linux-bridge`` makes Linux bridges over rtnetlink (the
requests ``ip link`` sends, without a process or pyroute2 around them);
``openvswitch`` makes Open vSwitch bridges as xcp-networkd does (``ovs-vsctl add-br``
with datapath_type=netdev and external_ids:xs-network-uuids, which returns once
ovs-vswitchd made the device, then the device set up) in the OVS at ``--ovsdb``.

Timing: t0 = time.monotonic() right before the call that creates the bridge (the netlink
call, or the ovs-vsctl run). CLOCK_MONOTONIC is system-wide, so the daemon's
since_monotonic compares with it.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

from agent.adapters import netlink as NL


def bridge_name(i):
    return "xapi%d" % i


def gateway_name(i):
    return "gw%d" % i


def gateway_cidr(i):
    return "10.%d.%d.1/24" % (100 + i // 256, i % 256)


class StatusReader(object):
    """Reads RUNTIME_DIR/status.json only when it changed (the daemon renames a new file
    into place, so a changed inode or mtime means a new status), and always while it is
    young: file times are coarse (a clock tick, ~4 ms), and an inode is reused by the
    file after next, so two statuses written within one tick can share (inode, mtime,
    size); trusting that key alone once hid an "applied" until the daemon's next periodic
    check, 10 s later."""

    YOUNG = 0.05  # seconds: a file this recent is read again at every poll

    def __init__(self, path):
        self.path = path
        self._key = None
        self.data = None

    def poll(self):
        """The newest status (or None if none yet); re-parses only a changed file."""
        try:
            st = os.stat(self.path)
        except OSError:
            return self.data
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key or time.time() - st.st_mtime < self.YOUNG:
            try:
                with open(self.path) as f:
                    data = json.load(f)
            except (IOError, OSError, ValueError):
                return self.data
            self._key = key
            self.data = data
        return self.data

    def gateways(self):
        data = self.poll() or {}
        return dict((gw["name"], gw) for gw in data.get("gateways", []))

    def wait_quiet(self, quiet=0.05, timeout=2.0):
        """Wait until the status file has not changed for ``quiet`` seconds (the daemon
        finished the rounds the previous bridge caused), at most ``timeout``."""
        deadline = time.monotonic() + timeout
        last_key, since = None, time.monotonic()
        while time.monotonic() < deadline:
            self.poll()
            if self._key != last_key:
                last_key, since = self._key, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return True
            time.sleep(0.005)
        return False


class LinuxBridges(object):
    """Bridges made with the two rtnetlink requests ``ip link add NAME type bridge`` and
    ``ip link set NAME up`` send, both encoded before t0, on a socket of their own.

    Until 2026-12-06 17:20 this was pyroute2's ``link("add")`` and ``link("set")``:
    ~0.6 ms of Python around each request (measured: both requests 0.13 ms raw, 0.72 ms
    through pyroute2, side by side), most of it before the kernel made the bridge or
    between the creation and the set-up, and all of it inside every latency measured
    here (the daemon's, the best script's and the seed's alike)."""

    def __init__(self, args):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NL.NETLINK_ROUTE)
        self.sock.bind((0, 0))

    def _request(self, seq, data, what):
        self.sock.send(data)
        pending = {seq: None}
        while pending[seq] is None:
            NL.acknowledgements(self.sock.recv(NL.RECV_SIZE), pending)
        if pending[seq]:
            raise OSError(pending[seq], "%s: %s" % (what, os.strerror(pending[seq])))

    def make(self, name):
        """Create bridge ``name`` and set it up, as XAPI does; returns t0 (monotonic time
        right before the creating request is sent) and the time both were acknowledged."""
        ifname = NL.attr(NL.IFLA_IFNAME, name.encode() + b"\0")
        add = NL.message(NL.RTM_NEWLINK, NL.NLM_F_ACK | NL.NLM_F_CREATE | NL.NLM_F_EXCL,
                         NL.IFINFOMSG.pack(NL.AF_UNSPEC, 0, 0, 0, 0) + ifname +
                         NL.attr(NL.IFLA_LINKINFO, NL.attr(NL.IFLA_INFO_KIND, b"bridge")))
        up = NL.message(NL.RTM_NEWLINK, NL.NLM_F_ACK,
                        NL.IFINFOMSG.pack(NL.AF_UNSPEC, 0, 0, NL.IFF_UP, NL.IFF_UP) + ifname)
        t0 = time.monotonic()
        self._request(add[0], add[1], "ip link add %s type bridge" % name)
        self._request(up[0], up[1], "ip link set %s up" % name)
        return t0, time.monotonic()

    def close(self):
        self.sock.close()


class OvsBridges(object):
    def __init__(self, args):
        from agent.xapisim.ovs import Ovs
        self.ovs = Ovs(args.ovsdb)  # a client of the OVS running in this namespace

    def make(self, name):
        """As xcp-networkd: add-br (returns once the device exists), then set it up."""
        t0 = time.monotonic()
        self.ovs.add_bridge(name, {"xs-network-uuids": "bench-%s" % name})
        return t0, time.monotonic()

    def close(self):
        pass


BACKENDS = {"linux-bridge": LinuxBridges, "openvswitch": OvsBridges}


def wait_applied(reader, names, timeout, interval=0.001):
    """Poll until every gateway in ``names`` is applied; returns {name: gw} (missing
    names were not applied in time)."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    done = {}
    while pending and time.monotonic() < deadline:
        gws = reader.gateways()
        for name in list(pending):
            gw = gws.get(name)
            if gw is not None and gw.get("state") == "applied":
                done[name] = gw
                pending.discard(name)
        if pending:
            time.sleep(interval)
    return done


def counters(reader):
    data = reader.poll() or {}
    return {"rounds": data.get("rounds"), "writes": data.get("writes"),
            "iptables_commits": data.get("iptables_commits")}


def mode_latency(args):
    bridges = BACKENDS[args.backend](args)
    reader = StatusReader(args.status)
    reader.wait_quiet(quiet=0.2, timeout=5.0)
    before = counters(reader)
    samples = []
    timeouts = []
    deadline = time.monotonic() + args.budget
    for i in range(args.start, args.start + args.count):
        if time.monotonic() > deadline:
            timeouts.append("budget exhausted before %s" % bridge_name(i))
            break
        t0, created = bridges.make(bridge_name(i))
        done = wait_applied(reader, [gateway_name(i)], timeout=args.timeout)
        gw = done.get(gateway_name(i))
        if gw is None:
            timeouts.append(bridge_name(i))
            continue
        samples.append({"bridge": bridge_name(i), "latency": gw["since_monotonic"] - t0,
                        "create": created - t0})
        # Let the daemon finish the follow-up rounds this bridge caused (its own address
        # and route come back as netlink events), so the next bridge meets an idle daemon.
        reader.wait_quiet(quiet=args.quiet, timeout=2.0)
    after = counters(reader)
    bridges.close()
    return {"samples": samples, "timeouts": timeouts, "before": before, "after": after}


def mode_burst(args):
    bridges = BACKENDS[args.backend](args)
    reader = StatusReader(args.status)
    reader.wait_quiet(quiet=0.2, timeout=5.0)
    before = counters(reader)
    t_first = None
    t_last = None
    t_created = None
    for i in range(args.start, args.start + args.count):
        t0, t_created = bridges.make(bridge_name(i))
        if t_first is None:
            t_first = t0
        t_last = t0
    names = [gateway_name(i) for i in range(args.start, args.start + args.count)]
    done = wait_applied(reader, names, timeout=args.timeout, interval=0.005)
    reader.wait_quiet(quiet=0.3, timeout=5.0)
    after = counters(reader)
    bridges.close()
    sinces = [gw["since_monotonic"] for gw in done.values()]
    return {"count": args.count, "applied": len(done),
            "missing": sorted(set(names) - set(done))[:10],
            "t_first": t_first, "t_last": t_last, "t_created": t_created,
            "creation_span": (t_created - t_first) if t_first is not None else None,
            "max_since": max(sinces) if sinces else None,
            "min_since": min(sinces) if sinces else None,
            "before": before, "after": after}


def mode_seed(args):
    """Per bridge: create it, then launch the seed script for it at once, as a udev RUN+=
    would (udev runs each event's program in its own worker, so bridges made in quick
    succession get their scripts in parallel). Latency = script exit - t0."""
    bridges = LinuxBridges(args)
    env = dict(os.environ, SEED_SLEEP=str(args.sleep))
    results = []
    lock = threading.Lock()

    def watch(proc, name, t0):
        out, err = proc.communicate()
        t_end = time.monotonic()
        with lock:
            results.append({"bridge": name, "latency": t_end - t0, "rc": proc.returncode,
                            "stderr": err[-300:]})

    threads = []
    for i in range(args.start, args.start + args.count):
        name = bridge_name(i)
        t0, _created = bridges.make(name)
        proc = subprocess.Popen(["bash", args.script, name, gateway_cidr(i)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True)
        thread = threading.Thread(target=watch, args=(proc, name, t0))
        thread.daemon = True
        thread.start()
        threads.append(thread)
        if not args.parallel:
            thread.join(args.timeout)
    deadline = time.monotonic() + args.timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    bridges.close()
    with lock:
        return {"samples": list(results), "launched": len(threads)}


def mode_script(args):
    """The fastest per-bridge script: the chains and jumps once (not timed), then per
    bridge: create it, ``ip addr add``, ``iptables-restore --noflush`` of its rules."""
    import baseline
    restore = [args.iptables_restore, "--noflush"]
    subprocess.run(restore, input=baseline.restore_text([], chains=True), check=True,
                   universal_newlines=True)
    bridges = LinuxBridges(args)
    samples = []
    for i in range(args.start, args.start + args.count):
        name = bridge_name(i)
        rules = baseline.restore_text([i], chains=False)
        t0, created = bridges.make(name)
        a = subprocess.run(["ip", "addr", "add", gateway_cidr(i), "dev", name],
                           stderr=subprocess.PIPE, universal_newlines=True)
        b = subprocess.run(restore, input=rules, stderr=subprocess.PIPE,
                           universal_newlines=True)
        t_end = time.monotonic()
        samples.append({"bridge": name, "latency": t_end - t0, "create": created - t0,
                        "rc": a.returncode or b.returncode,
                        "stderr": (a.stderr + b.stderr)[-300:]})
    bridges.close()
    return {"samples": samples}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("latency", "burst", "seed", "script"))
    parser.add_argument("--status", help="the daemon's status.json")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start", type=int, default=0, help="first bridge index")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for one gateway (latency) or all (burst, seed)")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="latency: stop creating bridges after this many seconds")
    parser.add_argument("--quiet", type=float, default=0.05,
                        help="latency: status.json must stay unchanged this long between bridges")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="linux-bridge",
                        help="latency, burst: what makes the bridges")
    parser.add_argument("--ovsdb", metavar="unix:PATH",
                        help="openvswitch: the OVSDB of the OVS running in this namespace")
    parser.add_argument("--script", help="seed: the seed script")
    parser.add_argument("--sleep", type=float, default=5, help="seed: SEED_SLEEP")
    parser.add_argument("--parallel", action="store_true",
                        help="seed: do not wait for one script before the next bridge")
    parser.add_argument("--iptables-restore", default="iptables-legacy-restore",
                        help="script: the iptables-restore to run")
    args = parser.parse_args(argv)
    if args.count < 1 or args.count > 5000:
        parser.error("--count must be 1..5000")
    if args.mode in ("latency", "burst") and not args.status:
        parser.error("--status is required for %s" % args.mode)
    if args.backend == "openvswitch" and not args.ovsdb:
        parser.error("--ovsdb is required with --backend openvswitch")
    if args.mode == "seed" and not args.script:
        parser.error("--script is required for seed")
    result = {"latency": mode_latency, "burst": mode_burst, "seed": mode_seed,
              "script": mode_script}[args.mode](args)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
