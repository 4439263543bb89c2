"""Failover when the serving host simply dies, and while the master is away: three
simulated hosts on real Open vSwitch, one daemon per host namespace (tests/integration/
pool.py), heartbeats on the hosts' management addresses over the underlay.

"Simply dies": the serving host's daemon is killed with SIGKILL and its eth0 goes down;
no XAPI call, so host_metrics.live stays true (XAPI would notice after ~10 minutes). The
next host must take over within seconds (the time is printed; only a generous ceiling is
asserted), the old host coming back must not take the gateway back before its hold-down,
and a sampler of every on-the-wire host's bridge addresses checks that no two hosts
serve at once for longer than the bound README.md documents.
"""
import os
import signal
import threading
import time

from agent.core import claims
from tests.integration import netns as N
from tests.integration.test_pool_gateways import GATEWAY, wired_gateway

INTERVAL, HOLD_TIME, HOLD_DOWN = 0.2, 1.0, 3.0
BOUND = 1.0    # seconds of double service allowed (README: Pools, failover)
CEILING = 20   # seconds a takeover may take here, on a loaded machine


def heartbeat_opts(pool):
    secret = os.path.join(pool.directory, "ptoken")
    if not os.path.exists(secret):
        with open(secret, "w") as f:
            f.write("a-pool-secret-every-member-has\n")
        os.chmod(secret, 0o600)
    return {"heartbeat_interval": str(INTERVAL), "hold_time": str(HOLD_TIME),
            "hold_down": str(HOLD_DOWN), "pool_secret": secret}


def start(pool, n, **xapi):
    """Host n's daemon, with heartbeats (and more [xapi] keys)."""
    return pool.start_daemon(n, xapi_opts=dict(heartbeat_opts(pool), **xapi))


def by_uuid(pool):
    return sorted(pool.hosts, key=lambda h: h.uuid)


def set_wire(pool, host, up):
    state = "up" if up else "down"
    host.ns.run(["ip", "link", "set", "eth0", state])
    pool.wire.run(["ip", "link", "set", "h%d" % host.number, state])


def claim_of(api, net):
    return api.network.get_other_config(net).get(claims.CLAIM)


def claim_lines(pool):
    """What each daemon logged about claims and peers (for a failure's message)."""
    lines = []
    for host in pool.hosts:
        try:
            with open(host.daemon.log_path) as f:
                lines += ["host %d: %s" % (host.number, line.rstrip()) for line in f
                          if "claim" in line and "DEBUG" not in line
                          or "pool member" in line or "EMERGENCY" in line
                          or "emergency mode over" in line]
        except (IOError, OSError, AttributeError):
            pass
    return "\n".join(lines[-60:])


class Sampler(object):
    """Which hosts on the wire carry the gateway address, every few tens of ms, in a
    thread; ``overlap()``: the longest stretch (s) with two or more carriers."""

    def __init__(self, pool, bridge):
        self.pool, self.bridge = pool, bridge
        self.on_wire = set(h.number for h in pool.hosts)
        self.samples = []   # (monotonic, frozenset of carrier numbers)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.daemon = True
        self._thread.start()

    def carriers(self):
        return frozenset(h.number for h in self.pool.hosts if h.number in self.on_wire
                         and GATEWAY in h.ns.addresses(self.bridge))

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.carriers()))
            self._stop.wait(0.02)

    def stop(self):
        self._stop.set()
        self._thread.join(10)

    def overlap(self):
        longest, since = 0.0, None
        for t, carriers in self.samples:
            if len(carriers) > 1:
                since = t if since is None else since
                longest = max(longest, t - since)
            else:
                since = None
        return longest

    def first(self, number, after):
        """When host ``number`` was first seen carrying the address after ``after``."""
        return next((t for t, c in self.samples if t >= after and number in c), None)


