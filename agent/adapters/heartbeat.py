"""Pool heartbeats over UDP, on the event loop (agent.core.liveness has the rules).

``Heartbeats`` binds ``port`` on every address of this host's namespace, sends one
authenticated datagram every ``interval`` to each pool member's management address, and
hands each valid one it receives to the Detector; ``tick`` runs the hold time and the
hold-down and reports changes through ``on_change(unreachable)``.

The key comes from the pool secret file, read again when it changes. Without a readable
secret this host sends nothing and judges no one (every peer stays reachable: a host
that cannot authenticate must not take over from hosts it merely cannot verify); the
others, who stop hearing it, may take over from it. Nothing here raises into the daemon:
a socket error is logged and the next interval tries again.
"""
import asyncio
import logging
import os
import time

from agent.core import liveness

log = logging.getLogger(__name__)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner):
        self.owner = owner

    def datagram_received(self, data, addr):
        self.owner._received(data, addr)

    def error_received(self, exc):  # an ICMP unreachable from a dead peer: normal
        log.debug("heartbeat socket: %s", exc)


class Heartbeats(object):
    def __init__(self, loop, me, port, interval, hold_time, hold_down, secret_path,
                 on_change, clock=time.monotonic):
        self.loop = loop
        self.me = me
        self.port = port
        self.interval = interval
        self.secret_path = secret_path
        self.on_change = on_change
        self.clock = clock
        self.detector = liveness.Detector(me, hold_time, hold_down)
        self.peers = {}          # {uuid: management address}
        self.keys = []           # current key first, then the previous one
        self._secret_stat = None
        self._transport = None
        self._task = None
        self._start = int(time.time() * 1000)
        self._seq = 0
        self.problem = None      # why heartbeats do not run, None when they do
        self.refused = 0         # datagrams refused (bad MAC, replays, strangers)
        self._members = ()
        self._reported = frozenset()

    async def start(self):
        self._load_key()
        try:
            self._transport, _ = await self.loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=("0.0.0.0", self.port))
        except OSError as exc:
            self.problem = "cannot listen on UDP %d: %s" % (self.port, exc)
            log.error("pool heartbeats off: %s; a host that simply dies is noticed only "
                      "when XAPI marks it dead", self.problem)
            self.detector = None
            return
        self._task = asyncio.ensure_future(self._run())
        log.info("pool heartbeats on UDP %d every %.2f s (hold time %.2f s, hold-down "
                 "%.2f s)", self.port, self.interval, self.detector.hold_time,
                 self.detector.hold_down)

    def stop(self):
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.close()

    def set_peers(self, addresses):
        """{uuid: management address} of the pool's hosts (this one included or not)."""
        self.peers = {h: a for h, a in addresses.items() if h != self.me and a}
        self._members = tuple(h for h, a in addresses.items() if a)  # judged: reachable
        if self.detector is not None:
            self.detector.members(self._members, self.clock())

    def unreachable(self):
        if self.detector is None or not self.keys:
            return frozenset()
        return self.detector.unreachable()

    def views(self):
        if self.detector is None:
            return {}
        return self.detector.views(self.clock())

    async def _run(self):
        checks = 0
        while True:
            try:
                if checks % max(1, int(5.0 / self.interval)) == 0:
                    self._load_key()
                checks += 1
                self._send()
                changed = self.detector.tick(self.clock())
                for host, up in sorted(changed.items()) if self.keys else ():
                    log.warning("pool member %s (%s) is %s", host,
                                self.peers.get(host, "no address"),
                                "reachable again (steady heartbeats for the hold-down)"
                                if up else "UNREACHABLE (no heartbeat for the hold time)")
                unreachable = self.unreachable()
                if unreachable != self._reported:
                    self._reported = unreachable
                    self.on_change(unreachable)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: B902 - whatever it was, the next interval tries again
                log.exception("heartbeat round failed")
            await asyncio.sleep(self.interval)

    def _send(self):
        if not self.keys or self._transport is None:
            return
        self._seq += 1
        data = liveness.encode(self.keys[0], self.me, self._start, self._seq)
        for address in self.peers.values():
            try:
                self._transport.sendto(data, (address, self.port))
            except OSError as exc:  # no route while the link is down: normal
                log.debug("heartbeat to %s: %s", address, exc)

    def _received(self, data, addr):
        try:
            beat = liveness.decode(self.keys, data)
        except liveness.BadHeartbeat as exc:
            self.refused += 1
            log.debug("refused a datagram from %s: %s", addr[0], exc)
            return
        if beat.host == self.me:
            return  # our own, looped back
        if not self.detector.heard(beat, self.clock()):
            self.refused += 1

    def _load_key(self):
        try:
            st = os.stat(self.secret_path)
            stamp = (st.st_mtime, st.st_size, st.st_ino)
            if stamp == self._secret_stat:
                return
            with open(self.secret_path, "rb") as f:
                secret = f.read()
            if not secret.strip():
                raise ValueError("it is empty")
        except (OSError, ValueError) as exc:
            if self.keys or self.problem is None:
                log.error("pool heartbeats cannot be authenticated: pool secret %s: %s; "
                          "sending none and judging no host", self.secret_path, exc)
            self.problem = "pool secret %s: %s" % (self.secret_path, exc)
            self.keys, self._secret_stat = [], None
            return
        key = liveness.derive_key(secret)
        if not self.keys and self.detector is not None:  # judging again: afresh
            self.detector = liveness.Detector(self.me, self.detector.hold_time,
                                              self.detector.hold_down)
            self.detector.members(self._members, self.clock())
        if not self.keys or key != self.keys[0]:
            if self.keys:
                log.info("pool secret %s changed: heartbeats use the new key (the old one "
                         "is still accepted)", self.secret_path)
            self.keys = [key] + self.keys[:1]
        self._secret_stat, self.problem = stamp, None
