"""The API's connection guard where descriptors run out: accept failing with EMFILE is
said once (not a traceback per try), the server keeps serving, and once descriptors are
free again it accepts again. In a child process whose descriptor limit is lowered after
the server started (the caps were fitted to the limit at start)."""
import os
import socket
import subprocess
import sys
import time

from agent.api.client import _UnixConnection

CHILD = r"""
import asyncio, logging, resource, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
from agent.api import server
from agent.api.app import Api
from agent.api.xapi import Sessions

async def main():
    api = Api(Sessions("none", "root", ""))
    runner = await server.start(api, sys.argv[1])
    import os
    used = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 3, resource.getrlimit(
        resource.RLIMIT_NOFILE)[1]))
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.get_event_loop().run_until_complete(main())
"""


def health(path):
    conn = _UnixConnection(path, 5)
    try:
        conn.request("GET", "/v1/health")
        return conn.getresponse().status
    finally:
        conn.close()


def test_running_out_of_descriptors_in_accept_is_said_once_and_survived(tmp_path):
    path = str(tmp_path / "api.sock")
    child = subprocess.Popen([sys.executable, "-c", CHILD, path], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True,
                             env=dict(os.environ, PYTHONPATH=os.getcwd()))
    clients = []
    try:
        assert child.stdout.readline().strip() == "ready"
        for _ in range(12):  # more than the 3 descriptors left: accepts fail with EMFILE
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            clients.append(sock)
        time.sleep(3.5)  # asyncio retries the accept every second
        for sock in clients:
            sock.close()
        clients = []
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            try:
                status = health(path)
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200
        time.sleep(5.5)  # quiet long enough: the episode is over
        assert health(path) == 200
        assert child.poll() is None
    finally:
        for sock in clients:
            sock.close()
        child.terminate()
        _, err = child.communicate(timeout=10)
    assert err.count("cannot accept API connections on unix") == 1, err
    assert "out of system resource" not in err and "Traceback" not in err, err
    assert "accepting API connections again" in err, err


def _accepted(guard, family, address):
    """(the listener, the connection the guard's listener accepted) for one client."""
    listener = guard.listener(family, "unix" if family == socket.AF_UNIX else "tcp")
    listener.bind(address)
    listener.listen(1)
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect(listener.getsockname())
    conn, _address = listener.accept()
    client.close()
    return listener, conn


def test_a_unix_connection_takes_a_large_answer_in_one_send_and_tcp_keeps_autotuning(tmp_path):
    import asyncio
    from agent.api import server
    loop = asyncio.new_event_loop()
    guard = server.Guard()
    guard.install(loop)
    made = []
    try:
        made += _accepted(guard, socket.AF_UNIX, str(tmp_path / "api.sock"))
        with open("/proc/sys/net/core/wmem_max") as f:
            cap = int(f.read())
        # the kernel doubles what is set, within net.core.wmem_max
        expected = 2 * min(server.UNIX_SEND_BUFFER, cap)
        assert made[1].getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == expected
        assert expected >= 2 * 300 * 1024 or cap < server.UNIX_SEND_BUFFER
        made += _accepted(guard, socket.AF_INET, ("127.0.0.1", 0))
        # TCP: untouched (a size set by hand would turn the kernel's autotuning off;
        # autotuned on loopback it is some other size)
        assert made[3].getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) != expected
    finally:
        for sock in made:
            sock.close()
        loop.close()


def test_deadlines_end_silent_connections_and_spare_those_being_served():
    """A connection must send a request head within header_timeout, and the next one
    within idle_timeout of an answer; never cut while a request is served, however
    long. Deadlines are moved, not timers made per request."""
    import asyncio
    from types import SimpleNamespace

    from agent.api import server
    loop = asyncio.new_event_loop()
    guard = server.Guard(SimpleNamespace(header_timeout=0.3, idle_timeout=0.5,
                                         max_connections=8, max_connections_per_peer=8))
    guard.install(loop)
    listener = guard.listener(socket.AF_UNIX, "unix")
    peers = []

    def admitted():
        mine, peer = socket.socketpair()
        conn = server._Conn(mine.family, mine.type, mine.proto, fileno=mine.detach())
        assert guard.admit(listener, conn, "") is None
        peers.append(peer)
        return conn, peer

    def ended(peer):   # the daemon shut the connection down: its peer reads EOF
        try:
            return peer.recv(1, socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False

    def wait(seconds):
        loop.run_until_complete(asyncio.sleep(seconds))

    try:
        _silent, silent_peer = admitted()
        busy, busy_peer = admitted()
        quick, quick_peer = admitted()
        guard._disarm(busy)            # a request head at once, served for 0.45 s
        guard._disarm(quick)
        guard._arm(quick, 0.1)         # a shorter wait than the timer made at admission
        wait(0.2)
        assert ended(quick_peer) and not ended(silent_peer) and guard.timeouts == 1
        wait(0.25)
        assert ended(silent_peer) and guard.timeouts == 2
        assert not ended(busy_peer)    # past header_timeout, but being served
        guard._arm(busy, guard.idle_timeout)   # answered: idle_timeout for the next head
        wait(0.3)
        assert not ended(busy_peer)
        guard._disarm(busy)            # the next request, answered at once
        guard._arm(busy, guard.idle_timeout)
        wait(0.3)                      # 0.6 s after the first answer, 0.3 after this one
        assert not ended(busy_peer)
        wait(0.35)
        assert ended(busy_peer) and guard.timeouts == 3
    finally:
        for conn in list(guard.open.values()):
            conn.close()
        for peer in peers:
            peer.close()
        loop.close()
    assert not guard.open and guard.counts["unix"] == 0