def test_a_serving_host_that_simply_dies_is_replaced_within_seconds(lab):
    pool = lab(3)
    api = pool.api()
    for n in (1, 2, 3):
        start(pool, n)
    net, bridge = wired_gateway(pool, api)
    first, second, _third = by_uuid(pool)
    sampler = Sampler(pool, bridge)
    try:
        N.wait_for(lambda: sampler.carriers() == {first.number}, timeout=CEILING,
                   message="host %d serving" % first.number)
        assert claim_of(api, net) == first.uuid + ":1"
        status = second.daemon.status()["pool"]
        N.wait_for(lambda: all(p["silent"] is not None for p in
                               second.daemon.status()["pool"]["heartbeat"]["peers"]
                               .values()), timeout=10, message="heartbeats heard")
        assert status["this_host"] == second.uuid and not status["emergency"]

        # the serving host simply dies: no XAPI call, XAPI still says it is live
        died = time.monotonic()
        os.kill(first.daemon.proc.pid, signal.SIGKILL)
        set_wire(pool, first, False)
        sampler.on_wire.discard(first.number)
        N.wait_for(lambda: sampler.carriers() == {second.number}, timeout=CEILING,
                   message="host %d taking over" % second.number)
        took = time.monotonic() - died
        print("\nfailover after the serving host died (SIGKILL, link down): host %d "
              "carries the gateway %.2f s later (hold time %.1f s)"
              % (second.number, took, HOLD_TIME))
        # not before the hold time from the last heartbeat (up to one interval earlier)
        assert took >= HOLD_TIME - INTERVAL - 0.05
        assert claim_of(api, net) == second.uuid + ":2"
        metrics = api.host.get_metrics(first.ref)
        assert api.host_metrics.get_live(metrics) is True  # XAPI has not noticed
        # status.json follows the round that put the address in place
        N.wait_for(lambda: (second.daemon.gateway_state("vlan") or {}).get("state") ==
                   "applied", timeout=10, message="host %d's status: applied" % second.number)
        peers = second.daemon.status()["pool"]["heartbeat"]["peers"]
        assert peers[first.uuid]["reachable"] is False

        # it comes back (a reboot: its kernel and /run are empty; its cache is not)
        first.ns.run(["ip", "addr", "del", GATEWAY, "dev", bridge], check=False)
        os.unlink(os.path.join(first.daemon.runtime_dir, "status.json"))
        first.daemon.stop()
        set_wire(pool, first, True)
        sampler.on_wire.add(first.number)
        back = time.monotonic()
        start(pool, first.number)
        N.wait_for(lambda: sampler.carriers() == {first.number}, timeout=CEILING,
                   message="handed back to host %d after the hold-down" % first.number)
        again = N.wait_for(lambda: sampler.first(first.number, back), timeout=5,
                           message="the sampler seeing it")
        print("the old host came back: it serves again %.2f s after its link came up "
              "(hold-down %.1f s)" % (again - back, HOLD_DOWN))
        assert again - back >= HOLD_DOWN
        assert claim_of(api, net) == first.uuid + ":4"   # taken, released, claimed
    finally:
        sampler.stop()
    overlap = sampler.overlap()
    print("longest double service seen: %.3f s (bound %.1f s); %d samples"
          % (overlap, BOUND, len(sampler.samples)))
    assert overlap <= BOUND


def test_while_the_master_is_away_the_status_quo_is_kept(lab):
    pool = lab(3)
    api = pool.api()
    for n in (1, 2, 3):
        start(pool, n, timeout=2)
    net, bridge = wired_gateway(pool, api)
    first, second, third = by_uuid(pool)
    sampler = Sampler(pool, bridge)
    stopped = False
    try:
        N.wait_for(lambda: sampler.carriers() == {first.number}, timeout=CEILING,
                   message="host %d serving" % first.number)
        N.wait_for(lambda: all(p["silent"] is not None for p in
                               second.daemon.status()["pool"]["heartbeat"]["peers"]
                               .values()), timeout=10, message="heartbeats heard")

        # the master stops answering: every member goes to emergency mode
        pool.sim.send_signal(signal.SIGSTOP)
        stopped = True
        for host in pool.hosts:  # event.from waits 30 s for news, then [xapi] timeout
            N.wait_for(lambda: (host.daemon.status() or {}).get("pool", {}).get(
                "emergency"), timeout=60, message="host %d in emergency mode" % host.number)
        with open(second.daemon.log_path) as f:
            assert "EMERGENCY MODE" in f.read()
        assert sampler.carriers() == {first.number}   # nothing dropped

        # the serving host dies meanwhile: nobody takes over (no claim can be written)
        os.kill(first.daemon.proc.pid, signal.SIGKILL)
        set_wire(pool, first, False)
        sampler.on_wire.discard(first.number)
        time.sleep(HOLD_TIME * 4)
        assert sampler.carriers() == frozenset()
        peers = second.daemon.status()["pool"]["heartbeat"]["peers"]
        assert peers[first.uuid]["reachable"] is False   # seen dead, all the same
        gw = second.daemon.gateway_state("vlan")
        assert gw["state"] == "unserved" and "emergency mode" in gw["reason"], gw

        # the master is back: the successor takes over through the claim
        pool.sim.send_signal(signal.SIGCONT)
        stopped = False
        back = time.monotonic()
        N.wait_for(lambda: sampler.carriers() == {second.number}, timeout=60,
                   message="host %d taking over once the master answers" % second.number)
        print("\nthe master back: host %d serves %.2f s later (the daemons' XAPI "
              "reconnection backoff)" % (second.number, time.monotonic() - back))
        assert claim_of(api, net) == second.uuid + ":2", claim_lines(pool)
        N.wait_for(lambda: not third.daemon.status()["pool"]["emergency"], timeout=30,
                   message="host %d out of emergency mode" % third.number)
    finally:
        if stopped:
            pool.sim.send_signal(signal.SIGCONT)
        sampler.stop()
    assert sampler.overlap() <= BOUND
