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

from agent.daemon.reconciler import Engine, KernelThread, RoundResult

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
def running_engine(rounds, executor=None, **options):
    """An Engine over ``rounds`` with its event loop in a thread of its own, after its
    first round (through the loop); stopped and closed on the way out."""
    loop = asyncio.new_event_loop()
    executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="kernel")
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


def test_a_release_that_found_the_tables_changed_brings_a_round():
    """The release walks the tables settled after a commit (Iptables.confirm); when it
    found one changed, a round follows, and its own release then finds nothing."""
    rounds = Rounds()
    answers = [True, False]
    rounds.release = lambda: answers.pop(0) if answers else False
    with running_engine(rounds, idle_release=0.05):
        assert rounds.wait(2)      # the first round, then the one the release asked for
        pause = threading.Event()
        pause.wait(0.3)
        assert len(rounds.threads) == 2 and answers == []


def in_thread(name, func):
    """Run ``func`` in a thread called ``name`` (as the netlink monitor's); joined."""
    thread = threading.Thread(target=func, name=name)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()


def test_the_monitors_event_runs_its_round_in_the_monitors_thread_owning_the_kernel():
    """request_here: the kernel idle, the round runs at once in the calling thread, which
    owns the kernel meanwhile: a task for the kernel thread waits for the round's end."""
    kernel = KernelThread()
    rounds = Rounds()
    order = []
    plain = rounds.run_round

    def round_with_a_question():
        assert kernel.owner.locked()
        order.append(("round", kernel.submit(lambda: order.append(("question", None)))))
        threading.Event().wait(0.2)    # the question must not run meanwhile
        order.append(("round done", None))
        return plain()
    with running_engine(rounds, executor=kernel) as engine:
        assert reported(engine, 1)
        rounds.run_round = round_with_a_question
        in_thread("netlink-monitor", lambda: engine.request_here({"xapi1"}))
        assert rounds.threads[-1] == "netlink-monitor"
        order[0][1].result(WAIT)
        assert [what for what, _ in order] == ["round", "round done", "question"]
        assert reported(engine, 2)   # the loop hears of it
        assert not kernel.owner.locked()


def test_events_during_the_monitors_round_get_one_more_round_in_the_kernel_thread():
    """An event folded while the monitor's thread runs a round (fold_pending calls
    on_change) gets one more round, not through the loop: the kernel thread runs it, so
    that the monitor reads on (a burst's events folded alongside the rounds)."""
    kernel = KernelThread()
    rounds = Rounds()
    plain = rounds.run_round
    with running_engine(rounds, executor=kernel) as engine:
        assert reported(engine, 1)

        def round_seeing_an_event():
            rounds.run_round = plain
            engine.request_here({"xapi2"})   # as fold_pending's on_change does
            return plain()
        rounds.run_round = round_seeing_an_event
        in_thread("netlink-monitor", lambda: engine.request_here({"xapi1"}))
        assert reported(engine, 3)
        assert rounds.threads[1:] == ["netlink-monitor", "kernel_0"]


def test_the_monitors_event_during_a_kernel_thread_round_goes_through_the_loop():
    """While the kernel thread runs a round (the loop's), request_here does not wait for
    the kernel: the loop runs a round for it after that one."""
    kernel = KernelThread()
    rounds = Rounds()
    release, started = threading.Event(), threading.Event()
    plain = rounds.run_round

    def slow_round():
        started.set()
        release.wait(WAIT)
        return plain()
    with running_engine(rounds, executor=kernel) as engine:
        assert reported(engine, 1)
        rounds.run_round = slow_round
        engine.loop.call_soon_threadsafe(engine.request, {"xapi1"})   # a round of the loop's
        assert started.wait(WAIT)
        rounds.run_round = plain
        in_thread("netlink-monitor", lambda: engine.request_here({"xapi2"}))  # returns at once
        release.set()
        assert rounds.wait(3)
        assert rounds.threads[1:3] == ["kernel_0", "kernel_0"]


def test_shutdown_waits_for_a_round_the_monitors_thread_runs():
    """KernelThread.shutdown(True) returns once no thread owns the kernel: a round in the
    monitor's thread finishes its commits before the daemon exits."""
    kernel = KernelThread()
    entered, done = threading.Event(), []

    def monitor_round():
        with kernel.owner:
            entered.set()
            threading.Event().wait(0.3)
            done.append(True)
    thread = threading.Thread(target=monitor_round, name="netlink-monitor")
    thread.start()
    assert entered.wait(WAIT)
    kernel.shutdown(wait=True)
    assert done == [True]
    thread.join(WAIT)
