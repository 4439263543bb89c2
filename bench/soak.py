#!/usr/bin/env python3
"""xapi-gateway soak: the daemon under everything at once, for --minutes (default 10).

    sudo .venv/bin/python bench/soak.py [--minutes 10] [--keep]

Not part of the default CI run. Everything happens in one network namespace this script
creates (xgwb-<pid>-...-soak) and deletes at the end, also on error or Ctrl-C; traffic
only goes to 127.0.0.x inside it. The daemon runs there with prlimit --nofile=1024:1024
(systemd's default), TLS and a token on 127.0.0.1:8443, a XAPI simulator on a Unix socket,
and 20 gateways from its config file. While it runs, all at once:

  api       mixed API load over the Unix socket and over TLS (health, gateways, metrics,
            networks listed through XAPI, networks created and deleted through XAPI)
  churn     a config gateway's bridge deleted and created again, twice a second
  xapi      every 45 s: the simulator restarted (its gateway networks made again), or
            stalled with SIGSTOP for 15 s and SIGCONT
  flush     every 20 s: the daemon's chains flushed or its jumps deleted (drift)
  flood     every 60 s: 600 bare connections from 127.0.0.2 and 100 silent TLS ones from
            127.0.0.3, held 20 s

Then everything stops and it checks: zero daemon exits, the final kernel state exact
(every gateway, config and XAPI, complete once; nothing left of gone ones; no duplicate),
descriptors and RSS back to their baseline (taken after a warm-up). It prints a line every
30 s and a summary with the machine's load; exit status 0 only when every check passed.
"""
from __future__ import print_function

import argparse
import http.client
import json
import os
import random
import re
import signal
import ssl
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import run_bench as B  # noqa: E402  (re-execs under the venv when needed)
from run_bench import N  # noqa: E402

from agent.api.client import _UnixConnection  # noqa: E402

FLOOD = os.path.join(B.REPO, "tests", "integration", "helpers", "flood.py")
PORT = 8443
TOKEN = "s" * 48
STATIC = list(range(100, 120))          # config gateways: xapi100.. 10.100.100.1/24 ..
XAPI_NETS = ["10.201.%d.1/24" % k for k in range(5)]   # gateways kept in XAPI
RSS_SLACK_KB = 12 * 1024
FD_SLACK = 3


class Stop(Exception):
    pass


