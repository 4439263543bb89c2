"""What the API answers when things go wrong: scopes as documented, hostile bodies, errors
mapped to HTTP by their class (a subclass inherits its parent's status), and one 500 body
whether the request streams or not."""
import http.client
import json
import socket

import pytest

from agent.api import openapi
from agent.api.client import Client
from agent.errors import AgentError, KernelError, LockTimeout
from tests.unit.api.conftest import FakeState, Http, start

LAB = {"name": "lab", "networks": [{"name": "pxe"}]}


def raw_post(api, path, body, kind="application/json"):
    connection = http.client.HTTPConnection("localhost", timeout=30)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(api.socket)
    connection.sock = sock
    connection.request("POST", path, body=body, headers={"Content-Type": kind})
    response = connection.getresponse()
    return response.status, json.loads(response.read().decode())


# ---- scopes come from the document ------------------------------------------------------

def test_a_read_token_may_plan_a_topology_as_documented(reader, engine):
    assert openapi.PATHS["/v1/topology/plan"]["post"]["x-scope"] == "read"
    before = len(engine.objects["network"])
    status, data = reader("POST", "/v1/topology/plan", LAB)
    assert status == 200 and data["changes"] is True, data
    assert len(engine.objects["network"]) == before
    status, data = reader("POST", "/v1/topology/apply", LAB)
    assert status == 403 and data["error"]["code"] == "forbidden"


def test_every_route_asks_for_the_scope_its_document_names(api, reader, anonymous):
    """A read token gets past authentication exactly where the document says read; no
    token gets past it only where the document says none."""
    for path, ops in openapi.PATHS.items():
        concrete = path.replace("{key}", "nope").replace("{name}", "nope")
        for method, op in ops.items():
            body = {} if "requestBody" in op else None
            status, _ = reader.client.call(method.upper(), concrete, body)
            assert (status == 403) == (op["x-scope"] == "admin"), (method, path, status)
            status, _ = anonymous.client.call(method.upper(), concrete, body)
            assert (status == 401) == (op["x-scope"] is not None), (method, path, status)


# ---- bodies -------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b"[" * 100000 + b"]" * 100000,
    b'{"name": "x", "gateway": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
    b"[" * 100000,  # not even closed
])
def test_deeply_nested_bodies_are_400_not_a_traceback(served, tls_files, engine, caplog,
                                                      body):
    before = len(engine.objects["network"])
    api = start(served, tls_files, max_body=1 << 20)  # the daemon's default limit
    try:
        status, data = raw_post(api, "/v1/networks", body)
    finally:
        api.close()
    assert status == 400 and data["error"]["code"] == "invalid_input", data
    assert data["error"]["details"]["field"] == "body"
    assert "deep" in data["error"]["message"]
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
    assert len(engine.objects["network"]) == before


def test_nesting_inside_strings_does_not_count(api):
    status, data = raw_post(api, "/v1/networks", json.dumps(
        {"name": "pxe", "description": "[[[[" * 100 + '\\"{{{' * 100}).encode())
    assert status == 201, data


# ---- errors by class ----------------------------------------------------------------------

class Broken(FakeState):
    def __init__(self, error):
        FakeState.__init__(self)
        self.error = error

    def kernel_checks(self):
        raise self.error


@pytest.mark.parametrize("error,status,code", [
    (KernelError("cannot read the filter table: Permission denied"), 500, "kernel_error"),
    (LockTimeout("the xtables lock stayed taken for 30 s"), 503, "xtables_lock_timeout"),
    (AgentError("something the map does not know"), 500, "agent_error"),
])
def test_an_error_takes_the_status_of_its_class_or_its_parents(served, tls_files, error,
                                                               status, code):
    s = start(served, tls_files, state=Broken(error))
    try:
        got, data = Http(Client(socket_path=s.socket))("GET", "/v1/doctor")
        assert (got, data["error"]["code"]) == (status, code), data
        assert data["error"]["message"] == str(error)
    finally:
        s.close()


def test_a_bug_gives_one_500_body_streamed_or_not(api, monkeypatch):
    from agent.service import vms
    monkeypatch.setattr(vms.Vms, "create", lambda *a, **k: 1 // 0)
    plain = Http(Client(socket_path=api.socket))
    status, data = plain("POST", "/v1/vms", {"name": "Fuel"})
    assert status == 500
    client = Client(socket_path=api.socket)
    lines = []
    with pytest.raises(Exception) as info:
        client.stream("POST", "/v1/vms", {"name": "Fuel"}, progress=lines.append)
    assert info.value.status == 500
    assert info.value.to_dict()["message"] == data["error"]["message"]
    assert "ZeroDivision" not in json.dumps(data)

