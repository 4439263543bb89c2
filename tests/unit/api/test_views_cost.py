"""What a list costs in XAPI calls: the views are built from one read of the records, so
listing 20 networks (or VMs) takes as many calls as listing 2. Calls are counted where
XAPI would see them: in the simulator, behind its HTTP server."""
import collections

import pytest

from agent.service.networks import Networks
from agent.service.vms import Vms


@pytest.fixture
def counted(engine):
    """engine.call, counted by method; what a worker thread's new session costs aside
    (the login, and the API version XenAPI 23.8 asks for right after it)."""
    counts = collections.Counter()
    real = engine.call
    login = ("session.", "host.get_API_version", "pool.get_all", "pool.get_master")

    def call(method, params):
        if not method.startswith(login) or method == "pool.get_all_records":
            counts[method] += 1
        return real(method, params)
    engine.call = call
    return counts


def populate(xenapi, first, last):
    networks, vms = Networks(xenapi), Vms(xenapi)
    for i in range(first, last):
        networks.create("net%02d" % i, gateway={"address": "10.%d.0.1/24" % i},
                        vlan={"tag": 100 + i, "pif": "eth0"} if i % 2 else None)
        vms.create("vm%02d" % i, nics=["net%02d" % i], disks=[{"size_gib": 1}])


def cost(http, counted, path):
    counted.clear()
    status, data = http("GET", path)
    assert status == 200
    return sum(counted.values()), len(data)


@pytest.mark.parametrize("path", ["/v1/networks", "/v1/vms"])
def test_a_list_costs_the_same_calls_for_2_or_20_items(xenapi, unix, counted, path):
    populate(xenapi, 0, 2)
    unix("GET", path)  # the first request of a process also sweeps (agent.service.steps)
    small, listed = cost(unix, counted, path)
    assert listed >= 2
    populate(xenapi, 2, 20)
    large, listed = cost(unix, counted, path)
    assert listed >= 20
    print("GET %s: %d XAPI calls for %d items (%d for 2)" % (path, large, listed, small))
    assert large == small, dict(counted)
    assert large <= 6, dict(counted)  # one get_all_records per class at most
