import os
import shutil

import pytest

from agent.xapisim import ovs
from tests.integration import netns as N

NEEDED = ("ip", "iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore", "ping")


def _skip_reason():
    if os.geteuid() != 0:
        return "integration tests need root (network namespaces, iptables)"
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        return "integration tests need %s (run tests/run, which installs them)" % ", ".join(missing)
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason is None:
        return
    marker = pytest.mark.skip(reason=reason)
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(marker)


@pytest.fixture
def workdir():
    path = N.make_workdir()
    yield path
    N.remove_workdir(path)


@pytest.fixture
def backend():
    """The network backend of ``topo``; a test runs on both with
    ``@pytest.mark.parametrize("backend", N.BACKENDS)``."""
    return N.LINUX_BRIDGE


@pytest.fixture
def topo(backend):
    if backend == N.OPENVSWITCH:
        reason = ovs.installed() or (None if shutil.which("ethtool") else
                                     "ethtool is not installed")
        if reason:
            pytest.skip(reason + " (tests/run installs it)")
    topology = N.Topology(backend=backend)
    daemons = topology.ovs.pids() if topology.ovs is not None else []
    yield topology
    topology.close()
    left = [pid for pid in daemons if ovs.alive(pid)]  # nothing of OVS may outlive a test
    assert not left, "OVS daemons %s still run after the test" % left


@pytest.fixture
def daemons():
    """Start daemons with ``daemons(ns, workdir, gateways)``; all are stopped afterwards."""
    started = []

    def start(ns, workdir, gateways, **kw):
        wait = kw.pop("wait_ready", True)
        daemon = N.Daemon(ns, workdir, gateways, **kw)
        started.append(daemon)
        return daemon.start(wait_ready=wait)

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def lab():
    """``lab(hosts=3, backend="openvswitch")``: a simulated pool (tests/integration/pool.py)
    with its hosts in namespaces; closed afterwards, and nothing may be left behind."""
    from tests.integration.pool import Lab
    made = []

    def start(hosts=3, backend=N.OPENVSWITCH):
        if backend == N.OPENVSWITCH:
            reason = ovs.installed() or (None if shutil.which("ethtool") else
                                         "ethtool is not installed")
            if reason:
                pytest.skip(reason + " (tests/run installs it)")
        made.append(Lab(hosts, "bridge" if backend == N.LINUX_BRIDGE else "openvswitch"))
        return made[-1]

    yield start
    for one in made:
        one.close()
