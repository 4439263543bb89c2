"""JSON-RPC as xapi answers it (api_server.ml with rpclib's Jsonrpc): values as rpclib
writes them, and HTTP 500 for what rpclib rejects as Malformed_method_request."""
import http.client
import json
from urllib.parse import urlparse


def post(url, body):
    """(HTTP status, decoded JSON or None) of a raw POST to /jsonrpc."""
    address = urlparse(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", "/jsonrpc", data, {"Content-Type": "application/json"})
    reply = connection.getresponse()
    text = reply.read()
    connection.close()
    try:
        return reply.status, json.loads(text.decode())
    except ValueError:
        return reply.status, None


def login(url):
    status, reply = post(url, {"jsonrpc": "2.0", "method": "session.login_with_password",
                               "params": ["root", ""], "id": 1})
    assert status == 200
    return reply["result"]


def test_records_with_datetimes_go_out_as_strings(served):
    _engine, url, _unix = served
    session = login(url)
    for cls in ("VM", "host", "pool", "VDI", "task", "VM_metrics", "host_metrics"):
        status, reply = post(url, {"jsonrpc": "2.0", "method": cls + ".get_all_records",
                                   "params": [session], "id": 2})
        assert status == 200 and "result" in reply, (cls, reply)
    status, reply = post(url, {"jsonrpc": "2.0", "method": "session.get_record",
                               "params": [session, session], "id": 3})
    assert reply["result"]["last_active"] == "19700101T00:00:00Z"
    host = post(url, {"jsonrpc": "2.0", "method": "host.get_all", "params": [session],
                      "id": 4})[1]["result"][0]
    metrics = post(url, {"jsonrpc": "2.0", "method": "host.get_metrics",
                         "params": [session, host], "id": 5})[1]["result"]
    updated = post(url, {"jsonrpc": "2.0", "method": "host_metrics.get_last_updated",
                         "params": [session, metrics], "id": 6})[1]["result"]
    assert len(updated) == 18 and updated[8] == "T" and updated.endswith("Z")


def test_integers_are_json_integers(served):
    _engine, url, _unix = served
    session = login(url)
    host = post(url, {"jsonrpc": "2.0", "method": "host.get_all", "params": [session],
                      "id": 1})[1]["result"][0]
    record = post(url, {"jsonrpc": "2.0", "method": "host.get_record",
                        "params": [session, host], "id": 2})[1]["result"]
    assert record["API_version_major"] == 2 and isinstance(record["API_version_minor"], int)
    status, reply = post(url, {"method": "network.create", "id": 3, "params": [
        session, {"name_label": "n", "other_config": {}, "MTU": 9000}]})
    mtu = post(url, {"method": "network.get_MTU", "id": 4, "params": [session,
                                                                      reply["result"]]})
    assert mtu[1] == {"id": 4, "result": 9000, "error": None}


def test_malformed_requests_get_http_500(served):
    _engine, url, _unix = served
    for body in ({"method": "session.login_with_password", "id": 1},           # 1.0, no params
                 {"method": "session.login_with_password", "params": ["root", ""]},  # no id
                 {"jsonrpc": "2.0", "method": "session.login_with_password",
                  "params": ["root", ""]},                                      # 2.0, no id
                 {"jsonrpc": "2.0", "method": "host.get_all", "params": 7, "id": 1},
                 {"jsonrpc": "3.0", "method": "host.get_all", "params": [], "id": 1},
                 {"params": [], "id": 1}, [1, 2], b"{not json"):
        status, _reply = post(url, body)
        assert status == 500, body


def test_a_2_0_call_without_params_has_none(served):
    """rpclib: a missing (or null) params in 2.0 is no parameter at all, an object is
    one struct parameter; the call is then checked like any other."""
    _engine, url, _unix = served
    status, reply = post(url, {"jsonrpc": "2.0", "method": "session.login_with_password",
                               "id": 1})
    assert status == 200
    assert reply["error"] == {"code": 1, "message": "MESSAGE_PARAMETER_COUNT_MISMATCH",
                              "data": ["session.login_with_password", "2", "0"]}
    status, reply = post(url, {"jsonrpc": "2.0", "method": "host.get_all",
                               "params": None, "id": 2})
    assert status == 200 and reply["error"]["message"] == "MESSAGE_PARAMETER_COUNT_MISMATCH"