class Soak(object):
    def __init__(self, minutes, keep):
        self.minutes = minutes
        self.res = B.Resources(keep=keep)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {}        # (what, outcome) -> n
        self.samples = []       # (t, rss_kb, fds, loadavg)
        self.errors = []        # unexpected things a worker saw
        self.sim = None
        self.sim_stopped = False
        self.sim_lock = threading.Lock()
        self.xapi_bridges = {}  # bridge -> cidr of the simulator's gateway networks

    # ---- bookkeeping ----------------------------------------------------------------
    def count(self, what, outcome):
        with self.lock:
            key = (what, str(outcome))
            self.counts[key] = self.counts.get(key, 0) + 1

    def problem(self, text):
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append("%.0fs %s" % (time.monotonic() - self.t0, text))

    # ---- set-up -----------------------------------------------------------------------
    def setup(self):
        self.ns = ns = self.res.netns("soak")
        for n in (2, 3):
            ns.run(["ip", "addr", "add", "127.0.0.%d/8" % n, "dev", "lo"])
        self.wd = wd = self.res.workdir()
        self.cert, key = os.path.join(wd, "cert.pem"), os.path.join(wd, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", self.cert], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tokens = os.path.join(wd, "tokens")
        with open(tokens, "w") as f:
            f.write("admin %s soak\n" % TOKEN)
        os.chmod(tokens, 0o600)
        # no '_' in the path (XenAPI's Unix URLs spell '/' so), which mkdtemp may pick
        self.simdir = "/tmp/xgwsoak-%d-%d" % (os.getpid(), int(time.time() * 1000))
        os.makedirs(self.simdir, 0o700)
        self.res.workdirs.append(self.simdir)
        self.sim_path = os.path.join(self.simdir, "xapi")
        self.start_sim()
        B.create_bridges_batch(ns, STATIC)
        self.daemon = d = B.BenchDaemon(
            ns, wd, B.gateways_config(STATIC),
            agent_opts={"check_interval": "2", "log_level": "info"},
            xapi_url="unix:" + self.sim_path, prefix=["prlimit", "--nofile=1024:1024"],
            extra="[api]\nlisten = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\ntokens = %s\n"
                  % (PORT, self.cert, key, tokens))
        self.res.daemons.append(d)
        d.start(wait_ready=True, timeout=30)
        self.pid = d.proc.pid
        self.wait_converged(60)

    def start_sim(self):
        if os.path.exists(self.sim_path):
            os.unlink(self.sim_path)
        self.sim = self.ns.popen([sys.executable, "-m", "agent.xapisim", "--unix",
                                  self.sim_path], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, universal_newlines=True,
                                 env=dict(os.environ, PYTHONPATH=B.REPO))
        line = self.sim.stdout.readline()
        if "serving" not in line:
            raise RuntimeError("the simulator did not start: %r" % line)
        self.sim_stopped = False
        self.make_xapi_gateways()

    def sdk(self):
        import XenAPI
        session = XenAPI.Session("http://%s/" % self.sim_path.replace("/", "_"),
                                 transport=XenAPI.UDSTransport())
        session.xenapi.login_with_password("root", "", "1.0", "soak")
        return session.xenapi

    def make_xapi_gateways(self):
        """The simulator forgets everything when restarted: make its gateway networks
        again, and their bridges (as XAPI would when a VM starts)."""
        api = self.sdk()
        bridges = {}
        for k, cidr in enumerate(XAPI_NETS):
            net = api.network.create({"name_label": "soak-xapi-%d" % k, "other_config": {
                "xapi-gateway.address": cidr}})
            bridges[api.network.get_bridge(net)] = cidr
        for bridge in bridges:
            if not self.ns.link_exists(bridge):
                self.ns.run(["ip", "link", "add", bridge, "type", "bridge"])
                self.ns.run(["ip", "link", "set", bridge, "up"])
        gone = set(self.xapi_bridges) - set(bridges)
        for bridge in gone:
            self.ns.run(["ip", "link", "del", bridge], check=False)
        self.xapi_bridges = bridges

    # ---- HTTP -------------------------------------------------------------------------
    def request(self, transport, method, path, body=None):
        if transport == "unix":
            conn = _UnixConnection(os.path.join(self.daemon.runtime_dir, "api.sock"), 30)
            headers = {}
        else:
            context = ssl.create_default_context(cafile=self.cert)
            conn = http.client.HTTPSConnection("127.0.0.1", PORT, timeout=30, context=context)
            headers = {"Authorization": "Bearer " + TOKEN}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    # ---- workers ----------------------------------------------------------------------
    def worker(self, name, func, netns=False):
        def run():
            if netns:
                enter_netns(self.ns.name)
            while not self.stop.is_set():
                try:
                    func()
                except Stop:
                    return
                except Exception as exc:  # noqa: B902 - a soak counts, then goes on
                    self.count(name, "exception")
                    self.problem("%s: %r" % (name, exc))
                    self.stop.wait(0.5)
        thread = threading.Thread(target=run, name=name)
        thread.daemon = True
        thread.start()
        return thread

    def sleep(self, seconds):
        if self.stop.wait(seconds):
            raise Stop()

    def api_load(self, transport):
        def once():
            for method, path in (("GET", "/v1/health"), ("GET", "/v1/gateways"),
                                 ("GET", "/metrics"), ("GET", "/v1/networks")):
                status, _ = self.request(transport, method, path)
                self.count("api-" + transport, status)
                if status >= 500 and status not in (502, 503):  # XAPI away: expected
                    self.problem("%s %s %s -> %d" % (transport, method, path, status))
                self.sleep(0.02)
            name = "soak-api-%s-%d" % (transport, random.randrange(1 << 30))
            status, body = self.request(transport, "POST", "/v1/networks", {"name": name})
            self.count("api-" + transport + "-create", status)
            if status == 201:
                key = json.loads(body.decode())["uuid"]
                status, _ = self.request(transport, "DELETE", "/v1/networks/" + key)
                self.count("api-" + transport + "-delete", status)
            self.sleep(0.1)
        return once

    def churn(self):
        i = random.choice(STATIC)
        bridge = B.bridge_name(i)
        self.ns.run(["ip", "link", "del", bridge], check=False)
        self.sleep(0.2)
        self.ns.run(["ip", "link", "add", bridge, "type", "bridge"])
        self.ns.run(["ip", "link", "set", bridge, "up"])
        self.count("churn", "cycle")
        self.sleep(0.3)

    def xapi_chaos(self):
        self.sleep(45)
        if self.counts.get(("xapi", "restart"), 0) <= self.counts.get(("xapi", "stall"), 0):
            with self.sim_lock:
                N.stop(self.sim)
                self.start_sim()
            self.count("xapi", "restart")
        else:
            with self.sim_lock:
                self.sim.send_signal(signal.SIGSTOP)
                self.sim_stopped = True
            try:
                self.sleep(15)
            finally:
                with self.sim_lock:
                    self.sim.send_signal(signal.SIGCONT)
                    self.sim_stopped = False
            self.count("xapi", "stall")

    def flush(self):
        self.sleep(20)
        action = random.choice([("-F", "XGW-FORWARD"), ("-t", "nat", "-F", "XGW-POSTROUTING"),
                                ("-D", "FORWARD", "-j", "XGW-FORWARD"),
                                ("-t", "nat", "-D", "POSTROUTING", "-j", "XGW-POSTROUTING")])
        self.ns.ipt(*action, check=False)
        self.count("flush", " ".join(action))

    def flood(self):
        self.sleep(60)
        floods = []
        for count, source, tls in ((600, "127.0.0.2", False), (100, "127.0.0.3", True)):
            argv = [sys.executable, FLOOD, "127.0.0.1", str(PORT), str(count), source]
            proc = self.ns.popen(argv + (["--tls"] if tls else []), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, universal_newlines=True)
            floods.append(proc)
        try:
            for proc in floods:
                opened = json.loads(proc.stdout.readline())
                self.count("flood", "opened %d" % opened["opened"])
            self.sleep(20)
        finally:
            for proc in floods:
                proc.stdin.close()
                proc.wait(10)
        self.count("flood", "rounds")

    def sampler(self):
        self.sleep(30)
        self.sample("run")

    def sample(self, label):
        if self.daemon.proc.poll() is not None:
            self.problem("the daemon exited with %s" % self.daemon.proc.returncode)
            return None
        rss = B.rss_kb(self.pid)["VmRSS"]
        fds = self.daemon.fd_count()
        load = os.getloadavg()[0]
        self.samples.append((time.monotonic() - self.t0, rss, fds, load))
        print("  %5.0fs %-8s rss %6.1f MB  fds %4d  load %.2f  %s" % (
            time.monotonic() - self.t0, label, rss / 1024.0, fds, load, self.brief()),
            flush=True)
        return rss, fds

    def brief(self):
        with self.lock:
            c = dict(self.counts)
        ok = sum(n for (w, o), n in c.items() if w.startswith("api-") and o.startswith("2"))
        return "api 2xx %d, churn %d, xapi %d/%d, flush %d, flood %d" % (
            ok, c.get(("churn", "cycle"), 0), c.get(("xapi", "restart"), 0),
            c.get(("xapi", "stall"), 0),
            sum(n for (w, _o), n in c.items() if w == "flush"), c.get(("flood", "rounds"), 0))

    # ---- checks -------------------------------------------------------------------------
    def wait_converged(self, timeout):
        names = set(B.gateway_name(i) for i in STATIC)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.daemon.status() or {}
            applied = set(g["name"] for g in status.get("gateways", [])
                          if g["state"] == "applied")
            xapi_applied = sum(1 for g in status.get("gateways", [])
                               if g["state"] == "applied" and g.get("bridge")
                               in self.xapi_bridges)
            if names <= applied and xapi_applied == len(XAPI_NETS) and \
                    (status.get("xapi") or {}).get("connected") and \
                    status.get("round_failure") is None:
                return True
            time.sleep(0.2)
        return False

    def final_state(self):
        result = B.verify(self.ns, STATIC)
        problems = list(result["problems"])
        addrs = {}
        for line in self.ns.run(["ip", "-4", "-o", "addr", "show"]).stdout.splitlines():
            parts = line.split()
            addrs.setdefault(parts[1], []).append(parts[3])
        nat = self.ns.save("nat")
        for bridge, cidr in sorted(self.xapi_bridges.items()):
            if addrs.get(bridge) != [cidr]:
                problems.append("XAPI gateway %s: address %s" % (bridge, addrs.get(bridge)))
            net = re.sub(r"\.1/24$", ".0/24", cidr)
            if nat.count("-s %s ! -d %s" % (net, net)) != 1:
                problems.append("XAPI gateway %s: MASQUERADE count" % bridge)
        expected = len(STATIC) + len(XAPI_NETS)
        masq = sum(1 for l in nat.splitlines() if "-j MASQUERADE" in l)
        if masq != expected:
            problems.append("%d MASQUERADE rules, expected %d" % (masq, expected))
        ours = [(b, a) for b, al in addrs.items() for a in al
                if b.startswith("xapi") and b not in self.xapi_bridges
                and b not in set(B.bridge_name(i) for i in STATIC)]
        if ours:
            problems.append("addresses left on other bridges: %s" % ours)
        return problems, masq

    # ---- the run ----------------------------------------------------------------------
    def run(self):
        started = time.time()
        self.t0 = time.monotonic()
        print("soak: %d minute(s), daemon limited to 1024 descriptors; %d cores, load %.2f"
              % (self.minutes, os.cpu_count() or 0, os.getloadavg()[0]), flush=True)
        self.setup()
        print("  ready and converged after %.1f s" % (time.monotonic() - self.t0), flush=True)
        # warm-up: the API load alone, then the baseline
        threads = [self.worker("api-unix", self.api_load("unix")),
                   self.worker("api-tls", self.api_load("tls"), netns=True)]
        time.sleep(15)
        base_rss, base_fds = self.sample("baseline")
        threads += [self.worker("churn", self.churn), self.worker("xapi", self.xapi_chaos),
                    self.worker("flush", self.flush), self.worker("flood", self.flood),
                    self.worker("sampler", self.sampler)]
        end = self.t0 + self.minutes * 60
        while time.monotonic() < end and self.daemon.proc.poll() is None:
            time.sleep(1)
        self.stop.set()
        for thread in threads:
            thread.join(60)
        with self.sim_lock:
            if self.sim_stopped:
                self.sim.send_signal(signal.SIGCONT)
        for i in STATIC:  # churn may have left one bridge away
            if not self.ns.link_exists(B.bridge_name(i)):
                self.ns.run(["ip", "link", "add", B.bridge_name(i), "type", "bridge"])
                self.ns.run(["ip", "link", "set", B.bridge_name(i), "up"])
        converged = self.wait_converged(90)
        time.sleep(15)   # idle connections time out (idle_timeout), memory given back
        quiet = time.monotonic()
        final = None
        while time.monotonic() - quiet < 60:
            final = self.sample("final")
            if final is None or (final[1] <= base_fds + FD_SLACK
                                 and final[0] <= base_rss + RSS_SLACK_KB):
                break
            time.sleep(5)
        state_problems, masq = self.final_state() if final else (["daemon gone"], 0)
        exits = 0 if self.daemon.proc.poll() is None else 1
        status = self.daemon.status() or {}
        with self.lock:
            unexpected = sum(n for (w, o), n in self.counts.items()
                             if o in ("exception", "500") and w.startswith("api"))
        peak_rss = max(s[1] for s in self.samples)
        peak_fds = max(s[2] for s in self.samples)
        loads = [s[3] for s in self.samples]
        checks = [
            ("daemon exits", exits, exits == 0),
            ("converged at the end", converged, converged),
            ("final kernel state exact", "; ".join(state_problems) or
             "%d gateways, %d MASQUERADE, no duplicate" % (len(STATIC) + len(XAPI_NETS),
                                                           masq), not state_problems),
            ("descriptors end/baseline/peak", "%s / %d / %d" % (
                final and final[1], base_fds, peak_fds),
             bool(final) and final[1] <= base_fds + FD_SLACK),
            ("RSS MB end/baseline/peak", "%s / %.1f / %.1f" % (
                final and "%.1f" % (final[0] / 1024.0), base_rss / 1024.0, peak_rss / 1024.0),
             bool(final) and final[0] <= base_rss + RSS_SLACK_KB),
            ("API errors (exceptions, 500)", unexpected, unexpected == 0),
        ]
        print("\nsoak summary (%.1f min from %s UTC, load avg min/max %.2f/%.2f on %d cores)"
              % ((time.time() - started) / 60, time.strftime("%H:%M", time.gmtime(started)),
                 min(loads), max(loads), os.cpu_count() or 0))
        with self.lock:
            for (what, outcome), n in sorted(self.counts.items()):
                print("  %-22s %-34s %7d" % (what, outcome, n))
        print("  rounds %s, failed rounds %s, iptables commits %s" % (
            status.get("rounds"), status.get("round_failures"), status.get("iptables_commits")))
        metrics = {}
        try:
            _, text = self.request("unix", "GET", "/metrics")
            for line in text.decode().splitlines():
                if line.startswith("xgw_api_") or line.startswith("xgw_drift"):
                    name, value = line.rsplit(" ", 1)
                    metrics[name] = value
        except OSError:
            pass
        for name, value in sorted(metrics.items()):
            print("  %-60s %s" % (name, value))
        for text in self.errors[:20]:
            print("  note: %s" % text)
        ok = True
        for name, value, good in checks:
            ok = ok and good
            print("  %-4s %-32s %s" % ("ok" if good else "FAIL", name, value))
        return 0 if ok else 1


def enter_netns(name):
    """Move the calling thread (only) into network namespace ``name``: its sockets are
    made there, as a controller's would be on that host's network."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/%s" % name, os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns into %s" % name)
    finally:
        os.close(fd)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="how long the faults go on (default: 10)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("soak.py: run as root (namespaces, iptables)")
    soak = Soak(args.minutes, args.keep)
    signal.signal(signal.SIGTERM, B._raise_interrupt)
    try:
        return soak.run()
    finally:
        soak.stop.set()
        if soak.sim is not None and soak.sim.poll() is None:
            soak.sim.send_signal(signal.SIGCONT)
            soak.sim.kill()
            soak.sim.wait()
        soak.res.close()


if __name__ == "__main__":
    sys.exit(main())
