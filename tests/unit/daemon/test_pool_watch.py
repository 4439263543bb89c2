"""PoolWatch's claim writes (agent.daemon.pool): a host taking many gateways over writes
their claims back to back and acts on them in one round, not one claim per round."""
import asyncio

from agent.core import claims
from agent.daemon.pool import PoolWatch


class Placed(object):
    """The PlacedSource's side PoolWatch uses: the writes wanted, and what was noted."""

    def __init__(self, writes):
        self.writes = list(writes)
        self.noted = []

    def claim_writes(self):
        return [w for w in self.writes if w[1] not in dict(self.noted)]

    def note_claim(self, network, value):
        self.noted.append((network, value))


def _verdict(n):
    return claims.Verdict(claims.CLAIM_IT, ("", "me:%d" % n), "claiming")


def _run(placed, write):
    loop = asyncio.new_event_loop()
    rounds = []
    watch = PoolWatch(loop, None, placed, lambda: rounds.append(len(placed.noted)),
                      lambda: set())
    watch._write = write
    try:
        watch.after_round()
        loop.run_until_complete(asyncio.sleep(0.2))
        watch.retry_scheduled = watch._retry is not None
    finally:
        watch.close()
        loop.close()
    return watch, rounds


def test_all_claims_are_written_before_one_round():
    placed = Placed([("gw%d" % n, "net%d" % n, _verdict(n)) for n in range(50)])
    calls = []

    def write(network, old, new):
        calls.append(network)
        return True, new

    watch, rounds = _run(placed, write)
    assert not watch.retry_scheduled
    assert calls == ["net%d" % n for n in range(50)]
    assert placed.noted == [("net%d" % n, "me:%d" % n) for n in range(50)]
    assert rounds == [50] and watch.writes == 50


def test_a_failed_write_is_retried_and_the_others_still_count():
    placed = Placed([("gw%d" % n, "net%d" % n, _verdict(n)) for n in range(3)])

    def write(network, old, new):
        if network == "net1":
            raise OSError("connection reset")
        return (network != "net2"), new if network != "net2" else "other:9"

    watch, rounds = _run(placed, write)
    assert placed.noted == [("net0", "me:0"), ("net2", "other:9")]
    assert watch.writes == 1 and watch.lost == 1 and watch.retry_scheduled
    assert rounds == [2]
