"""What the API reads from the daemon (issue 10): the snapshot the reconciler publishes,
and kernel checks asked of the kernel thread, the one owner of the kernel."""
import threading
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

from agent.core import config as configmod
from agent.daemon import main
from agent.daemon.reconciler import Snapshot

Rule = namedtuple("Rule", "position target")


class KernelOnly(object):
    """The reconciler's iptables and sysctl adapters: they note the thread that used them."""

    def __init__(self):
        self.threads = []

    def observe(self, table):
        self.threads.append(threading.current_thread().name)
        return {"FORWARD": [Rule(0, "XGW-FORWARD")]}

    def ip_forward(self):
        self.threads.append(threading.current_thread().name)
        return True


class Daemon(object):
    def __init__(self):
        self.kernel = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kernel")
        adapters = KernelOnly()
        self.reconciler = type("R", (), {})()
        self.reconciler.iptables = self.reconciler.sysctl = adapters
        self.reconciler.published = Snapshot(
            gateways=({"name": "private", "state": "applied"},), summary="1 gateway",
            rounds=3, writes=0, commits=0, last=None, failure=None, failures=0)
        self.xapi = None
        defaults = configmod.defaults()
        self.config = defaults._replace(agent=defaults.agent._replace(
            network_conf="/nonexistent/network.conf", ovsdb="unix:/nonexistent/db.sock"))

    def check_data(self):
        return {"rounds": 3, "round_failure": None, "api": {"listen": None}}


def test_kernel_checks_run_on_the_kernel_thread_with_the_reconcilers_adapters():
    daemon = Daemon()
    state = main.DaemonState(daemon)
    answers = []
    api_thread = threading.Thread(target=lambda: answers.append(state.kernel_checks()),
                                  name="api_0")
    api_thread.start()
    api_thread.join(10)
    daemon.kernel.shutdown()
    checks = {c.name: c.status for c in answers[0]}
    assert checks["forward path"] == "ok" and checks["ip_forward"] == "ok"
    assert checks["reconciler"] == "ok"
    used = daemon.reconciler.iptables.threads
    assert used and all(name.startswith("kernel") for name in used), used


def test_the_api_reads_the_published_snapshot_only():
    daemon = Daemon()
    state = main.DaemonState(daemon)
    gateways = state.gateways()
    assert gateways == [{"name": "private", "state": "applied"}]
    gateways[0]["state"] = "changed by a caller"
    assert daemon.reconciler.published.gateways[0]["state"] == "applied"
    assert state.problems() == []
