"""The heartbeat detector (hold time, hold-down, flapping) and the heartbeat's wire form."""
import pytest

from agent.core import liveness as L

ME, A, B = "00000000-0000-0000-0000-00000000000%d" % 0, \
    "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
KEY = L.derive_key(b"pool-secret\n")


def beat(host, seq, start=1):
    return L.Heartbeat(host, start, seq)


def detector(hold_time=1.0, hold_down=5.0):
    d = L.Detector(ME, hold_time, hold_down)
    d.members([ME, A, B], now=0.0)
    return d


def feed(d, host, start, end, every=0.2, seq0=1):
    """Heartbeats from ``host`` every ``every`` s from ``start`` to ``end``, ticking."""
    t, seq = start, seq0
    while t <= end + 1e-9:
        d.heard(beat(host, seq), t)
        d.tick(t)
        t, seq = round(t + every, 6), seq + 1
    return seq


def test_a_peer_goes_down_after_the_hold_time_of_silence():
    d = detector()
    feed(d, A, 0.1, 1.9)
    assert d.unreachable() == frozenset()
    assert d.tick(2.9) == {}             # A's last beat at 1.9: still within 1 s
    assert d.tick(2.91) == {A: False}
    assert d.unreachable() == {A}


def test_a_peer_never_heard_is_not_judged():
    """Heartbeats that never arrive (a closed port, a member without the daemon) leave
    liveness to XAPI rather than make every host see every other as dead."""
    d = detector()
    assert d.tick(1000.0) == {} and d.unreachable() == frozenset()
    assert d.views(1000.0)[B] == {"reachable": True, "silent": None}


def test_this_host_is_never_a_peer():
    d = detector()
    assert not d.heard(beat(ME, 1), 0.1)
    d.heard(beat(A, 1), 0.1)
    d.heard(beat(B, 1), 0.1)
    d.tick(100.0)
    assert ME not in d.unreachable() and d.unreachable() == {A, B}


def test_a_peer_comes_back_only_after_the_hold_down_of_steady_heartbeats():
    d = detector(hold_time=1.0, hold_down=5.0)
    d.heard(beat(A, 0, start=0), 0.1)
    d.tick(1.5)
    assert A in d.unreachable()
    seq = feed(d, A, 10.0, 14.8)          # 4.8 s steady: not yet
    assert A in d.unreachable()
    feed(d, A, 15.0, 15.0, seq0=seq)      # 5.0 s: up
    assert A not in d.unreachable()


@pytest.mark.parametrize("gap", [1.2, 3.0])
def test_a_flapping_peer_stays_down(gap):
    """Bursts of 3 s of heartbeats with gaps longer than the hold time: each gap starts
    the steady run again, so the 5 s hold-down is never reached."""
    d = detector(hold_time=1.0, hold_down=5.0)
    d.heard(beat(A, 0, start=0), 0.1)
    d.tick(1.5)
    t, seq = 2.0, 1
    for _ in range(10):
        seq = feed(d, A, t, t + 3.0, seq0=seq)
        assert A in d.unreachable()
        t = t + 3.0 + gap
        d.tick(t - 0.01)
        assert A in d.unreachable()


def test_short_gaps_within_the_hold_time_do_not_break_the_run():
    d = detector(hold_time=1.0, hold_down=2.0)
    d.heard(beat(A, 0, start=0), 0.1)
    d.tick(1.5)
    seq = feed(d, A, 3.0, 4.0)
    seq = feed(d, A, 4.9, 5.1, seq0=seq)   # a 0.9 s gap: still steady
    assert A not in d.unreachable()


def test_replays_and_strangers_are_refused():
    d = detector()
    assert d.heard(beat(A, 5), 0.5)
    assert not d.heard(beat(A, 5), 0.6) and not d.heard(beat(A, 4), 0.6)
    assert d.heard(beat(A, 1, start=2), 0.7)      # the sender restarted
    assert not d.heard(beat(A, 9, start=1), 0.8)  # an old life's heartbeat
    assert not d.heard(beat("0" * 36, 1), 0.8)    # no member of the pool
    d.tick(1.75)
    assert A in d.unreachable()                   # the refused ones kept nothing alive


def test_members_that_leave_are_forgotten():
    d = detector()
    d.heard(beat(A, 1), 0.1)
    d.heard(beat(B, 1), 0.1)
    d.tick(2.0)
    assert d.unreachable() == {A, B}
    d.members([ME, A, "00000000-0000-0000-0000-00000000000c"], now=2.0)
    assert d.unreachable() == {A}
    assert d.tick(2.9) == {}


def test_the_wire_form_round_trips_and_is_authenticated():
    data = L.encode(KEY, A, 1234, 7)
    assert len(data) == L.SIZE
    assert L.decode([KEY], data) == L.Heartbeat(A, 1234, 7)
    assert L.decode([L.derive_key(b"new"), KEY], data).seq == 7   # during a rotation
    with pytest.raises(L.BadHeartbeat, match="wrong MAC"):
        L.decode([L.derive_key(b"another pool")], data)
    forged = data[:-L.MAC_LEN - 1] + b"\x08" + data[-L.MAC_LEN:]   # seq 7 -> 8
    with pytest.raises(L.BadHeartbeat, match="wrong MAC"):
        L.decode([KEY], forged)
    for bad, why in ((data[:-1], "bytes"), (b"XXXX" + data[4:], "magic"), (b"", "bytes")):
        with pytest.raises(L.BadHeartbeat, match=why):
            L.decode([KEY], bad)
    assert L.derive_key(b"s") == L.derive_key(b"s\n") != L.derive_key(b"t")


def test_a_stall_of_this_host_is_no_silence_of_its_peers():
    d = detector(hold_time=1.0)
    d.heard(beat(A, 1), 0.1)
    d.tick(0.2)
    assert d.tick(3.0) == {}                  # this host did not run for 2.8 s
    d.heard(beat(A, 2), 3.05)                 # what waited in the socket
    assert d.tick(3.2) == {} and d.unreachable() == frozenset()
    assert d.tick(3.6) == {} and d.tick(4.06) == {A: False}   # then silence counts
