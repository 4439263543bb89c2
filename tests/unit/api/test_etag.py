"""Conditional GETs of /v1/gateways and /v1/health (issue 15): a strong ETag that changes
exactly when the body does, 304 without a body for If-None-Match, and authentication
before any of it. Through the real server, on its Unix socket and on TCP with TLS."""
import http.client
import json
import ssl

import pytest

from agent.api.client import _UnixConnection
from tests.unit.api.conftest import READ, FakeState, check_response, start


def status(name, state="applied", address="172.16.0.1/24"):
    return {"name": name, "bridge": "xapi-" + name, "state": state, "address": address,
            "nat": True, "reason": None, "error": None, "source": "config", "since": 1.0,
            "since_monotonic": 5.0}


class Published(FakeState):
    """Statuses published as the reconciler does: a tuple, replaced, never changed."""

    def __init__(self):
        super(Published, self).__init__()
        self.published = (status("a"), status("b"))

    def gateways(self):
        return list(self.published)

    def published_gateways(self):
        return self.published


@pytest.fixture
def state():
    return Published()


@pytest.fixture
def api(served, tls_files, state):
    s = start(served, tls_files, state=state)
    yield s
    s.close()


class Raw(object):
    """GET with headers of our choosing: (status, headers, body bytes)."""

    def __init__(self, served, tcp=False, token=None):
        self.served, self.tcp, self.token = served, tcp, token

    def __call__(self, path, **headers):
        if self.tcp:
            port = int(self.served.url.rsplit(":", 1)[1])
            context = ssl.create_default_context(cafile=self.served.cafile)
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        else:
            conn = _UnixConnection(self.served.socket, 10)
        if self.token:
            headers["Authorization"] = "Bearer %s" % self.token
        try:
            conn.request("GET", path, headers={k.replace("_", "-"): v
                                               for k, v in headers.items()})
            response = conn.getresponse()
            body = response.read()
            if body and response.status == 200:
                check_response("GET", path, response.status, json.loads(body.decode()))
            return response.status, response, body
        finally:
            conn.close()


@pytest.fixture(params=["unix", "tcp"])
def get(request, api):
    return Raw(api, tcp=request.param == "tcp", token=READ)


@pytest.mark.parametrize("path", ["/v1/gateways", "/v1/health"])
def test_an_answer_carries_a_strong_etag_and_if_none_match_gets_304(get, path):
    code, response, first = get(path)
    etag = response.getheader("ETag")
    assert code == 200 and first
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10  # strong: no W/
    code, response, body = get(path, If_None_Match=etag)
    assert code == 304 and body == b"" and response.getheader("ETag") == etag
    for header in ("W/" + etag, '"other", ' + etag, "*"):
        assert get(path, If_None_Match=header)[0] == 304, header
    code, response, again = get(path, If_None_Match='"something-else"')
    assert code == 200 and response.getheader("ETag") == etag
    assert again == first


def test_the_etag_changes_exactly_when_the_content_changes(get, state):
    code, response, body = get("/v1/gateways")
    first = response.getheader("ETag")
    assert [g["name"] for g in json.loads(body.decode())] == ["a", "b"]
    # a new tuple with the same content (a round that rebuilt equal statuses)
    state.published = (status("a"), status("b"))
    code, response, _ = get("/v1/gateways", If_None_Match=first)
    assert code == 304 and response.getheader("ETag") == first
    # one gateway's state changes: another ETag, and the old one gets the new body
    state.published = (status("a"), status("b", state="absent"))
    code, response, body = get("/v1/gateways", If_None_Match=first)
    second = response.getheader("ETag")
    assert code == 200 and second != first
    assert [g["state"] for g in json.loads(body.decode())] == ["applied", "absent"]
    assert get("/v1/gateways", If_None_Match=second)[0] == 304
    # and back: the content of the first answer has the first ETag again
    state.published = (status("a"), status("b"))
    assert get("/v1/gateways", If_None_Match=first)[0] == 304


def test_the_default_state_without_a_published_tuple_is_conditional_too(served, tls_files):
    fake = FakeState()  # State.published_gateways: a new tuple each time
    s = start(served, tls_files, state=fake)
    try:
        get = Raw(s)
        code, response, _ = get("/v1/gateways")
        etag = response.getheader("ETag")
        assert get("/v1/gateways", If_None_Match=etag)[0] == 304
        fake.statuses = fake.statuses + [status("c")]
        assert get("/v1/gateways", If_None_Match=etag)[0] == 200
    finally:
        s.close()


def test_health_answers_with_the_state_of_the_moment(get, state):
    code, response, body = get("/v1/health")
    etag = response.getheader("ETag")
    assert json.loads(body.decode())["gateways"] == {"applied": 2}
    state.published = (status("a"), status("b", state="error"))
    code, response, body = get("/v1/health", If_None_Match=etag)
    assert code == 200 and response.getheader("ETag") != etag
    data = json.loads(body.decode())
    assert data["status"] == "degraded" and data["gateways"] == {"applied": 1, "error": 1}


@pytest.mark.parametrize("token", [None, "x" * 64])
def test_no_token_learns_nothing_not_even_whether_it_changed(api, token):
    etag = Raw(api, tcp=True, token=READ)("/v1/gateways")[1].getheader("ETag")
    anonymous = Raw(api, tcp=True, token=token)
    for headers in ({}, {"If_None_Match": etag}, {"If_None_Match": "*"}):
        code, response, body = anonymous("/v1/gateways", **headers)
        assert code == 401 and response.getheader("ETag") is None
        assert json.loads(body.decode())["error"]["code"] == "unauthorized"
        assert etag.encode() not in body


def test_one_gateway_is_still_found_by_name_or_bridge(get):
    code, _, body = get("/v1/gateways/b")
    assert code == 200 and json.loads(body.decode())["bridge"] == "xapi-b"
    assert json.loads(get("/v1/gateways/xapi-a")[2].decode())["name"] == "a"
    assert get("/v1/gateways/nope")[0] == 404
