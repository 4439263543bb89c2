"""The real XenAPI SDK against the simulator, over HTTP and over a Unix socket (and
JSON-RPC, which the SDK does not speak, by hand)."""
import json
import urllib.request

import XenAPI
import pytest


def login(url, unix=False):
    kwargs = {"transport": XenAPI.UDSTransport()} if unix else {}
    session = XenAPI.Session(url, **kwargs)
    session.xenapi.login_with_password("root", "secret", "1.0", "xapi-gateway-tests")
    return session


def failure(call, *args):
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def test_network_other_config_round_trip_over_both_transports(served):
    _engine, http_url, unix_url = served
    s = login(http_url)
    ref = s.xenapi.network.create({"name_label": "private", "other_config": {}})
    s.xenapi.network.add_to_other_config(ref, "xapi-gateway.address", "172.16.1.1/24")
    u = login(unix_url, unix=True)
    assert u.xenapi.network.get_other_config(ref) == {"xapi-gateway.address": "172.16.1.1/24"}
    record = u.xenapi.network.get_record(ref)
    assert record["name_label"] == "private" and record["MTU"] == "1500"
    assert u.xenapi.network.get_by_uuid(record["uuid"]) == ref
    assert u.xenapi.network.get_by_name_label("private") == [ref]
    assert ref in u.xenapi.network.get_all_records()
    s.xenapi.network.remove_from_other_config(ref, "xapi-gateway.address")
    assert u.xenapi.network.get_other_config(ref) == {}
    s.xenapi.network.destroy(ref)
    assert failure(u.xenapi.network.get_record, ref) == ["HANDLE_INVALID", "network", ref]


def test_errors_are_xapis(served):
    engine, http_url, _unix = served
    s = login(http_url)
    net = s.xenapi.network.create({"other_config": {}})
    vm = engine.create("VM", name_label="vm")
    # a ref of another class is not a handle of this one
    assert failure(s.xenapi.network.get_record, vm) == ["HANDLE_INVALID", "network", vm]
    assert failure(s.xenapi.network.frobnicate, net) == ["MESSAGE_METHOD_UNKNOWN",
                                                          "network.frobnicate"]
    assert failure(s.xenapi.network.get_MTU) == ["MESSAGE_PARAMETER_COUNT_MISMATCH",
                                                 "network.get_MTU", "1", "0"]
    assert failure(s.xenapi.network.create, {"name_label": "x"}) == ["FIELD_TYPE_ERROR",
                                                                     "other_config"]
    s.xenapi.network.add_to_other_config(net, "k", "v")
    details = failure(s.xenapi.network.add_to_other_config, net, "k", "w")
    assert details[0] == "MAP_DUPLICATE_KEY" and details[-1] == "k"
    assert failure(s.xenapi.network.get_by_uuid, "nope") == ["UUID_INVALID", "network", "nope"]


def test_int64_values_travel_as_decimal_strings(served):
    _engine, http_url, _unix = served
    s = login(http_url)
    net = s.xenapi.network.create({"other_config": {}, "MTU": "9000"})
    assert s.xenapi.network.get_MTU(net) == "9000"
    big = str(20 * 2 ** 30)  # above 2^31: Python's xmlrpc could not send it as an int
    s.xenapi.network.set_MTU(net, big)
    assert s.xenapi.network.get_record(net)["MTU"] == big


def test_logout_ends_the_session(served):
    engine, http_url, _unix = served
    s = login(http_url)
    session_ref = s._session
    assert session_ref in engine.objects["session"]
    s.xenapi.session.logout()
    assert session_ref not in engine.objects["session"]
    reply = engine.call("network.get_all", [session_ref])
    assert reply == {"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", session_ref]}


def test_the_sdk_sees_the_seeded_pool_and_host(served):
    _engine, http_url, _unix = served
    s = login(http_url)
    pool = s.xenapi.pool.get_all()[0]
    host = s.xenapi.pool.get_master(pool)
    assert s.xenapi.host.get_API_version_major(host) == "2"
    assert s.xenapi.session.get_this_host(s._session) == host


def test_wrong_password_when_credentials_are_checked(model):
    from agent.xapisim.engine import Engine
    engine = Engine(model, check_password=lambda user, pwd: (user, pwd) == ("root", "pw"))
    assert engine.call("session.login_with_password", ["root", "pw"])["Status"] == "Success"
    reply = engine.call("session.login_with_password", ["root", "nope"])
    assert reply["ErrorDescription"][0] == "SESSION_AUTHENTICATION_FAILED"


def jsonrpc(url, method, params, version="2.0"):
    body = {"method": method, "params": params, "id": 7}
    if version:
        body["jsonrpc"] = version
    request = urllib.request.Request(url + "/jsonrpc", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read().decode())


def test_jsonrpc_2_and_1(served):
    _engine, url, _unix = served
    login = jsonrpc(url, "session.login_with_password", ["root", ""])
    assert login["jsonrpc"] == "2.0" and login["id"] == 7
    session = login["result"]
    assert session.startswith("OpaqueRef:")
    assert jsonrpc(url, "VM.get_record", [session, "OpaqueRef:x"])["error"] == {
        "code": 1, "message": "HANDLE_INVALID", "data": ["VM", "OpaqueRef:x"]}
    old = jsonrpc(url, "network.get_all", [session], version=None)
    assert old["error"] is None and len(old["result"]) == 2
    assert jsonrpc(url, "nope.nothing", [session], version=None)["error"] == [
        "MESSAGE_METHOD_UNKNOWN", "nope.nothing"]
