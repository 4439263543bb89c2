#!/usr/bin/env python3
"""xapi-gateway benchmark: prints measured figures next to the project's goals.

    sudo .venv/bin/python bench/run_bench.py [--quick] [--json PATH] [--backend B]

Run as root from a clone, with an interpreter that has the agent's dependencies
(pyroute2, python-iptables). Everything happens inside network namespaces this script
creates (named xgwb-<pid>-...) and deletes at the end, also on error or Ctrl-C; the
daemons and scripts it starts run inside them and are killed with them. Nothing is sent to
any address, and no interface of the host is touched.

Phases (each in a fresh namespace with a Dom0-like firewall loaded, and a fresh daemon):
  1. latency  200 bridges (quick: 50) created one at a time: bridge appears -> gateway
              applied (the daemon's since_monotonic - t0 before the creating netlink call).
  2. burst    500 bridges created at once: all applied after the last one,
              and the iptables commits that took.
     Phases 1 and 2 run on Linux bridges and on Open vSwitch bridges (--backend both,
     the default): a private ovsdb-server + ovs-vswitchd in the phase's namespace, bridges
     made as xcp-networkd makes them (ovs-vsctl add-br, userspace datapath), 200 bridges
     in the OVS burst (quick: 100: each add-br waits for ovs-vswitchd, ~30-50 ms).
  3. startup  1000 bridges present, 1000 gateways configured, nothing applied: start ->
              READY=1 -> all applied; RSS; then a daemon with check_interval 1 on the
              converged state: duration of its idle rounds and its writes (must stay 0).
  4. seed     bench/seed-gateway.sh (the udev-run script): real 5 s sleep for 3 bridges,
              then SEED_SLEEP=0 for 50 bridges one at a time (quick: 20).
After phases 1-3 the result is checked from outside (iptables-legacy-save, ip addr,
ip route): address, route, 1 MASQUERADE and 2 FORWARD rules per bridge, no duplicates.
"""
from __future__ import print_function

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import shutil
import tempfile
import time
import traceback

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
DRIVER = os.path.join(BENCH, "driver.py")
SEED_SCRIPT = os.path.join(BENCH, "seed-gateway.sh")
NEEDED_TOOLS = ("ip", "iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore",
                "bash", "sysctl", "grep")

# Goals, from issue 15 ("Performance near the limit").
GOAL_P50_MS = 2.0
GOAL_P99_MS = 10.0
GOAL_BURST_S = 0.5
GOAL_STARTUP_S = 0.5
GOAL_STARTUP_VS_SCRIPT = 2.0  # start-up within 2x of iptables-restore + ip -batch
GOAL_IDLE_MS = 5.0
GOAL_RSS_MB = 50.0
GOAL_API_GATEWAYS_RPS = 5000.0   # GET /v1/gateways at 1000 gateways, the daemon on one core
GOAL_API_P99_MS = 5.0
GOAL_API_HEALTH_RPS = 10000.0
APILOAD = os.path.join(BENCH, "apiload.py")
API_PORT = 8443   # inside the phase's own namespace
API_TOKEN = "r" * 48

FULL = {"latency": 200, "burst": 500, "burst_ovs": 200, "startup": 1000, "seed_sleep": 3,
        "seed_nosleep": 50, "idle_rounds": 5, "idle_budget": 20.0, "script": 200,
        "counts": [100, 250, 500, 1000, 2000, 4000], "api_seconds": 5}
QUICK = {"latency": 50, "burst": 500, "burst_ovs": 100, "startup": 1000, "seed_sleep": 3,
         "seed_nosleep": 20, "idle_rounds": 3, "idle_budget": 12.0, "script": 50,
         "counts": [100, 1000, 2000], "api_seconds": 2}
LINUX, OVS = "linux-bridge", "openvswitch"
OVS_SUFFIX = "@openvswitch"  # results key of a phase on Open vSwitch bridges


def _reexec_with_dependencies():
    """Re-run under an interpreter that has pyroute2 and iptc (the daemon runs under
    sys.executable): $XGW_PYTHON, then the repository's .venv."""
    try:
        import pyroute2  # noqa: F401
        import iptc  # noqa: F401
        return
    except Exception:
        pass
    candidates = [os.environ.get("XGW_PYTHON"), os.path.join(REPO, ".venv", "bin", "python"),
                  os.path.join(REPO, ".venv-oldest", "bin", "python")]
    for python in candidates:
        if python and os.path.exists(python) and \
                os.path.realpath(python) != os.path.realpath(sys.executable):
            os.execv(python, [python] + sys.argv)
    sys.exit("run_bench.py: this interpreter lacks pyroute2/python-iptables; run it with the "
             "project's venv (tests/run creates .venv) or set XGW_PYTHON")


_reexec_with_dependencies()
sys.path.insert(0, REPO)
from tests.integration import netns as N  # noqa: E402
# the driver runs inside the namespaces; both sides name bridges and gateways alike
from driver import bridge_name, gateway_cidr, gateway_name  # noqa: E402
from agent.xapisim import ovs as ovsmod  # noqa: E402
import baseline  # noqa: E402
import plots  # noqa: E402  (imports matplotlib only when drawing)


# ---- namespaces and clean-up ---------------------------------------------------------------
class BenchNetns(N.Netns):
    """The integration tests' Netns, named xgwb-<pid>-<n>-<role> for the benchmark."""

    _n = 0

    def __init__(self, role):
        BenchNetns._n += 1
        self.name = "xgwb-%d-%d-%s" % (os.getpid(), BenchNetns._n, role)
        N.run(["ip", "netns", "add", self.name])
        self.run(["ip", "link", "set", "lo", "up"])


class BenchDaemon(N.Daemon):
    """The integration tests' Daemon (whose reader drains the sd_notify socket all the
    time, as systemd does), answering ``wait_notify`` with the arrival time too.

    ``backend``: the Dom0 it stands for, said in a network.conf of its own (Linux bridges
    unless told: without one the daemon takes the host for an Open vSwitch one,
    XenServer's default, and keeps trying to reach an OVSDB that is not there);
    ``ovsdb``: that switch's remote, on Open vSwitch."""

    def __init__(self, ns, workdir, gateways=None, agent_opts=None, backend=LINUX, ovsdb=None,
                 **kwargs):
        conf = os.path.join(workdir, "network.conf")
        with open(conf, "w") as f:
            f.write("bridge\n" if backend == LINUX else "openvswitch\n")
        opts = {"network_conf": conf}
        if ovsdb is not None:
            opts["ovsdb"] = ovsdb
        opts.update(agent_opts or {})
        super(BenchDaemon, self).__init__(ns, workdir, gateways, agent_opts=opts, **kwargs)

    def wait_notify(self, what, timeout=20):
        """(arrival time, lines) of the first message carrying ``what``."""
        arrived, message = self.wait_notify_at(what, timeout)
        return arrived, message.split("\n")


