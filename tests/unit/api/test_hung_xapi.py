"""A hung XAPI: the simulator runs as a process of its own and the test stops it
(SIGSTOP): connections are accepted by the kernel, no answer comes. Requests answer
promptly with 503 xapi_timeout, /v1/health shows XAPI stalled; once it runs again
(SIGCONT) both recover."""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from agent.api.client import Client
from agent.api.xapi import Sessions
from tests.unit.api.conftest import FakeState, Http, start

TIMEOUT = 1.0
STOP_FOR = 20.0  # the test resumes the simulator after this long whatever happens


@pytest.fixture(params=["http", "unix"])
def sim_process(request):
    """(the simulator's process, the URL the API reaches it at: TCP or its Unix socket)."""
    directory = "/tmp/xgwhung-%d-%s" % (os.getpid(), request.param)  # no '_' (XenAPI's
    os.makedirs(directory)                                       # UDSTransport)
    path = os.path.join(directory, "xapi")
    proc = subprocess.Popen([sys.executable, "-m", "agent.xapisim", "--listen",
                             "127.0.0.1:0", "--unix", path], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    line = proc.stdout.readline()
    match = re.search(r"http://[0-9.]+:\d+", line)
    assert match, line
    yield proc, match.group(0) if request.param == "http" else "unix:" + path
    os.kill(proc.pid, signal.SIGCONT)
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()
    shutil.rmtree(directory, ignore_errors=True)


def stop(pid):
    """SIGSTOP ``pid`` and return once the kernel shows every thread of it stopped (state
    T): the signal takes effect in each thread when it next runs, which on a busy machine
    is not at once, and a request sent before that may still be answered."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = set()
        for task in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, task)) as f:
                    states.add(f.read().rsplit(")", 1)[1].split()[0])
            except (IOError, OSError):
                pass   # a thread that ended meanwhile
        if states == {"T"}:
            return
        time.sleep(0.01)
    raise AssertionError("the simulator (pid %d) did not stop within 10 s" % pid)


def timed(call, *args):
    began = time.monotonic()
    result = call(*args)
    return result, time.monotonic() - began


def test_a_hung_xapi_is_a_prompt_503_and_health_says_stalled(sim_process, tls_files):
    proc, url = sim_process
    sessions = Sessions(url, "root", "", timeout=TIMEOUT, long_timeout=2 * TIMEOUT)
    api = start((None, url, None), tls_files, state=FakeState(), sessions=sessions)
    unix = Http(Client(socket_path=api.socket))
    resume = threading.Timer(STOP_FOR, os.kill, (proc.pid, signal.SIGCONT))
    try:
        assert unix("GET", "/v1/networks")[0] == 200
        assert unix("GET", "/v1/health")[1]["xapi"]["stalled"] is False
        stop(proc.pid)
        resume.start()
        (status, data), took = timed(unix, "GET", "/v1/networks")
        assert status == 503 and data["error"]["code"] == "xapi_timeout", (took, data)
        assert "did not answer within 1 s" in data["error"]["message"], data
        assert took < 3 * TIMEOUT, took
        (status, data), took = timed(unix, "POST", "/v1/networks", {"name": "pxe"})
        assert status == 503 and data["error"]["code"] == "xapi_timeout", data
        assert took < 3 * TIMEOUT, took
        status, health = unix("GET", "/v1/health")
        assert status == 200 and health["status"] == "degraded", health
        assert health["xapi"]["stalled"] is True
        assert "did not answer" in health["xapi"]["reason"]
        assert unix("GET", "/v1/gateways")[0] == 200  # what needs no XAPI still answers
        resume.cancel()
        os.kill(proc.pid, signal.SIGCONT)
        status, names = unix("GET", "/v1/networks")
        assert status == 200 and "pxe" not in [n["name"] for n in names]
        status, health = unix("GET", "/v1/health")
        assert health["status"] == "ok" and health["xapi"]["stalled"] is False, health
    finally:
        resume.cancel()
        api.close()
