"""The HTTP API through its real stack (aiohttp listeners, TLS, HTTP/1.1 clients), in
front of the XAPI simulator. Every answer is checked against the OpenAPI document by the
``Http`` helper (conftest)."""
import concurrent.futures
import http.client
import json
import socket

import pytest

from agent.api import openapi
from agent.api.client import Client
from tests.unit.api.conftest import ADMIN, READ, FakeState, Http, start


def error_code(data):
    return data["error"]["code"]


# ---- the document and the routes ----------------------------------------------------------

def test_every_route_is_documented_and_every_documented_route_exists(api):
    routes = set()
    for resource in api.runner.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        for route in resource:
            routes.add((route.method.lower(), path))
    documented = {(m, p) for p, ops in openapi.PATHS.items() for m in ops}
    assert routes - {("head", p) for _m, p in routes} == documented


def test_the_document_is_served_and_valid_json(anonymous):
    status, doc = anonymous("GET", "/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == set(openapi.PATHS)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["operationId"], (method, path)
            if op["x-scope"] is not None:
                assert "401" in op["responses"], (method, path)


def test_health_needs_no_token(anonymous):
    status, data = anonymous("GET", "/v1/health")
    assert status == 200 and data["status"] == "ok" and data["gateways"] == {"applied": 1}


# ---- authentication -----------------------------------------------------------------------

def test_tcp_needs_a_valid_token(anonymous, api):
    status, data = anonymous("GET", "/v1/networks")
    assert status == 401 and error_code(data) == "unauthorized"
    wrong = Http(Client(url=api.url, token="x" * 64, cafile=api.cafile))
    assert wrong("GET", "/v1/gateways")[0] == 401
    almost = Http(Client(url=api.url, token=ADMIN[:-1], cafile=api.cafile))
    assert almost("GET", "/v1/gateways")[0] == 401


def test_a_read_token_reads_but_cannot_write(reader, engine):
    assert reader("GET", "/v1/networks")[0] == 200
    before = len(engine.objects["network"])
    status, data = reader("POST", "/v1/networks", {"name": "pxe"})
    assert status == 403 and error_code(data) == "forbidden"
    assert len(engine.objects["network"]) == before


def test_the_unix_socket_needs_no_token(unix):
    assert unix("POST", "/v1/networks", {"name": "pxe"})[0] == 201
    assert unix("GET", "/metrics")[0] == 200


def test_tokens_never_reach_the_logs(reader, caplog):
    reader("POST", "/v1/networks", {"name": "pxe"})
    assert READ not in caplog.text and "reader" in caplog.text


def test_plain_http_on_a_tls_port_is_refused(api):
    port = int(api.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    with pytest.raises((http.client.HTTPException, OSError)):
        connection.request("GET", "/v1/health")
        connection.getresponse().read()


# ---- networks -----------------------------------------------------------------------------

def test_network_lifecycle(admin, engine):
    status, net = admin("POST", "/v1/networks", {
        "name": "private", "description": "OpenStack management",
        "gateway": {"address": "172.16.0.1/24", "nat": True}})
    assert status == 201 and net["bridge"].startswith("xapi")
    assert net["gateway"] == {"address": "172.16.0.1/24", "nat": True, "forwards": [],
                              "public": False, "inbound": [], "host": None}
    assert admin("GET", "/v1/networks/private")[1] == net
    assert admin("GET", "/v1/networks/" + net["uuid"])[1] == net
    assert "private" in [n["name"] for n in admin("GET", "/v1/networks")[1]]
    status, net = admin("PUT", "/v1/networks/private/gateway",
                        {"address": "172.16.0.1/24", "nat": False})
    assert status == 200 and net["gateway"]["nat"] is False
    status, net = admin("DELETE", "/v1/networks/private/gateway")
    assert status == 200 and net["gateway"] is None
    assert admin("DELETE", "/v1/networks/private") == (204, None)
    assert admin("GET", "/v1/networks/private")[0] == 404


def test_vlan_network(admin):
    status, net = admin("POST", "/v1/networks", {"name": "storage",
                                                 "vlan": {"tag": 100, "pif": "eth0"}})
    assert status == 201 and net["vlan"] == 100


@pytest.mark.parametrize("body,field", [
    ({"name": "bad name"}, "name"),
    ({}, "name"),
    ({"name": "n", "colour": "red"}, "colour"),
    ({"name": "n", "gateway": {"address": "172.16.0.0/24"}}, "gateway.address"),
    ({"name": "n", "gateway": {"address": "172.16.0.1/24", "nat": "yes"}}, "gateway.nat"),
    ({"name": "n", "gateway": {"nat": True}}, "gateway.address"),
    ({"name": "n", "vlan": {"tag": 4095}}, "vlan.tag"),
    ({"name": "n", "vlan": {"tag": True}}, "vlan.tag"),
    (["n"], "body"),
])
def test_invalid_network_input_is_400_naming_the_field(admin, engine, body, field):
    before = len(engine.objects["network"])
    status, data = admin("POST", "/v1/networks", body)
    assert status == 400 and error_code(data) == "invalid_input"
    assert data["error"]["details"]["field"] == field, data
    assert len(engine.objects["network"]) == before


def test_conflicts_are_409_and_name_what_conflicts(admin, engine):
    admin("POST", "/v1/networks", {"name": "private",
                                   "gateway": {"address": "172.16.0.1/24"}})
    status, data = admin("POST", "/v1/networks", {"name": "private"})
    assert status == 409 and data["error"]["details"]["field"] == "name"
    status, data = admin("POST", "/v1/networks", {"name": "other",
                                                  "gateway": {"address": "172.16.0.9/16"}})
    assert status == 409 and data["error"]["details"]["network"] == "private"
    admin("POST", "/v1/vms", {"name": "Controller", "nics": ["private"]})
    status, data = admin("DELETE", "/v1/networks/private")
    assert status == 409 and data["error"]["details"]["vms"] == ["Controller"]


def test_unknown_objects_and_routes_are_404(admin):
    assert error_code(admin("GET", "/v1/networks/nope")[1]) == "not_found"
    assert admin("DELETE", "/v1/vms/nope")[0] == 404
    status, data = admin.client.call("GET", "/v1/nothing")
    assert status == 404 and error_code(data) == "not_found"
    status, data = admin.client.call("PATCH", "/v1/networks")
    assert status == 405 and error_code(data) == "method_not_allowed"


def test_malformed_bodies(api):
    def raw(body, kind="application/json"):
        connection = http.client.HTTPConnection("localhost")
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(api.socket)
        connection.sock = sock
        connection.request("POST", "/v1/networks", body=body,
                           headers={"Content-Type": kind})
        response = connection.getresponse()
        return response.status, json.loads(response.read().decode())
    status, data = raw(b"{not json")
    assert status == 400 and data["error"]["details"]["field"] == "body"
    assert raw(b'{"name": "x"}', "text/plain")[0] == 415
    status, data = raw(b'{"name": "%s"}' % (b"x" * 100000))
    assert status == 413 and error_code(data) == "payload_too_large"
    assert raw(b"\xff\xfe")[0] == 400


def test_a_bug_is_a_500_without_a_traceback(api):
    api.api.state.fail = True
    status, data = Http(Client(socket_path=api.socket))("GET", "/v1/gateways")
    assert status == 500 and data["error"]["code"] == "internal_error"
    assert "boom" not in json.dumps(data) and "Traceback" not in json.dumps(data)


def test_concurrent_creates_of_one_name_give_one_201_and_409s(unix, engine):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: unix("POST", "/v1/networks", {"name": "pxe"}),
                                range(4)))
    statuses = sorted(status for status, _data in results)
    assert statuses == [201, 409, 409, 409]
    assert [n["name_label"] for n in engine.objects["network"].values()].count("pxe") == 1