class Resources(object):
    """Everything the run created: stopped and removed in reverse order, always."""

    def __init__(self, keep=False):
        self.keep = keep
        self.daemons = []
        self.namespaces = []
        self.workdirs = []
        self.switches = {}  # namespace name -> the private Open vSwitch running in it

    def netns(self, role):
        ns = BenchNetns(role)
        self.namespaces.append(ns)
        ns.run(["iptables-legacy-restore"], input=N.DOM0_FIREWALL)
        return ns

    def bridges(self, ns, backend):
        """The driver's arguments to make ``backend``'s bridges in ``ns`` (starting a
        private Open vSwitch there for openvswitch)."""
        if backend == LINUX:
            return ["--backend", LINUX]
        self.switches[ns.name] = ovsmod.Ovs.start(ns.name)
        return ["--backend", OVS, "--ovsdb", self.switches[ns.name].remote]

    def workdir(self):
        path = tempfile.mkdtemp(prefix="xgwb-")
        self.workdirs.append(path)
        return path

    def daemon(self, ns, workdir, gateways, check_interval, backend=LINUX, launcher=None):
        """A daemon as on a Dom0 of ``backend``: network.conf says it, and on Open vSwitch
        it keeps its OVSDB connection to the phase's switch (started first, by
        ``bridges``), as on a real host. ``launcher``: argv that runs it, before
        ``-c CONFIG`` (bench/traced_daemon.py's), else the daemon's own module."""
        d = BenchDaemon(ns, workdir, gateways, backend=backend,
                        ovsdb=self.switches[ns.name].remote if backend == OVS else None,
                        agent_opts={"check_interval": str(check_interval),
                                    "log_level": "info"},
                        launcher=launcher)
        self.daemons.append(d)
        return d

    def close_phase(self, ns, daemons):
        for d in daemons:
            try:
                d.stop()
            except Exception as exc:
                print("  (stopping a daemon: %s)" % exc)
        switch = self.switches.pop(ns.name, None)
        if switch is not None:
            switch.stop()
        ns.delete()
        if ns in self.namespaces:
            self.namespaces.remove(ns)

    def close(self):
        for d in reversed(self.daemons):
            try:
                d.stop(timeout=5)
            except Exception:
                pass
        for switch in self.switches.values():
            switch.stop()
        self.switches = {}
        for ns in reversed(self.namespaces):
            ns.delete()  # SIGKILLs whatever still runs in it, then removes it
        self.namespaces = []
        for path in self.workdirs:
            if self.keep:
                print("kept %s (daemon logs, config, status)" % path)
            else:
                shutil.rmtree(path, ignore_errors=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


# ---- helpers ---------------------------------------------------------------------------------
def gateway_net(i):
    return "10.%d.%d.0/24" % (100 + i // 256, i % 256)


def gateways_config(indices):
    gws = {}
    for i in indices:
        gws[gateway_name(i)] = {"bridge": bridge_name(i), "address": gateway_cidr(i),
                                "nat": "yes"}
    return gws


def percentile(values, q):
    """Nearest-rank percentile of ``values`` (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))  # ceil(q/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def run_driver(ns, args, timeout):
    proc = ns.run([sys.executable, DRIVER] + [str(a) for a in args], check=False,
                  timeout=timeout, env=dict(os.environ, PYTHONPATH=REPO))
    if proc.returncode != 0:
        raise RuntimeError("driver %s failed (%d): %s" % (args[0], proc.returncode,
                                                           proc.stderr[-2000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def delete_bridges(ns, indices):
    """Delete bridges one by one with one ``ip -batch``, before their namespace goes: the
    kernel then takes the rtnl lock per bridge, and the namespaces others create meanwhile
    do not wait for thousands at once (deleting a namespace with 4,000 bridges kept new
    ones waiting over a minute)."""
    ns.run(["ip", "-force", "-batch", "-"], check=False, timeout=600,
           input="".join("link del %s\n" % bridge_name(i) for i in indices))


def create_bridges_batch(ns, indices):
    """Create and set up bridges with one ``ip -batch`` (before a daemon starts)."""
    lines = []
    for i in indices:
        lines.append("link add %s type bridge" % bridge_name(i))
        lines.append("link set %s up" % bridge_name(i))
    ns.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", timeout=120)


def wait_status(daemon, predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = daemon.status()
        if status is not None and predicate(status):
            return status
        time.sleep(interval)
    return None


def all_applied(names):
    names = set(names)

    def predicate(status):
        applied = set(gw["name"] for gw in status.get("gateways", [])
                      if gw.get("state") == "applied")
        return names <= applied
    return predicate


def rss_kb(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def ms(seconds):
    return None if seconds is None else seconds * 1000.0


# ---- external verification ---------------------------------------------------------------------
def verify(ns, indices, daemon_rules=True):
    """Check from outside that every gateway in ``indices`` is complete; returns
    {"ok": bool, "problems": [...], counts...}. With ``daemon_rules`` False (the seed
    way) MASQUERADE is looked for in POSTROUTING and FORWARD accepts are only counted."""
    problems = []
    nat = [l for l in ns.save("nat").splitlines() if l.startswith("-A ")]
    flt = [l for l in ns.save("filter").splitlines() if l.startswith("-A ")]
    seen = {}
    for line in nat + flt:
        key = re.sub(r"^\[\d+:\d+\] ", "", line)
        seen[key] = seen.get(key, 0) + 1
    dups = [l for l, n in seen.items() if n > 1]
    if dups:
        problems.append("%d duplicate rule line(s), e.g. %s" % (len(dups), dups[0]))

    masq_chain = "XGW-POSTROUTING" if daemon_rules else "POSTROUTING"
    masq = {}
    for line in nat:
        m = re.match(r"-A (\S+) -s (\S+) ! -d (\S+) .*-j MASQUERADE", line)
        if m and m.group(1) == masq_chain and m.group(2) == m.group(3):
            masq[m.group(2)] = masq.get(m.group(2), 0) + 1
    fwd = {}
    for line in flt:
        if not (line.startswith("-A XGW-FORWARD ") or line.startswith("-A FORWARD ")):
            continue
        m = re.search(r"-[sd] (10\.\d+\.\d+\.0/24)", line)
        if m and "-j ACCEPT" in line:
            fwd[m.group(1)] = fwd.get(m.group(1), 0) + 1

    addr_out = ns.run(["ip", "-4", "-o", "addr", "show"]).stdout
    addrs = {}
    for line in addr_out.splitlines():
        parts = line.split()
        addrs.setdefault(parts[1], []).append(parts[3])
    route_out = ns.run(["ip", "-4", "route", "show", "table", "main"]).stdout
    routes = set()
    for line in route_out.splitlines():
        m = re.match(r"(\S+) dev (\S+)", line)
        if m:
            routes.add((m.group(1), m.group(2)))

    complete = 0
    fwd_total = 0
    for i in indices:
        net, br, cidr = gateway_net(i), bridge_name(i), gateway_cidr(i)
        bad = []
        if addrs.get(br) != [cidr]:
            bad.append("address %s" % addrs.get(br))
        if (net, br) not in routes:
            bad.append("no route")
        if masq.get(net, 0) != 1:
            bad.append("%d MASQUERADE" % masq.get(net, 0))
        fwd_total += fwd.get(net, 0)
        if daemon_rules and fwd.get(net, 0) != 2:
            bad.append("%d FORWARD accepts" % fwd.get(net, 0))
        if bad:
            if len(problems) < 10:
                problems.append("%s: %s" % (br, ", ".join(bad)))
        else:
            complete += 1
    if daemon_rules:
        for builtin, chain, rules in (("POSTROUTING", "XGW-POSTROUTING", nat),
                                      ("FORWARD", "XGW-FORWARD", flt)):
            chain_rules = [l for l in rules if l.startswith("-A %s " % builtin)]
            jump = "-A %s -j %s" % (builtin, chain)
            if not chain_rules or chain_rules[0] != jump or chain_rules.count(jump) != 1:
                problems.append("jump to %s is not alone at the top of %s" % (chain, builtin))
    if ns.ip_forward() != "1":
        problems.append("ip_forward is not 1")
    return {"ok": not problems and complete == len(indices), "complete": complete,
            "expected": len(indices), "masquerade_rules": sum(masq.values()),
            "forward_rules": fwd_total, "duplicates": len(dups), "problems": problems}


# ---- phases ------------------------------------------------------------------------------------
def phase_latency(res, count, backend=LINUX, launcher=None):
    ns = res.netns("lat" if backend == LINUX else "latovs")
    wd = res.workdir()
    indices = list(range(count))
    daemons = []
    try:
        bridges = res.bridges(ns, backend)
        d = res.daemon(ns, wd, gateways_config(indices), check_interval=10, backend=backend,
                       launcher=launcher)
        daemons.append(d)
        d.start(timeout=30)
        out = run_driver(ns, ["latency", "--status", os.path.join(d.runtime_dir, "status.json"),
                              "--count", count, "--timeout", 10, "--budget", 90] + bridges,
                         timeout=150)
        check = verify(ns, indices)
        lat = [s["latency"] for s in out["samples"]]
        after, before = out["after"], out["before"]
        create = [s["create"] for s in out["samples"]]
        return {
            "backend": backend, "create_p50_ms": ms(percentile(create, 50)),
            # when the creating call returned the device existed: what the daemon took after
            "after_create_p50_ms": ms(percentile([s["latency"] - s["create"]
                                                  for s in out["samples"]], 50)),
            "bridges": count, "measured": len(lat), "timeouts": out["timeouts"],
            "p50_ms": ms(percentile(lat, 50)), "p90_ms": ms(percentile(lat, 90)),
            "p99_ms": ms(percentile(lat, 99)), "max_ms": ms(max(lat) if lat else None),
            "min_ms": ms(min(lat) if lat else None),
            # The round's cost grows with the gateways present: first vs last tenth.
            "first_tenth_p50_ms": ms(percentile(lat[:max(1, len(lat) // 10)], 50)),
            "last_tenth_p50_ms": ms(percentile(lat[-max(1, len(lat) // 10):], 50)),
            "rounds": after["rounds"] - before["rounds"],
            "iptables_commits": after["iptables_commits"] - before["iptables_commits"],
            "writes": after["writes"] - before["writes"],
            "samples_ms": [round(x * 1000.0, 3) for x in lat],
            "create_samples_ms": [round(x * 1000.0, 3) for x in create],
            "verify": check,
        }
    finally:
        res.close_phase(ns, daemons)


def phase_burst(res, count, backend=LINUX):
    ns = res.netns("burst" if backend == LINUX else "burstovs")
    wd = res.workdir()
    indices = list(range(count))
    daemons = []
    try:
        bridges = res.bridges(ns, backend)
        d = res.daemon(ns, wd, gateways_config(indices), check_interval=10, backend=backend)
        daemons.append(d)
        d.start(timeout=30)
        out = run_driver(ns, ["burst", "--status", os.path.join(d.runtime_dir, "status.json"),
                              "--count", count, "--timeout", 60] + bridges, timeout=180)
        check = verify(ns, indices)
        after, before = out["after"], out["before"]
        converge = None
        if out["max_since"] is not None and out["applied"] == count:
            converge = out["max_since"] - out["t_last"]
        return {
            "backend": backend,
            "bridges": count, "applied": out["applied"], "missing": out["missing"],
            "creation_span_s": out["creation_span"],
            "after_last_s": converge,
            "after_first_s": (out["max_since"] - out["t_first"]) if converge is not None else None,
            "iptables_commits": after["iptables_commits"] - before["iptables_commits"],
            "rounds": after["rounds"] - before["rounds"],
            "writes": after["writes"] - before["writes"],
            "verify": check,
        }
    finally:
        res.close_phase(ns, daemons)


def phase_startup(res, ns, count, idle_rounds, idle_budget):
    """The daemon's start-up with bridges 0..count-1 present in ``ns`` and nothing
    applied, then its idle checks on the converged state; afterwards the daemon's own
    ``--cleanup`` removes what it made, so that ``ns`` is back to bridges only."""
    wd = res.workdir()
    indices = list(range(count))
    gateways = gateways_config(indices)
    d = res.daemon(ns, wd, gateways, check_interval=10)
    d2 = None
    result = {"bridges": count}
    try:
        t_start = time.monotonic()
        d.start(wait_ready=False)
        t_ready, _lines = d.wait_notify("READY=1", timeout=120)
        status = wait_status(d, all_applied(gateway_name(i) for i in indices), timeout=120)
        if status is None:
            result["error"] = "not all %d gateways applied within 120 s" % count
            return result
        t_applied = max(gw["since_monotonic"] for gw in status["gateways"])
        time.sleep(0.5)
        mem = rss_kb(d.proc.pid)
        status = d.status()
        # the daemon's own log: "round 1: N operations in X ms" (the first round alone)
        with open(d.log_path) as f:
            first = re.search(r"round 1: (\d+) operations in ([0-9.]+) ms", f.read())
        result.update({
            "first_round_ops": int(first.group(1)) if first else None,
            "first_round_s": float(first.group(2)) / 1000.0 if first else None,
            "ready_s": t_ready - t_start, "applied_s": t_applied - t_start,
            "first_rounds": status["rounds"], "first_writes": status["writes"],
            "first_commits": status["iptables_commits"],
            "rss_mb": mem.get("VmRSS", 0) / 1024.0, "hwm_mb": mem.get("VmHWM", 0) / 1024.0,
            "verify": verify(ns, indices),
        })
        d.stop()

        # Idle periodic check: a fresh daemon, check_interval 1, on the converged state.
        d2 = res.daemon(ns, wd, gateways, check_interval=1)
        t_start = time.monotonic()
        d2.start(timeout=120)
        result["restart_ready_s"] = time.monotonic() - t_start
        first = d2.status() or {}
        writes0 = first.get("writes")
        rounds = {}
        deadline = time.monotonic() + idle_budget
        while time.monotonic() < deadline and len(rounds) < idle_rounds + 1:
            st = d2.status()
            if st and st.get("last_round") and st["rounds"] not in rounds:
                rounds[st["rounds"]] = dict(st["last_round"], writes_total=st["writes"])
            time.sleep(0.02)
        last = d2.status() or {}
        idle = [r for n, r in sorted(rounds.items()) if n > 1 and r["ops"] == 0]
        durations = [r["duration"] for r in idle]
        result.update({
            "idle_rounds": len(durations),
            "idle_median_ms": ms(statistics.median(durations)) if durations else None,
            "idle_max_ms": ms(max(durations)) if durations else None,
            "idle_durations_ms": [round(x * 1000.0, 2) for x in durations],
            "restart_first_round_writes": writes0,
            "idle_writes_start": writes0, "idle_writes_end": last.get("writes"),
            "idle_commits_end": last.get("iptables_commits"),
            "rss_idle_mb": rss_kb(d2.proc.pid).get("VmRSS", 0) / 1024.0,
        })
        return result
    finally:
        for x in (d, d2):
            if x is not None:
                x.stop()
        undo_daemon(ns, d)


def undo_daemon(ns, daemon):
    """The daemon's own ``--cleanup`` with its configuration (after it stopped), and
    ip_forward off: ``ns`` back to bridges only."""
    undo = ns.run([sys.executable, "-m", "agent.daemon.main", "--cleanup", "-c",
                   daemon.config_path], env=dict(os.environ, PYTHONPATH=REPO), check=False)
    if undo.returncode != 0:
        raise RuntimeError("xapi-gateway-agent --cleanup failed: %s" % undo.stderr[-2000:])
    ns.set_ip_forward(0)


def phase_script(res, count):
    """The best a script can do per bridge (bench/baseline.py, driver mode script): one
    ``ip addr add`` and one ``iptables-restore --noflush`` of the same rules."""
    ns = res.netns("script")
    wd = res.workdir()
    os.environ["XTABLES_LOCKFILE"] = os.path.join(wd, "xtables.lock")
    try:
        ns.set_ip_forward(1)  # the daemon sets it once at start-up too: not per bridge
        out = run_driver(ns, ["script", "--count", count], timeout=120)
        indices = list(range(count))
        check = verify(ns, indices)
        lat = [s["latency"] for s in out["samples"]]
        failed = [s for s in out["samples"] if s["rc"] != 0]
        return {"bridges": count, "measured": len(lat),
                "p50_ms": ms(percentile(lat, 50)), "p90_ms": ms(percentile(lat, 90)),
                "p99_ms": ms(percentile(lat, 99)), "max_ms": ms(max(lat) if lat else None),
                "create_p50_ms": ms(percentile([s["create"] for s in out["samples"]], 50)),
                "script_failures": len(failed),
                "failure_examples": [s["stderr"].strip() for s in failed[:3]],
                "samples_ms": [round(x * 1000.0, 3) for x in lat], "verify": check}
    finally:
        os.environ.pop("XTABLES_LOCKFILE", None)
        res.close_phase(ns, [])


# ---- the API at 1000 gateways ---------------------------------------------------------------
def cpus():
    """(the daemon's CPU, the load generator's CPU) among those this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[-1]


def compile_agent(directory=REPO):
    """Bytecode for the ``agent`` package under ``directory``, as an install has it (pip
    and rpm compile it): without it each daemon start compiles its ~60 modules from
    source first (~40 ms of a start-up here). Python caches it on its own unless
    PYTHONDONTWRITEBYTECODE is set, as it is on some machines (CI's among them)."""
    import compileall
    if not compileall.compile_dir(os.path.join(directory, "agent"), quiet=1):
        raise RuntimeError("python -m compileall %s/agent failed" % directory)


def export_tree(rev, directory):
    """The ``agent`` package of git revision ``rev`` in ``directory`` (a daemon of that
    revision then runs with PYTHONPATH=directory); RuntimeError if git cannot."""
    archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", rev, "agent"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if archive.returncode != 0:
        raise RuntimeError("git archive %s: %s" % (rev, archive.stderr.decode()[-500:]))
    subprocess.run(["tar", "-x", "-C", directory], input=archive.stdout, check=True)
    compile_agent(directory)
    described = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h %s", rev],
                               stdout=subprocess.PIPE, universal_newlines=True)
    text = described.stdout.strip()
    return text if len(text) <= 40 else text[:37] + "..."


def tls_files(workdir):
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tokens = os.path.join(workdir, "tokens")
    with open(tokens, "w") as f:
        f.write("read %s bench\n" % API_TOKEN)
    os.chmod(tokens, 0o600)
    return cert, key, tokens


def apiload(ns, cpu, target, path, seconds, connections, conditional=False, headers=()):
    """bench/apiload.py in ``ns``, pinned to ``cpu``: its JSON result."""
    cmd = ["taskset", "-c", str(cpu), sys.executable, APILOAD, target, path,
           "--seconds", str(seconds), "--connections", str(connections)]
    for header in headers:
        cmd += ["--header", header]
    if conditional:
        cmd.append("--conditional")
    proc = ns.run(cmd, check=False, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError("apiload %s %s failed (%d): %s" % (target, path, proc.returncode,
                                                              proc.stderr[-2000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def client_ceiling(ns, daemon_cpu, load_cpu, seconds, connections, kind="--trivial"):
    """The load generator against a server that does nothing (bench/apiload.py --trivial,
    on the daemon's CPU): the most it can measure; with --trivial-aiohttp, what aiohttp
    alone answers on that CPU."""
    path = os.path.join(tempfile.mkdtemp(prefix="xgwb-trivial-"), "t.sock")
    server = ns.popen(["taskset", "-c", str(daemon_cpu), sys.executable, APILOAD, kind,
                       "unix:" + path], stdout=subprocess.PIPE, universal_newlines=True)
    try:
        server.stdout.readline()  # "serving"
        return apiload(ns, load_cpu, "unix:" + path, "/", seconds, connections)
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


API_CASES = (  # (key, label, path, conditional, over TLS with a token)
    ("health", "GET /v1/health", "/v1/health", False, False),
    ("gateways_200", "GET /v1/gateways (200, full body)", "/v1/gateways", False, False),
    ("gateways_304", "GET /v1/gateways (If-None-Match: 304)", "/v1/gateways", True, False),
    ("tls_health", "TLS + token: GET /v1/health", "/v1/health", False, True),
    ("tls_gateways_200", "TLS + token: GET /v1/gateways (200)", "/v1/gateways", False, True),
    ("tls_gateways_304", "TLS + token: GET /v1/gateways (304)", "/v1/gateways", True, True),
)


def api_daemon(res, ns, indices, daemon_cpu, rev=None):
    """A daemon for the API phase in ``ns`` (its bridges made), pinned to ``daemon_cpu``,
    with TCP (TLS and a read token) on 127.0.0.1:API_PORT; of git revision ``rev`` when
    given (run from an export of it: ``python -m`` puts the working directory first on
    sys.path). Returns (daemon, label of the code it runs)."""
    wd = res.workdir()
    cwd, label = REPO, "this tree"
    if rev is not None:
        cwd = os.path.join(wd, "tree")
        os.mkdir(cwd)
        label = export_tree(rev, cwd)
    cert, key, tokens = tls_files(wd)
    d = BenchDaemon(ns, wd, gateways_config(indices), env={"PYTHONPATH": cwd},
                    launcher=["env", "-C", cwd, "taskset", "-c", str(daemon_cpu),
                              sys.executable, "-m", "agent.daemon.main"],
                    agent_opts={"check_interval": "10", "log_level": "info"},
                    extra="[api]\nlisten = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\n"
                          "tokens = %s\n" % (API_PORT, cert, key, tokens))
    res.daemons.append(d)
    return d, label


def phase_api(res, count, seconds, connections, before=None):
    """The API with ``count`` gateways applied, the daemon pinned to one CPU and the load
    generator to another: req/s and latency of each case in API_CASES, RSS before and
    after the load. With ``before`` (a git revision) that revision's daemon runs too, in
    a namespace of its own, and each case is measured on both, one right after the other
    (the machine's load drifts less between them than between two phases)."""
    daemon_cpu, load_cpu = cpus()
    indices = list(range(count))
    result = {"gateways": count, "connections": connections, "seconds": seconds,
              "daemon_cpu": daemon_cpu, "load_cpu": load_cpu, "runs": {},
              "load": os.getloadavg()[0]}
    versions = [("now", None)] + ([("before", before)] if before else [])
    spaces, daemons = {}, {}
    try:
        for label, rev in versions:
            spaces[label] = res.netns("api" + label)
            create_bridges_batch(spaces[label], indices)
        ns = spaces["now"]
        result["client_ceiling"] = client_ceiling(ns, daemon_cpu, load_cpu, seconds,
                                                  connections)
        result["aiohttp_alone"] = client_ceiling(ns, daemon_cpu, load_cpu, seconds,
                                                 connections, "--trivial-aiohttp")
        print("  load generator against a trivial server: %.0f req/s, p99 %.3f ms; aiohttp "
              "alone (one route, fixed bytes): %.0f req/s, p50 %.3f ms, p99 %.3f ms"
              % (result["client_ceiling"]["rps"], result["client_ceiling"]["p99_ms"],
                 result["aiohttp_alone"]["rps"], result["aiohttp_alone"]["p50_ms"],
                 result["aiohttp_alone"]["p99_ms"]))
        for label, rev in versions:
            d, code = api_daemon(res, spaces[label], indices, daemon_cpu, rev)
            daemons[label] = d
            result["runs"][label] = {"code": code}
            d.start(timeout=120)
            if wait_status(d, all_applied(gateway_name(i) for i in indices), 120) is None:
                raise RuntimeError("%s: not all %d gateways applied" % (label, count))
        time.sleep(0.5)
        for label, d in daemons.items():
            result["runs"][label]["rss_mb"] = rss_kb(d.proc.pid)["VmRSS"] / 1024.0
        for key, text, path, conditional, secure in API_CASES:
            for label, rev in versions:
                d, run = daemons[label], result["runs"][label]
                if conditional and rev is not None:
                    run[key] = None  # that revision may have no ETag
                    continue
                target = ("tls:127.0.0.1:%d" % API_PORT) if secure else \
                    "unix:" + os.path.join(d.runtime_dir, "api.sock")
                run[key] = r = apiload(spaces[label], load_cpu, target, path, seconds,
                                       connections, conditional, ["Authorization: Bearer %s"
                                                                  % API_TOKEN] if secure else ())
                print("  %-6s %-40s %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  %s  %d B"
                      % (label, text, r["rps"], r["p50_ms"], r["p99_ms"], r["statuses"],
                         r["body_bytes"]))
                sys.stdout.flush()
        for label, d in daemons.items():
            mem = rss_kb(d.proc.pid)
            result["runs"][label].update(rss_after_mb=mem["VmRSS"] / 1024.0,
                                         hwm_mb=mem["VmHWM"] / 1024.0)
        if before:
            result["before_rev"] = result["runs"]["before"]["code"]
        return result
    finally:
        for label, ns in spaces.items():
            d = daemons.get(label)
            if d is not None:
                d.stop()
            ns.run(["ip", "-force", "-batch", "-"], check=False, timeout=600,
                   input="".join("link del %s\n" % bridge_name(i) for i in indices))
            res.close_phase(ns, [])


CLEAN_NAT = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" \
    ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n"


def script_startup(ns, count):
    """Start-up the script way: bridges 0..count-1 present in ``ns``, then (timed) one
    ``iptables-restore --noflush`` of every rule, one ``ip -batch`` of every address and
    ip_forward on. Checked from outside like the daemon's, then undone (both tables
    back to Dom0's, the addresses deleted, ip_forward off)."""
    indices = list(range(count))
    rules, addresses = baseline.restore_text(indices), baseline.address_batch(indices)
    t0 = time.monotonic()
    ns.run(["iptables-legacy-restore", "--noflush"], input=rules, timeout=120)
    t1 = time.monotonic()
    ns.run(["ip", "-batch", "-"], input=addresses, timeout=120)
    t2 = time.monotonic()
    ns.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    t3 = time.monotonic()
    result = {"bridges": count, "total_s": t3 - t0, "restore_s": t1 - t0,
              "ip_batch_s": t2 - t1, "sysctl_s": t3 - t2, "verify": verify(ns, indices)}
    ns.run(["iptables-legacy-restore"], input=CLEAN_NAT + N.DOM0_FIREWALL)
    ns.run(["ip", "-batch", "-"], input=addresses.replace("address add ", "address del "),
           timeout=120)
    ns.set_ip_forward(0)
    return result


def phase_curve(res, counts, idle_rounds, idle_budget):
    """Start-up and idle check against the number of gateways: at each count the script
    way (iptables-restore + ip -batch) and the daemon (phase_startup), side by side."""
    points = []
    # One namespace whose bridges grow from count to count: deleting a namespace with
    # thousands of bridges keeps the kernel busy for a minute, and new namespaces wait.
    ns = res.netns("curve")
    wd = res.workdir()
    os.environ["XTABLES_LOCKFILE"] = os.path.join(wd, "xtables.lock")  # the script's
    made = 0
    try:
        for n in counts:
            t = time.monotonic()
            create_bridges_batch(ns, range(made, n))
            made = n
            point = {"bridges": n, "load": os.getloadavg()[0]}
            point["script"] = script_startup(ns, n)
            point["daemon"] = phase_startup(res, ns, n, idle_rounds, idle_budget)
            d, sc = point["daemon"], point["script"]
            print("  %5d gateways: daemon all applied %s s (idle %s ms, RSS %s MB), script "
                  "%s s (restore %s + ip -batch %s), verified %s/%s; %.0f s, load %.2f"
                  % (n, fmt(d.get("applied_s"), "", 3), fmt(d.get("idle_median_ms"), "", 2),
                     fmt(d.get("rss_mb"), "", 1), fmt(sc["total_s"], "", 3),
                     fmt(sc["restore_s"], "", 3), fmt(sc["ip_batch_s"], "", 3),
                     "ok" if (d.get("verify") or {}).get("ok") else "NOT ok",
                     "ok" if sc["verify"]["ok"] else "NOT ok", time.monotonic() - t,
                     point["load"]))
            sys.stdout.flush()
            points.append(point)
    finally:
        os.environ.pop("XTABLES_LOCKFILE", None)
        delete_bridges(ns, range(made))
        res.close_phase(ns, [])
    return points


def phase_seed(res, n_sleep, n_nosleep):
    ns = res.netns("seed")
    wd = res.workdir()
    result = {"route_tool": "route (net-tools)" if shutil.which("route") else
              "ip route (route is missing: net-tools not installed)"}
    os.environ["XTABLES_LOCKFILE"] = os.path.join(wd, "xtables.lock")
    try:
        # (a) the real 5 s sleep, a script launched per bridge as it is created
        a = run_driver(ns, ["seed", "--script", SEED_SCRIPT, "--count", n_sleep, "--sleep", 5,
                            "--parallel", "--timeout", 30], timeout=60)
        # (b) SEED_SLEEP=0, one bridge at a time: the commands' own cost
        b = run_driver(ns, ["seed", "--script", SEED_SCRIPT, "--count", n_nosleep,
                            "--start", n_sleep, "--sleep", 0, "--timeout", 30], timeout=120)
        indices = list(range(n_sleep + n_nosleep))
        check = verify(ns, indices, daemon_rules=False)
        la = [s["latency"] for s in a["samples"]]
        lb = [s["latency"] for s in b["samples"]]
        failed = [s for s in a["samples"] + b["samples"] if s["rc"] != 0]
        result.update({
            "sleep_bridges": n_sleep, "sleep_p50_s": percentile(la, 50),
            "sleep_max_s": max(la) if la else None,
            "nosleep_bridges": n_nosleep, "nosleep_p50_ms": ms(percentile(lb, 50)),
            "nosleep_p90_ms": ms(percentile(lb, 90)), "nosleep_max_ms": ms(max(lb) if lb else None),
            "nosleep_p99_ms": ms(percentile(lb, 99)),
            "samples_ms": [round(x * 1000.0, 3) for x in lb],
            "script_failures": len(failed),
            "failure_examples": [s["stderr"].strip() for s in failed[:3]],
            "verify": check,
        })
        return result
    finally:
        os.environ.pop("XTABLES_LOCKFILE", None)
        res.close_phase(ns, [])


# ---- report ------------------------------------------------------------------------------------
def fmt(value, unit="", digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return ("%%.%df%%s" % digits) % (value, unit)
    return "%s%s" % (value, unit)


def verdict(value, goal, less=True):
    if value is None:
        return "MISSED (no figure)"
    ok = value <= goal if less else value >= goal
    return "ok" if ok else "MISSED"


def summary_rows(r):
    rows = []
    lat = r.get("latency")
    if lat:
        n = lat["bridges"]
        rows.append(("latency p50, %d bridges one at a time" % n, fmt(lat["p50_ms"], " ms", 2),
                     "<= %g ms" % GOAL_P50_MS, verdict(lat["p50_ms"], GOAL_P50_MS)))
        rows.append(("latency p90", fmt(lat["p90_ms"], " ms", 2), "", ""))
        rows.append(("latency p99", fmt(lat["p99_ms"], " ms", 2), "<= %g ms" % GOAL_P99_MS,
                     verdict(lat["p99_ms"], GOAL_P99_MS)))
        rows.append(("latency max", fmt(lat["max_ms"], " ms", 2), "", ""))
        rows.append(("latency p50 of the first / last tenth of bridges",
                     "%s / %s" % (fmt(lat["first_tenth_p50_ms"], " ms", 2),
                                  fmt(lat["last_tenth_p50_ms"], " ms", 2)), "", ""))
        rows.append(("latency phase: rounds / iptables commits",
                     "%s / %s" % (lat["rounds"], lat["iptables_commits"]), "", ""))
        rows.append(("latency phase: verified complete",
                     "%d/%d" % (lat["verify"]["complete"], n), "all",
                     "ok" if lat["verify"]["ok"] else "MISSED"))
    script = r.get("script")
    if script:
        rows.append(("best script p50 (ip addr add + iptables-restore --noflush, %d bridges)"
                     % script["bridges"], fmt(script["p50_ms"], " ms", 2), "", ""))
        rows.append(("best script p99", fmt(script["p99_ms"], " ms", 2), "", ""))
        rows.append(("best script: verified complete / failures",
                     "%d/%d / %d" % (script["verify"]["complete"], script["bridges"],
                                     script["script_failures"]), "", ""))
        if lat and lat["p50_ms"] and script["p50_ms"]:
            rows.append(("daemon p50 faster than the best script", fmt(
                script["p50_ms"] / lat["p50_ms"], "x", 2), "> 1x",
                verdict(script["p50_ms"] / lat["p50_ms"], 1.0, less=False)))
    burst = r.get("burst")
    if burst:
        n = burst["bridges"]
        rows.append(("burst %d: all applied after last created" % n,
                     fmt(burst["after_last_s"], " s", 3), "<= %g s" % GOAL_BURST_S,
                     verdict(burst["after_last_s"], GOAL_BURST_S)))
        rows.append(("burst: creating them took", fmt(burst["creation_span_s"], " s", 3), "", ""))
        rows.append(("burst: iptables commits / bridges",
                     "%s / %d (%d rounds)" % (burst["iptables_commits"], n, burst["rounds"]),
                     "far fewer than %d" % n,
                     "ok" if burst["iptables_commits"] * 10 <= n else "MISSED"))
        rows.append(("burst: verified complete", "%d/%d" % (burst["verify"]["complete"], n),
                     "all", "ok" if burst["verify"]["ok"] else "MISSED"))
    st = r.get("startup")
    if st:
        n = st["bridges"]
        if "error" in st:
            rows.append(("startup %d" % n, st["error"], "", "MISSED"))
        else:
            rows.append(("startup %d: start -> READY=1" % n, fmt(st["ready_s"], " s", 3), "", ""))
            rows.append(("startup %d: start -> all applied" % n, fmt(st["applied_s"], " s", 3),
                         "<= %g s" % GOAL_STARTUP_S, verdict(st["applied_s"], GOAL_STARTUP_S)))
            if st.get("first_round_s") is not None:
                rows.append(("startup %d: the first round, start to end (%d operations)"
                             % (n, st["first_round_ops"]), fmt(st["first_round_s"], " s", 3),
                             "", ""))
            rows.append(("startup: verified complete", "%d/%d" % (st["verify"]["complete"], n),
                         "all", "ok" if st["verify"]["ok"] else "MISSED"))
            same_n = [p["script"] for p in r.get("curve") or () if p["bridges"] == n]
            if same_n and st.get("applied_s"):
                ratio = st["applied_s"] / same_n[0]["total_s"]
                rows.append(("startup %d: iptables-restore + ip -batch of the same" % n,
                             fmt(same_n[0]["total_s"], " s", 3), "", ""))
                rows.append(("startup %d: daemon / script" % n, fmt(ratio, "x", 1),
                             "<= %gx" % GOAL_STARTUP_VS_SCRIPT,
                             verdict(ratio, GOAL_STARTUP_VS_SCRIPT)))
            rows.append(("RSS with %d gateways applied (peak)" % n,
                         "%.1f MB (%.1f MB)" % (st["rss_mb"], st["hwm_mb"]),
                         "<= %g MB" % GOAL_RSS_MB, verdict(st["rss_mb"], GOAL_RSS_MB)))
            rows.append(("restart on converged state: first-round writes",
                         fmt(st.get("restart_first_round_writes")), "0",
                         "ok" if st.get("restart_first_round_writes") == 0 else "MISSED"))
            rows.append(("idle check, %d gateways (median of %d rounds)"
                         % (n, st.get("idle_rounds", 0)),
                         fmt(st.get("idle_median_ms"), " ms", 2), "<= %g ms" % GOAL_IDLE_MS,
                         verdict(st.get("idle_median_ms"), GOAL_IDLE_MS)))
            same = st.get("idle_writes_start") is not None and \
                st.get("idle_writes_start") == st.get("idle_writes_end")
            rows.append(("idle check: writes (start -> end)",
                         "%s -> %s" % (st.get("idle_writes_start"), st.get("idle_writes_end")),
                         "constant", "ok" if same else "MISSED"))
    seed = r.get("seed")
    if seed:
        rows.append(("seed way p50, real sleep 5 (%d bridges)" % seed["sleep_bridges"],
                     fmt(seed["sleep_p50_s"], " s", 3), "", ""))
        rows.append(("seed way p50, SEED_SLEEP=0 (%d bridges)" % seed["nosleep_bridges"],
                     fmt(seed["nosleep_p50_ms"], " ms", 1), "", ""))
        if lat and lat["p50_ms"]:
            ra = seed["sleep_p50_s"] * 1000.0 / lat["p50_ms"] if seed["sleep_p50_s"] else None
            rb = seed["nosleep_p50_ms"] / lat["p50_ms"] if seed["nosleep_p50_ms"] else None
            rows.append(("ratio seed/daemon p50, with sleep", fmt(ra, "x", 0), "", ""))
            rows.append(("ratio seed/daemon p50, without sleep", fmt(rb, "x", 1), ">= 10x",
                         verdict(rb, 10.0, less=False)))
        rows.append(("seed way: FORWARD accepts left",
                      "%d (no FORWARD rules: Dom0's REJECT blocks TCP)"
                      % seed["verify"]["forward_rules"], "", ""))
        rows.append(("seed way: verified address, route, MASQUERADE",
                     "%d/%d" % (seed["verify"]["complete"], seed["verify"]["expected"]), "", ""))
        rows.append(("seed way: script failures", fmt(seed["script_failures"]), "", ""))
    return rows


def curve_rows(r):
    """(gateways, daemon all applied, script, ratio, idle check, RSS, load) per count."""
    rows = []
    for p in r.get("curve") or ():
        d, sc = p["daemon"], p["script"]
        applied = d.get("applied_s")
        rows.append((str(p["bridges"]), fmt(applied, " s", 3),
                     "%s (%s + %s)" % (fmt(sc["total_s"], " s", 3), fmt(sc["restore_s"], "", 3),
                                       fmt(sc["ip_batch_s"], "", 3)),
                     fmt(applied / sc["total_s"], "x", 1) if applied else "n/a",
                     fmt(d.get("idle_median_ms"), " ms", 2),
                     "%s -> %s" % (d.get("idle_writes_start"), d.get("idle_writes_end")),
                     fmt(d.get("rss_mb"), " MB", 1), "%.2f" % p["load"]))
    return rows


def api_rows(r):
    """(case, [before,] now, goal, verdict) of the API phase."""
    a = r.get("api")
    if not a or not a.get("runs"):
        return []
    now, before = a["runs"].get("now") or {}, a["runs"].get("before")

    def cell(run, key):
        x = (run or {}).get(key)
        if x is None:
            return "n/a"
        return "%.0f req/s, p50 %.2f ms, p99 %.2f ms" % (x["rps"], x["p50_ms"], x["p99_ms"])

    goals = {"health": ("%g req/s" % GOAL_API_HEALTH_RPS, GOAL_API_HEALTH_RPS, None),
             "gateways_304": (">= %g req/s, p99 <= %g ms" % (GOAL_API_GATEWAYS_RPS,
                                                              GOAL_API_P99_MS),
                              GOAL_API_GATEWAYS_RPS, GOAL_API_P99_MS),
             "gateways_200": (">= %g req/s, p99 <= %g ms" % (GOAL_API_GATEWAYS_RPS,
                                                              GOAL_API_P99_MS),
                              GOAL_API_GATEWAYS_RPS, GOAL_API_P99_MS)}
    rows = []
    for key, label, _path, _conditional, _tls in API_CASES:
        goal, rps, p99 = goals.get(key, ("", None, None))
        x = now.get(key)
        ok = ""
        if rps is not None:
            ok = "MISSED (no figure)" if x is None else "ok" if x["rps"] >= rps and (
                p99 is None or x["p99_ms"] <= p99) else "MISSED"
        row = (label, cell(now, key), goal, ok)
        rows.append(row if before is None else (label, cell(before, key)) + row[1:])
    for key, label in (("rss_mb", "RSS with the gateways applied"),
                       ("rss_after_mb", "RSS after the load (peak)")):
        value = "%.1f MB" % now[key] if now.get(key) else "n/a"
        if key == "rss_after_mb" and now.get("hwm_mb"):
            value += " (%.1f MB)" % now["hwm_mb"]
        goal = "<= %g MB" % GOAL_RSS_MB if key == "rss_mb" else ""
        ok = verdict(now.get(key), GOAL_RSS_MB) if key == "rss_mb" else ""
        row = (label, value, goal, ok)
        if before is not None:
            old = "%.1f MB" % before[key] if before.get(key) else "n/a"
            if key == "rss_after_mb" and before.get("hwm_mb"):
                old += " (%.1f MB)" % before["hwm_mb"]
            row = (label, old) + row[1:]
        rows.append(row)
    return rows


def backend_rows(r):
    """Latency and burst on Linux bridges beside Open vSwitch bridges (rows of
    (metric, linux-bridge, openvswitch, goal)), when both ran."""
    rows = []
    lat, lat_ovs = r.get("latency"), r.get("latency" + OVS_SUFFIX)
    if lat and lat_ovs:
        for key, label, goal in (("p50_ms", "latency p50", "<= %g ms" % GOAL_P50_MS),
                                 ("p90_ms", "latency p90", ""),
                                 ("p99_ms", "latency p99", "<= %g ms" % GOAL_P99_MS),
                                 ("max_ms", "latency max", ""),
                                 ("create_p50_ms", "the creating call alone, p50", ""),
                                 ("after_create_p50_ms", "applied after the creating call "
                                  "returned, p50", "")):
            rows.append(("%s (%d / %d bridges)" % (label, lat["bridges"], lat_ovs["bridges"])
                         if key == "p50_ms" else label,
                         fmt(lat[key], " ms", 2), fmt(lat_ovs[key], " ms", 2), goal))
        rows.append(("latency: rounds / iptables commits",
                     "%s / %s" % (lat["rounds"], lat["iptables_commits"]),
                     "%s / %s" % (lat_ovs["rounds"], lat_ovs["iptables_commits"]), ""))
        rows.append(("latency: verified complete",
                     "%d/%d" % (lat["verify"]["complete"], lat["bridges"]),
                     "%d/%d" % (lat_ovs["verify"]["complete"], lat_ovs["bridges"]), "all"))
    burst, burst_ovs = r.get("burst"), r.get("burst" + OVS_SUFFIX)
    if burst and burst_ovs:
        rows.append(("burst: bridges", str(burst["bridges"]), str(burst_ovs["bridges"]), ""))
        rows.append(("burst: creating them took", fmt(burst["creation_span_s"], " s", 3),
                     fmt(burst_ovs["creation_span_s"], " s", 3), ""))
        rows.append(("burst: all applied after last created", fmt(burst["after_last_s"], " s", 3),
                     fmt(burst_ovs["after_last_s"], " s", 3), "<= %g s" % GOAL_BURST_S))
        rows.append(("burst: iptables commits (rounds)",
                     "%s (%s)" % (burst["iptables_commits"], burst["rounds"]),
                     "%s (%s)" % (burst_ovs["iptables_commits"], burst_ovs["rounds"]), ""))
        rows.append(("burst: verified complete",
                     "%d/%d" % (burst["verify"]["complete"], burst["bridges"]),
                     "%d/%d" % (burst_ovs["verify"]["complete"], burst_ovs["bridges"]), "all"))
    return rows


def print_table(rows, head=("metric", "value", "goal", "")):
    widths = [max(len(str(row[i])) for row in rows + [head]) for i in range(len(head))]
    line = " | ".join("%-*s" % (widths[i], head[i]) for i in range(len(head)))
    print(line.rstrip())
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join("%-*s" % (widths[i], row[i]) for i in range(len(head))).rstrip())


def print_phase(name, data):
    problems = (data.get("verify") or {}).get("problems")
    keys = [k for k in sorted(data) if k not in ("samples_ms", "verify", "idle_durations_ms")]
    print("  %s: %s" % (name, ", ".join("%s=%s" % (k, fmt(data[k], "", 3)) for k in keys)))
    if "idle_durations_ms" in data:
        print("    idle round durations (ms): %s" % data["idle_durations_ms"])
    if problems:
        print("    verification problems: %s" % "; ".join(problems))


def _counts(text):
    try:
        counts = sorted(set(int(x) for x in text.split(",") if x.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of numbers: %r" % text)
    if not counts or counts[0] < 1 or counts[-1] > 5000:
        raise argparse.ArgumentTypeError("counts must be 1..5000")
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description="xapi-gateway benchmark (run as root)")
    parser.add_argument("--quick", action="store_true", help="fewer bridges (about 1.5 min)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--only", action="append",
                        choices=("latency", "script", "burst", "startup", "seed", "api"),
                        help="run only this phase (repeatable)")
    parser.add_argument("--backend", choices=(LINUX, OVS, "both"), default="both",
                        help="latency and burst on Linux bridges, Open vSwitch bridges or "
                             "both side by side (default); startup and seed use Linux bridges")
    parser.add_argument("--counts", type=_counts, metavar="N,N,...",
                        help="startup: the numbers of gateways of the start-up and idle-check "
                             "curve (default 100,250,500,1000,2000,4000; --quick 100,1000,"
                             "2000); 1000 is always included")
    parser.add_argument("--plots", nargs="?", const=plots.DEFAULT_DIR, metavar="DIR",
                        help="also write PNG plots (and results.json) to DIR (default "
                             "bench/results); needs matplotlib: pip install -r "
                             "requirements/bench.txt")
    parser.add_argument("--api-before", metavar="REV",
                        help="api: also measure the daemon of git revision REV (e.g. main), "
                             "in the same namespace right after, and show it beside")
    parser.add_argument("--api-connections", type=int, default=4, metavar="N",
                        help="api: keep-alive connections, each one request in flight "
                             "(default 4)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work directories (daemon logs, configs, status files)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run_bench.py: needs root (network namespaces, iptables)")
    missing = [t for t in NEEDED_TOOLS if shutil.which(t) is None]
    if missing:
        sys.exit("run_bench.py: missing tools: %s (apt-get install iproute2 iptables procps)"
                 % ", ".join(missing))
    if args.plots and plots.available():
        sys.exit("run_bench.py --plots: %s" % plots.available())
    sizes = QUICK if args.quick else FULL
    if args.counts:
        sizes = dict(sizes, counts=args.counts)
    compile_agent()
    if sizes["startup"] not in sizes["counts"]:
        sizes = dict(sizes, counts=sorted(sizes["counts"] + [sizes["startup"]]))
    phases = args.only or ["latency", "script", "burst", "startup", "seed", "api"]
    backends = [LINUX, OVS] if args.backend == "both" else [args.backend]
    if OVS in backends and ovsmod.installed():
        sys.exit("run_bench.py: %s (or --backend %s)" % (ovsmod.installed(), LINUX))
    # (phase, backend, results key): latency and burst on each backend
    steps = []
    for phase in phases:
        for backend in (backends if phase in ("latency", "burst") else [LINUX]):
            key = phase + (OVS_SUFFIX if backend == OVS else "")
            if (phase, backend, key) not in steps:
                steps.append((phase, backend, key))
    signal.signal(signal.SIGTERM, _raise_interrupt)

    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "quick": args.quick,
               "python": sys.version.split()[0], "cpus": os.cpu_count(),
               "kernel": os.uname().release, "sizes": sizes,
               "loadavg_at_start": os.getloadavg()[0]}
    if not shutil.which("route"):
        print("note: route (net-tools) is missing; the seed script uses ip route instead")
    stale = [l.split()[0] for l in N.run(["ip", "netns", "list"]).stdout.splitlines()
             if l.startswith("xgwb-")]
    if stale:
        print("note: namespaces from an earlier run exist (left alone): %s" % ", ".join(stale))
    res = Resources(keep=args.keep)
    started = time.monotonic()
    exit_code = 0
    try:
        for phase, backend, key in steps:
            t = time.monotonic()
            print("[%5.1fs] %s ..." % (t - started, key))
            sys.stdout.flush()
            try:
                if phase == "latency":
                    results[key] = phase_latency(res, sizes["latency"], backend)
                elif phase == "burst":
                    results[key] = phase_burst(res, sizes["burst_ovs" if backend == OVS
                                                          else "burst"], backend)
                elif phase == "script":
                    results["script"] = phase_script(res, sizes["script"])
                elif phase == "startup":
                    results["curve"] = phase_curve(res, sizes["counts"], sizes["idle_rounds"],
                                                   sizes["idle_budget"])
                    results["startup"] = [p["daemon"] for p in results["curve"]
                                          if p["bridges"] == sizes["startup"]][0]
                elif phase == "seed":
                    results["seed"] = phase_seed(res, sizes["seed_sleep"], sizes["seed_nosleep"])
                elif phase == "api":
                    results["api"] = phase_api(res, sizes["startup"], sizes["api_seconds"],
                                               args.api_connections, args.api_before)
            except (AssertionError, RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                results[key] = None
                text = "%s: %s" % (type(exc).__name__, exc)
                results.setdefault("errors", {})[key] = text[-3000:]
                print("  %s FAILED: %s" % (key, text[-3000:]))
                traceback.print_exc()
                exit_code = 1
                continue
            print_phase(key, results[key])
            sys.stdout.flush()
    except KeyboardInterrupt:
        print("interrupted; cleaning up")
        exit_code = 130
    finally:
        res.close()
    results["runtime_s"] = time.monotonic() - started
    print("")
    print("xapi-gateway benchmark, %s, %s cpus (load %.2f at start), Python %s, kernel %s%s; "
          "%.0f s" % (results["date"], results["cpus"], results["loadavg_at_start"],
                      results["python"], results["kernel"], ", --quick" if args.quick else "",
                      results["runtime_s"]))
    rows = summary_rows(results if LINUX in backends else dict(
        results, latency=results.get("latency" + OVS_SUFFIX),
        burst=results.get("burst" + OVS_SUFFIX)))
    if rows:
        print_table(rows)
    curve = curve_rows(results)
    if curve:
        print("")
        print("Start-up and idle check against the number of gateways (script: "
              "iptables-restore --noflush + ip -batch of the same rules and addresses):")
        print_table(curve, head=("gateways", "daemon: all applied", "script (restore + ip -batch)",
                                 "daemon/script", "idle check", "idle writes", "RSS",
                                 "load"))
    api = api_rows(results)
    if api:
        a = results["api"]
        print("")
        print("API with %d gateways applied: the daemon on CPU %d only (taskset), %d keep-alive "
              "connections from bench/apiload.py on CPU %d, %g s per case; that client "
              "against a trivial server: %.0f req/s; aiohttp alone on CPU %d: %.0f req/s "
              "(load %.2f at the phase's start):" % (
                  a["gateways"], a["daemon_cpu"], a["connections"], a["load_cpu"],
                  a["seconds"], a["client_ceiling"]["rps"], a["daemon_cpu"],
                  a["aiohttp_alone"]["rps"], a["load"]))
        head = ("case", "now", "goal", "")
        if len(api[0]) == 5:
            head = ("case", "before: %s" % a.get("before_rev"), "now", "goal", "")
        print_table(api, head=head)
    side = backend_rows(results)
    if side:
        print("")
        print("Linux bridges beside Open vSwitch bridges (userspace datapath):")
        print_table(side, head=("metric", LINUX, OVS, "goal"))
    results["summary"] = [{"metric": r[0], "value": r[1], "goal": r[2], "verdict": r[3]}
                          for r in rows]
    results["backends"] = [{"metric": r[0], LINUX: r[1], OVS: r[2], "goal": r[3]}
                           for r in side]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
            f.write("\n")
        print("results written to %s" % args.json)
    if args.plots:
        for path in plots.write(results, args.plots):
            print("plot written to %s" % path)
        path = os.path.join(args.plots, "results.json")
        with open(path, "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
            f.write("\n")
        print("results written to %s (redraw: bench/plots.py %s)" % (path, path))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
