"""Heartbeats over a real UDP socket on 127.0.0.1: authenticated ones count, others are
refused; without a readable pool secret nothing is sent and no host is judged."""
import asyncio
import socket

from agent.adapters.heartbeat import Heartbeats
from agent.core import liveness

A = "00000000-0000-0000-0000-00000000000a"
B = "00000000-0000-0000-0000-00000000000b"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(secret_path, scenario):
    loop = asyncio.new_event_loop()
    changes = []
    try:
        hb = Heartbeats(loop, A, free_port(), 0.05, 1.0, 0.0, secret_path, changes.append)
        loop.run_until_complete(hb.start())
        hb.set_peers({A: "127.0.0.1", B: "127.0.0.1"})
        return loop.run_until_complete(scenario(hb, changes))
    finally:
        hb.stop()
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()


def test_authenticated_heartbeats_count_and_others_are_refused(tmp_path):
    secret = tmp_path / "ptoken"
    secret.write_bytes(b"the-pool-secret\n")
    key = liveness.derive_key(b"the-pool-secret")

    async def scenario(hb, changes):
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        out.sendto(liveness.encode(key, B, 1, 1), ("127.0.0.1", hb.port))
        out.sendto(liveness.encode(liveness.derive_key(b"other"), B, 1, 2),
                   ("127.0.0.1", hb.port))
        out.sendto(b"junk", ("127.0.0.1", hb.port))
        out.sendto(liveness.encode(key, B, 1, 1), ("127.0.0.1", hb.port))  # a replay
        await asyncio.sleep(0.1)
        assert hb.refused == 3 and hb.unreachable() == frozenset()
        assert hb.views()[B]["silent"] is not None
        await asyncio.sleep(1.3)        # silent for longer than the hold time
        assert hb.unreachable() == {B} and changes[-1] == {B}
        out.sendto(liveness.encode(key, B, 1, 3), ("127.0.0.1", hb.port))
        await asyncio.sleep(0.15)       # hold-down 0: back at once
        assert hb.unreachable() == frozenset() and changes[-1] == frozenset()
        out.close()
    run(str(secret), scenario)


def test_without_the_pool_secret_nothing_is_judged(tmp_path):
    async def scenario(hb, changes):
        assert "pool secret" in hb.problem
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        out.sendto(liveness.encode(liveness.derive_key(b"x"), B, 1, 1),
                   ("127.0.0.1", hb.port))
        await asyncio.sleep(1.3)
        assert hb.unreachable() == frozenset() and changes == []
        out.close()
    run(str(tmp_path / "missing"), scenario)
