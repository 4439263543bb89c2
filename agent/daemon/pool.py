"""The daemon's side of a pool: heartbeats, the claim writes and emergency mode (wiring).

``PoolWatch`` sits between the XAPI watcher, the heartbeats (agent.adapters.heartbeat),
the PlacedSource and the engine, all on the event loop:

- the pool's records go to placement, and their management addresses to the heartbeats
  (started once this host's uuid is known, when ``[xapi] heartbeat_port`` is not 0);
- a peer that turns unreachable, or reachable again after the hold-down, changes
  placement's input and asks for a round;
- after each round, the claim writes that the verdicts call for (agent.core.claims) run
  back to back in a thread of their own, through one XAPI session, then one round acts on
  them all: a takeover is served
  only once its write succeeded; a hand-over's claim is removed only after a round that
  no longer applies the gateway. A write that fails is retried after a second;
- XAPI lost after it was reached: emergency mode (PlacedSource keeps the status quo).
"""
import logging
from concurrent.futures import ThreadPoolExecutor

from agent.core import claims, placement

log = logging.getLogger(__name__)

RETRY = 1.0  # seconds before a failed claim write is tried again


class PoolWatch(object):
    def __init__(self, loop, xapi, placed, request_round, applied):
        """``xapi``: the [xapi] settings; ``request_round()``: ask the engine for a round;
        ``applied()``: the names of the gateways the last round applied."""
        self.loop = loop
        self.settings = xapi
        self.placed = placed
        self.request_round = request_round
        self.applied = applied
        self.heartbeats = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xapi-claim")
        self._writing = False
        self._session = None
        self._retry = None
        self.writes = 0          # claim writes that succeeded
        self.lost = 0            # claim writes another host won

    # ---- inputs ------------------------------------------------------------------------
    def pool_records(self, records):
        self.placed.update_pool(records)
        self.placed.placement()   # resolves this host's uuid
        me = self.placed.me()
        if me and self.heartbeats is None and self.settings.heartbeat_port:
            self._start_heartbeats(me)
        if self.heartbeats is not None:
            self.heartbeats.set_peers(placement.management_addresses(
                records.get("host"), records.get("pif")))
        self.request_round()

    def xapi_state(self, connected):
        if self.placed.set_connected(connected):
            self.request_round()

    def _start_heartbeats(self, me):
        from agent.adapters.heartbeat import Heartbeats
        s = self.settings
        self.heartbeats = Heartbeats(self.loop, me, s.heartbeat_port, s.heartbeat_interval,
                                     s.hold_time, s.hold_down, s.pool_secret,
                                     self._reachability)
        self.loop.create_task(self.heartbeats.start())

    def _reachability(self, unreachable):
        self.placed.set_unreachable(unreachable)
        self.request_round()

    # ---- claim writes ------------------------------------------------------------------
    def after_round(self):
        if self._writing:
            return
        applied = self.applied()
        todo = []
        for name, network, verdict in self.placed.claim_writes():
            if verdict.action == claims.RELEASE and name in applied:
                continue  # the next round removes it first
            log.info("gateway %s: %s (claim %r -> %r)", name, verdict.reason,
                     verdict.write[0], verdict.write[1])
            todo.append((name, network, verdict))
        if not todo:
            return
        # All of them in one job, then one round: a host taking 50 gateways over writes
        # 50 claims back to back, not one claim per round (15 s at 50, measured).
        self._writing = True
        future = self.loop.run_in_executor(self._writer, self._write_all, todo)
        future.add_done_callback(lambda f: self._written(f.result()))

    def _write_all(self, todo):
        """[(name, network, verdict, (won, value) or the exception)], in order."""
        done = []
        for name, network, verdict in todo:
            try:
                result = self._write(network, verdict.write[0], verdict.write[1])
            except Exception as exc:  # noqa: B902 - socket, XenAPI.Failure: retry later
                result = exc
            done.append((name, network, verdict, result))
        return done

    def _write(self, network, old, new):
        from agent.adapters import xapi
        if self._session is None:
            s = self.settings
            self._session = xapi.open_session(s.url, s.username, s.password,
                                              timeout=s.timeout)
        try:
            return xapi.write_claim(self._session, network, old, new)
        except Exception:
            self._session = None  # a new session next time
            raise

    def _written(self, done):
        self._writing = False
        for name, network, verdict, result in done:
            if isinstance(result, Exception):
                from agent.adapters.xapi import describe
                log.warning("gateway %s: claim write failed (%s); retrying in %.0f s", name,
                            describe(result), RETRY)
                if self._retry is None:
                    self._retry = self.loop.call_later(RETRY, self._retried)
                continue
            won, value = result
            if won:
                self.writes += 1
                log.warning("gateway %s: claim %s: %s written", name, verdict.action, value)
            else:
                self.lost += 1
                log.warning("gateway %s: claim not written: it is now %r (another host "
                            "wrote first)", name, value)
            self.placed.note_claim(network, value)
        self.request_round()

    def _retried(self):
        self._retry = None
        self.request_round()

    # ---- status ------------------------------------------------------------------------
    def status(self):
        hb = self.heartbeats
        return {"this_host": self.placed.me() or None, "emergency": self.placed.emergency,
                "claim_writes": self.writes, "claims_lost": self.lost,
                "heartbeat": None if hb is None else {
                    "port": hb.port, "problem": hb.problem, "refused": hb.refused,
                    "peers": {h: dict(v, address=hb.peers.get(h))
                              for h, v in hb.views().items()}}}

    def close(self):
        if self.heartbeats is not None:
            self.heartbeats.stop()
        if self._retry is not None:
            self._retry.cancel()
        self._writer.shutdown(wait=False)

