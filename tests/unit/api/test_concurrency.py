"""Writers at the same time, through the served API in front of the served simulator: of
requests that conflict (overlapping subnets, one forwarded port), exactly one wins and the
others get a 409 naming the network they lost to. Several rounds, as a race may hide in
one."""
import concurrent.futures
import threading

import pytest

from agent.core import desired

ROUNDS = 5
WRITERS = 8


def at_once(calls):
    """Run the callables in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def gateways(engine):
    return {rec["name_label"]: rec["other_config"] for rec in engine.objects["network"].values()
            if desired.ADDRESS in rec["other_config"]}


def one_winner(results, ok):
    statuses = sorted(status for status, _data in results)
    assert statuses == [ok] + [409] * (len(results) - 1), results
    winner = [data for status, data in results if status == ok][0]["name"]
    for status, data in results:
        if status == 409:
            assert data["error"]["details"]["network"] == winner, data
    return winner


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_overlapping_subnets_created_at_once_one_201(unix, engine, round_):
    results = at_once([
        (lambda i=i: unix("POST", "/v1/networks", {
            "name": "net%d" % i, "gateway": {"address": "172.16.%d.%d/24" % (round_, i + 1)}}))
        for i in range(WRITERS)])
    winner = one_winner(results, 201)
    assert list(gateways(engine)) == [winner]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_one_port_forwarded_at_once_one_201(unix, engine, round_):
    results = at_once([
        (lambda i=i: unix("POST", "/v1/networks", {
            "name": "net%d" % i, "gateway": {
                "address": "172.%d.%d.1/24" % (16 + i, round_),
                "forwards": [{"proto": "tcp", "port": 8080,
                              "to": "172.%d.%d.10:80" % (16 + i, round_)}]}}))
        for i in range(WRITERS)])
    winner = one_winner(results, 201)
    assert list(gateways(engine)) == [winner]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_gateways_put_at_once_one_200(unix, engine, round_):
    names = ["net%d" % i for i in range(WRITERS)]
    for name in names:
        assert unix("POST", "/v1/networks", {"name": name})[0] == 201
    results = at_once([
        (lambda name=name, i=i: unix("PUT", "/v1/networks/%s/gateway" % name, {
            "address": "10.%d.0.%d/16" % (round_, i + 1)}))
        for i, name in enumerate(names)])
    winner = one_winner(results, 200)
    assert list(gateways(engine)) == [winner]


def test_one_topology_applied_twice_at_once_one_200(unix, engine):
    lab = {"name": "lab", "networks": [{"name": "pxe"}, {"name": "private", "gateway": {
        "address": "172.16.0.1/24"}}], "vms": [{"name": "Fuel", "nics": ["pxe"]}]}
    results = at_once([lambda: unix("POST", "/v1/topology/apply", lab)] * 2)
    assert sorted(status for status, _data in results) == [200, 409], results
    refused = [data for status, data in results if status == 409][0]
    assert "lab is being applied" in refused["error"]["message"]
    assert sorted(r["name_label"] for r in engine.objects["network"].values()
                  ).count("private") == 1
