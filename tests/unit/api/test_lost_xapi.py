"""All or nothing across a lost XAPI connection: the API talks to the served simulator
through a proxy the test cuts in the middle of a VM creation (right after XAPI carried out
one step, before its answer comes back), then brings back. The client gets a 503; once
XAPI answers again what the creation had made is gone, and the same request succeeds."""
import collections
import threading
import time
from urllib.parse import urlsplit

import pytest

from agent.api.client import Client
from agent.service import steps
from tests.unit.api.conftest import Http, start
from tests.unit.api.cutter import Cutter

VM = {"name": "Fuel", "nics": ["pxe"], "disks": [{"size_gib": 5}, {"size_gib": 1}],
      "start": True}


def inventory(engine):
    """Objects by class, and what carries a creation's mark."""
    counts = collections.Counter()
    for cls in ("VM", "VDI", "VBD", "VIF", "network", "VLAN"):
        for rec in engine.objects[cls].values():
            if steps.in_flight(rec):  # a clone is a template until it is made a VM
                counts["in flight"] += 1
            if not (cls == "VM" and rec["is_a_template"]):
                counts[cls] += 1
    return counts


@pytest.fixture
def through(served, tls_files, engine):
    """(API whose XAPI is behind a Cutter, the Cutter, a socket client)."""
    port = urlsplit(served[1]).port
    cutter = Cutter(("127.0.0.1", port))
    api = start(served, tls_files, xapi_url=cutter.url)
    yield api, cutter, Http(Client(socket_path=api.socket))
    api.close()
    cutter.cut()


def cut_after(engine, cutter, method, nth=1):
    """Cut the connection once XAPI has carried out the nth call of ``method``."""
    real, seen = engine.call, collections.Counter()

    def call(name, params):
        reply = real(name, params)
        seen[name] += 1
        if name == method and seen[name] == nth:
            cutter.cut()
        return reply
    engine.call = call


@pytest.mark.parametrize("method,nth", [
    ("VM.clone", 1), ("VDI.create", 2), ("VBD.create", 1), ("VIF.create", 1), ("VM.start", 1)])
def test_a_vm_creation_cut_half_way_is_undone_once_xapi_is_back(through, engine, method, nth):
    api, cutter, unix = through
    assert unix("POST", "/v1/networks", {"name": "pxe"})[0] == 201
    before = inventory(engine)
    cut_after(engine, cutter, method, nth)
    status, data = unix("POST", "/v1/vms", VM)
    assert status == 503 and data["error"]["code"] == "xapi_unavailable", data
    assert inventory(engine) != before  # XAPI kept what it made; it cannot be undone yet
    cutter.restore()
    status, vm = unix("POST", "/v1/vms", VM)
    assert status == 201, vm
    assert vm["power_state"] == "Running" and len(vm["disks"]) == 2
    after = inventory(engine)
    assert after == before + collections.Counter({"VM": 1, "VDI": 2, "VBD": 3, "VIF": 1})
    assert [v["name"] for v in unix("GET", "/v1/vms")[1]] == ["Fuel"]


def test_the_next_request_sweeps_even_without_a_retry(through, engine):
    api, cutter, unix = through
    assert unix("POST", "/v1/networks", {"name": "pxe"})[0] == 201
    before = inventory(engine)
    cut_after(engine, cutter, "VBD.create", 2)
    assert unix("POST", "/v1/vms", VM)[0] == 503
    cutter.restore()
    assert unix("GET", "/v1/networks")[0] == 200
    assert inventory(engine) == before


def test_a_network_creation_cut_half_way_is_undone_once_xapi_is_back(through, engine):
    api, cutter, unix = through
    before = inventory(engine)
    cut_after(engine, cutter, "pool.create_VLAN_from_PIF")
    body = {"name": "storage", "vlan": {"tag": 100, "pif": "eth0"},
            "gateway": {"address": "172.16.5.1/24"}}
    assert unix("POST", "/v1/networks", body)[0] == 503
    cutter.restore()
    status, net = unix("POST", "/v1/networks", body)
    assert status == 201 and net["vlan"] == 100, net
    assert inventory(engine) == before + collections.Counter(
        {"network": 1, "VLAN": 1})


def test_a_creation_that_xapi_stops_answering_is_undone_once_it_answers(served, tls_files,
                                                                        engine):
    """XAPI carries out a step, then hangs (the test holds the simulator's lock): the
    client gets a prompt 503 xapi_timeout (no rollback call waits for a hung XAPI); once
    XAPI answers, the retry succeeds and nothing is left over."""
    from agent.api.xapi import Sessions
    sessions = Sessions(served[1], "root", "", timeout=0.5, long_timeout=2.0)
    api = start(served, tls_files, sessions=sessions)
    unix = Http(Client(socket_path=api.socket))
    release = threading.Event()
    real = engine.call

    def call(name, params):
        reply = real(name, params)
        if name == "VBD.create" and not release.is_set():
            with engine.lock:  # every other call waits as on a hung xapi
                release.wait(20)
        return reply
    try:
        assert unix("POST", "/v1/networks", {"name": "pxe"})[0] == 201
        before = inventory(engine)
        engine.call = call
        began = time.monotonic()
        status, data = unix("POST", "/v1/vms", VM)
        took = time.monotonic() - began
        assert status == 503 and data["error"]["code"] == "xapi_timeout", data
        assert took < 1.5, took
        release.set()
        status, vm = unix("POST", "/v1/vms", VM)
        assert status == 201, vm
        assert inventory(engine) == before + collections.Counter(
            {"VM": 1, "VDI": 2, "VBD": 3, "VIF": 1})
    finally:
        release.set()
        api.close()
