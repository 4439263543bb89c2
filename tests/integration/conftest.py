import os
import shutil

import pytest

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
def topo():
    topology = N.Topology()
    yield topology
    topology.close()


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