def test_concurrent_vm_creates_of_one_name(unix, engine):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: unix("POST", "/v1/vms", {"name": "Fuel"}),
                                range(2)))
    assert sorted(s for s, _d in results) == [201, 409]
    assert len([v for v in engine.objects["VM"].values() if v["name_label"] == "Fuel"]) == 1


# ---- VMs --------------------------------------------------------------------------------

def test_vm_lifecycle(admin, engine):
    for name in ("pxe", "private", "br100"):
        admin("POST", "/v1/networks", {"name": name})
    status, vm = admin("POST", "/v1/vms", {
        "name": "Compute", "memory_mib": 4096, "vcpus": 2,
        "nics": ["pxe", "private", "br100"], "disks": [{"size_gib": 50}], "boot": "ncd",
        "himn": True, "iso": "ubuntu-22.04-server.iso"})
    assert status == 201 and vm["power_state"] == "Halted" and vm["warnings"] == []
    assert [n["network"] for n in vm["nics"]][:3] == ["pxe", "private", "br100"]
    assert vm["disks"][0]["size_gib"] == 50 and vm["iso"] == "ubuntu-22.04-server.iso"
    assert admin("GET", "/v1/vms/Compute")[1]["uuid"] == vm["uuid"]
    assert [v["name"] for v in admin("GET", "/v1/vms")[1]] == ["Compute"]
    assert admin("POST", "/v1/vms/Compute/start")[1]["power_state"] == "Running"
    status, data = admin("DELETE", "/v1/vms/Compute")
    assert status == 409 and data["error"]["details"]["power_state"] == "Running"
    assert admin("POST", "/v1/vms/Compute/shutdown", {"force": True})[1][
        "power_state"] == "Halted"
    status, gone = admin("DELETE", "/v1/vms/Compute")
    assert status == 200 and len(gone["disks_destroyed"]) == 1
    assert admin("GET", "/v1/vms/Compute")[0] == 404


