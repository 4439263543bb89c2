"""agent.daemon.reconciler.Engine: rounds started by events from other threads.

The reconciler here is a stand-in that records which thread ran each round (the Engine
only coordinates; the rounds themselves are tested in namespaces). The event loop runs
in a thread of its own, as in the daemon.
"""
import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.daemon.reconciler import Engine, RoundResult

WAIT = 10.0   # seconds: a ceiling, never expected


class Rounds(object):
    def __init__(self):
        self.threads = []
        self.done = threading.Condition()

    def run_round(self):
        with self.done:
            self.threads.append(threading.current_thread().name)
            self.done.notify_all()
        return RoundResult(0, 0, 0, 0, 0.0, None)

    def heartbeat(self):
        return None

    def wait(self, count):
        with self.done:
            return self.done.wait_for(lambda: len(self.threads) >= count, WAIT)


@contextlib.contextmanager
def running_engine(rounds, **options):
    """An Engine over ``rounds`` with its event loop in a thread of its own, after its
    first round (through the loop); stopped and closed on the way out."""
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kernel")
    reported = []
    thread = threading.Thread(target=loop.run_forever, name="loop")
    thread.start()

    async def start():   # made in the loop, as the daemon makes it
        engine = Engine(rounds, executor, loop, resync=lambda: None,
                        on_round=reported.append, **options)
        engine.task = asyncio.ensure_future(engine.run())
        engine.request()
        return engine
    engine = asyncio.run_coroutine_threadsafe(start(), loop).result(WAIT)
    try:
        assert rounds.wait(1)   # the first round, through the loop
        engine.rounds, engine.reported = rounds, reported
        yield engine
    finally:
        async def stop():
            engine.task.cancel()
            try:
                await engine.task
            except asyncio.CancelledError:
                pass
        asyncio.run_coroutine_threadsafe(stop(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        executor.shutdown(wait=True)
        loop.close()


@pytest.fixture
def engine():
    with running_engine(Rounds()) as engine:
        yield engine


def reported(engine, count):
    """Wait (bounded) until the loop has heard of ``count`` rounds."""
    pause = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if len(engine.reported) >= count:
            return True
        pause.wait(0.01)
    return False


def test_an_event_is_served_while_the_event_loop_is_busy(engine):
    """The netlink monitor's event starts its round in the kernel thread at once: no
    detour through the event loop (busy here, as with a large API response)."""
    assert reported(engine, 1)   # the first round is over: the kernel thread is idle
    gate = threading.Event()
    engine.loop.call_soon_threadsafe(gate.wait, WAIT)   # the loop is blocked
    try:
        engine.request_threadsafe({"xapi1"})
        assert engine.rounds.wait(2), "no round while the event loop was busy"
        assert engine.rounds.threads[-1].startswith("kernel")
    finally:
        gate.set()
    assert reported(engine, 2)   # and the loop hears of it once free


def test_events_during_a_round_get_a_round_after_it(engine):
    """An event that arrives while a round runs is not lost: another round follows."""
    release = threading.Event()
    started = threading.Event()
    plain = engine.rounds.run_round

    def slow_round():
        started.set()
        release.wait(WAIT)
        return plain()
    engine.rounds.run_round = slow_round
    engine.request_threadsafe({"xapi1"})          # starts a round (direct)
    assert started.wait(WAIT)
    engine.rounds.run_round = plain
    engine.request_threadsafe({"xapi2"})          # during it: through the loop
    release.set()
    assert engine.rounds.wait(3), "the event during the round got no round"


def test_the_iptables_copies_are_freed_once_rounds_stop_coming():
    """libiptc's copies are kept while rounds follow each other (the next commit reuses
    the last walk's copy) and freed once no round came for ``idle_release`` seconds."""
    rounds = Rounds()
    released = []
    rounds.release = lambda: released.append(threading.current_thread().name)
    with running_engine(rounds, idle_release=1.0) as engine:
        pause = threading.Event()
        for count in range(2, 6):   # a round every 0.1 s: the release keeps being put off
            pause.wait(0.1)
            engine.request_threadsafe({"xapi%d" % count})
            assert rounds.wait(count)
        assert released == []
        for _ in range(int(WAIT / 0.01)):
            if released:
                break
            pause.wait(0.01)
        assert released == ["kernel_0"]   # once, in the kernel thread
        pause.wait(1.2)
        assert released == ["kernel_0"]   # and not again without a round
