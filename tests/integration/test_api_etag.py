"""The daemon's /v1/gateways as a poller sees it (issue 15): the same ETag and 304 Not
Modified across rounds that change nothing, a new ETag and the new body once a gateway's
state changes. The daemon runs for real in a namespace; the API on its Unix socket."""
import json
import os

from agent.api.client import _UnixConnection  # the one way to speak HTTP on a Unix socket
from tests.integration import netns as N
from tests.integration.test_faults import GW, make_bridge


def get(daemon, path, etag=None):
    """(status, ETag, decoded body or None) of GET ``path``, If-None-Match ``etag``."""
    conn = _UnixConnection(os.path.join(daemon.runtime_dir, "api.sock"), 10)
    try:
        conn.request("GET", path, headers={"If-None-Match": etag} if etag else {})
        response = conn.getresponse()
        body = response.read()
        return (response.status, response.getheader("ETag"),
                json.loads(body.decode()) if body else None)
    finally:
        conn.close()


def test_a_poller_gets_304_between_rounds_and_the_news_when_a_state_changes(workdir, daemons):
    dom0 = N.Netns("etag")
    try:
        make_bridge(dom0)
        daemon = daemons(dom0, workdir, GW)  # check_interval 0.5: a round twice a second
        N.wait_for(lambda: daemon.gateway_state("private")["state"] == "applied",
                   message="gateway applied")
        status, etag, body = get(daemon, "/v1/gateways")
        assert status == 200 and [g["state"] for g in body] == ["applied"]
        rounds = daemon.status()["rounds"]
        N.wait_for(lambda: daemon.status()["rounds"] >= rounds + 3, timeout=10,
                   message="three more rounds")
        assert get(daemon, "/v1/gateways", etag)[:2] == (304, etag)
        health = get(daemon, "/v1/health")
        assert health[0] == 200 and get(daemon, "/v1/health", health[1])[0] == 304

        dom0.run(["ip", "link", "del", "xapi1"])
        N.wait_for(lambda: daemon.gateway_state("private")["state"] == "absent",
                   message="gateway absent")
        status, new, body = get(daemon, "/v1/gateways", etag)
        assert status == 200 and new != etag and [g["state"] for g in body] == ["absent"]
        assert get(daemon, "/v1/gateways", new)[0] == 304
    finally:
        dom0.delete()