def test_himn_attach_and_force_delete(admin):
    admin("POST", "/v1/vms", {"name": "Compute", "start": True})
    status, vm = admin("POST", "/v1/vms/Compute/himn")
    assert status == 200 and vm["himn"] and vm["nics"][0]["device"] == 9
    assert admin("POST", "/v1/vms/Compute/himn")[0] == 409
    assert admin("DELETE", "/v1/vms/Compute?force=maybe")[0] == 400
    assert admin("DELETE", "/v1/vms/Compute?force=true")[0] == 200


@pytest.mark.parametrize("body,field,status", [
    ({"name": "v", "memory_mib": 64}, "memory_mib", 400),
    ({"name": "v", "nics": ["nope"]}, "nics[0]", 404),
    ({"name": "v", "disks": [{"size_gib": 0}]}, "disks[0].size_gib", 400),
    ({"name": "v", "disks": [{"size": 1}]}, "disks[0].size", 400),
    ({"name": "v", "boot": "x"}, "boot", 400),
    ({"name": "v", "iso": "nope.iso"}, "iso", 404),
    ({"name": "v", "progress": "x"}, "progress", 400),
])
def test_invalid_vm_input(admin, engine, body, field, status):
    before = len(engine.objects["VM"])
    got, data = admin("POST", "/v1/vms", body)
    assert got == status and data["error"]["details"]["field"] == field
    assert len(engine.objects["VM"]) == before


def test_a_xapi_failure_is_502_and_rolled_back(admin, engine):
    from agent.xapisim.engine import XapiFailure
    before = {cls: len(engine.objects[cls]) for cls in ("VM", "VDI", "VBD", "VIF")}
    engine.fail_next["VM.start"] = [XapiFailure("HOST_NOT_ENOUGH_FREE_MEMORY", "4294967296",
                                                "1073741824")]
    status, data = admin("POST", "/v1/vms", {"name": "Big", "disks": [{"size_gib": 5}],
                                             "start": True})
    assert status == 502 and data["error"]["details"]["step"] == "start"
    assert data["error"]["details"]["xapi_code"] == "HOST_NOT_ENOUGH_FREE_MEMORY"
    assert {cls: len(engine.objects[cls]) for cls in before} == before


# ---- the daemon's side ----------------------------------------------------------------------

def test_gateways_and_metrics(reader):
    status, gateways = reader("GET", "/v1/gateways")
    assert status == 200 and gateways[0]["state"] == "applied"
    assert "since_monotonic" not in gateways[0]
    assert reader("GET", "/v1/gateways/xapi1")[1]["name"] == "private"
    assert reader("GET", "/v1/gateways/nope")[0] == 404
    reader("POST", "/v1/networks", {"name": "x"})  # a 403
    status, text = reader("GET", "/metrics")
    assert 'xgw_gateways{state="applied"} 1' in text
    assert 'xgw_api_requests_total{status="403"} 1' in text


def test_doctor(reader):
    status, data = reader("GET", "/v1/doctor")
    assert status == 200 and data["ok"] is True
    assert {c["name"] for c in data["checks"]} == {"xapi", "himn", "default SR"}


def test_xapi_unreachable_is_503_and_the_rest_works(served, tls_files):
    s = start(served, tls_files, xapi_url="http://127.0.0.1:9", state=FakeState())
    try:
        unix = Http(Client(socket_path=s.socket))
        status, data = unix("GET", "/v1/networks")
        assert status == 503 and error_code(data) == "xapi_unavailable"
        assert "unreachable" in data["error"]["message"]
        status, data = unix("POST", "/v1/vms", {"name": "v"})
        assert status == 503
        assert unix("GET", "/v1/gateways")[0] == 200
        status, data = unix("GET", "/v1/doctor")
        assert status == 200 and data["ok"] is False
    finally:
        s.close()


def test_insecure_tcp_needs_no_token(served, tls_files):
    s = start(served, tls_files, insecure=True)
    try:
        assert s.url.startswith("http://")
        assert Http(Client(url=s.url))("POST", "/v1/networks", {"name": "pxe"})[0] == 201
    finally:
        s.close()


def test_vm_creation_streams_its_progress(api, admin):
    from agent.api.client import ApiError
    admin("POST", "/v1/networks", {"name": "pxe"})
    client = Client(url=api.url, token=ADMIN, cafile=api.cafile)
    steps = []
    vm = client.stream("POST", "/v1/vms", {"name": "Fuel", "nics": ["pxe"],
                                           "disks": [{"size_gib": 50}], "start": True},
                       progress=steps.append)
    assert vm["power_state"] == "Running"
    assert steps[0] == "clone Other install media" and steps[-1] == "start"
    assert "disk 0: 50 GiB on Local storage" in steps
    with pytest.raises(ApiError) as info:
        client.stream("POST", "/v1/vms", {"name": "Fuel"}, progress=steps.append)
    assert info.value.status == 409
    with pytest.raises(ApiError) as info:  # refused before streaming: a plain 400
        client.stream("POST", "/v1/vms", {"name": "bad name"})
    assert info.value.status == 400 and info.value.details["field"] == "name"
