"""Links through the API: a network declared a VLAN of another (POST with "link", PUT and
DELETE /v1/networks/{key}/link), refused with 400 / 404 / 409 and the sentence of
agent.core.links before anything is written; the network view shows the link and its
state (the daemon's own, once it has seen that link); /v1/links lists the daemon's."""
from agent.api.client import Client
from agent.core import desired
from tests.unit.api.conftest import FakeState, Http, start


def _create(admin, name, link=None, **extra):
    body = dict(extra, name=name)
    if link is not None:
        body["link"] = link
    return admin("POST", "/v1/networks", body)


def test_create_a_network_as_a_vlan_of_another_by_name_or_uuid(admin, xenapi):
    status, private = _create(admin, "private")
    assert status == 201 and private["link"] is None
    status, br100 = _create(admin, "br100", {"parent": "private", "tag": 102})
    assert status == 201
    assert br100["link"] == {"parent": private["uuid"], "parent_name": "private",
                             "tag": 102, "state": "accepted", "reason": None}
    ref = xenapi.network.get_by_uuid(br100["uuid"])
    assert xenapi.network.get_other_config(ref)[desired.LINK] == "%s:102" % private["uuid"]
    assert br100["gateway"] is None                    # a link alone is no gateway
    status, other = _create(admin, "storage", {"parent": private["uuid"], "tag": 103})
    assert status == 201 and other["link"]["parent_name"] == "private"


def test_bad_links_are_refused_and_nothing_is_written(admin, xenapi):
    _create(admin, "private")
    _create(admin, "br100", {"parent": "private", "tag": 102})
    before = xenapi.network.get_all_records()
    cases = [
        ({"parent": "private", "tag": 102}, 409,
         "link: tag 102 of network private ("),
        ({"parent": "private", "tag": 0}, 400,
         "link.tag 0 is not a VLAN tag: use a whole number from 1 to 4094"),
        ({"parent": "private", "tag": 4095}, 400, "link.tag 4095 is not a VLAN tag"),
        ({"parent": "private", "tag": "102"}, 400, "link.tag must be a whole number"),
        ({"parent": "private"}, 400, "link.tag is required"),
        ({"parent": "nowhere", "tag": 5}, 404, "parent network nowhere does not exist"),
        ({"parent": "br100", "tag": 5}, 409, "link: parent br100 ("),   # a chain
        ({"parent": "Pool-wide network associated with eth0", "tag": 5}, 409,
         "link: its parent Pool-wide network associated with eth0 has a PIF"),
    ]
    for link, status, message in cases:
        got, data = _create(admin, "storage", link)
        assert (got, message in data["error"]["message"]) == (status, True), data
    got, data = _create(admin, "vlan7", {"parent": "private", "tag": 7},
                        vlan={"tag": 7, "pif": "eth0"})
    assert got == 409 and data["error"]["message"].startswith(
        "link: it has a PIF (a physical or VLAN network)")
    assert xenapi.network.get_all_records() == before


def test_put_and_delete_a_link_and_the_conflicts_they_meet(admin, xenapi):
    _s, private = _create(admin, "private")
    _s, br100 = _create(admin, "br100")
    _create(admin, "storage", {"parent": "private", "tag": 102})
    status, view = admin("PUT", "/v1/networks/br100/link", {"parent": "private", "tag": 102})
    assert status == 409 and "tag 102 of network private (" in view["error"]["message"]
    status, view = admin("PUT", "/v1/networks/br100/link", {"parent": "br100", "tag": 5})
    assert status == 400 and view["error"]["message"] == \
        "link: a network cannot be a VLAN of itself; name another network"
    status, view = admin("PUT", "/v1/networks/private/link", {"parent": "storage", "tag": 5})
    assert status == 409 and "link: the links form a cycle (" in view["error"]["message"]
    status, view = admin("PUT", "/v1/networks/br100/link", {"parent": "private", "tag": 101})
    assert status == 200 and (view["link"]["tag"], view["link"]["state"]) == (101, "accepted")
    # changing it in place: the same network, another tag
    status, view = admin("PUT", "/v1/networks/%s/link" % br100["uuid"],
                         {"parent": private["uuid"], "tag": 104})
    assert status == 200 and view["link"]["tag"] == 104
    # a gateway set later keeps the link, and the link's removal keeps the gateway
    status, view = admin("PUT", "/v1/networks/br100/gateway", {"address": "172.16.9.1/24"})
    assert status == 200 and view["link"]["tag"] == 104
    status, view = admin("DELETE", "/v1/networks/br100/link")
    assert status == 200 and view["link"] is None
    assert view["gateway"]["address"] == "172.16.9.1/24"
    ref = xenapi.network.get_by_uuid(br100["uuid"])
    assert desired.LINK not in xenapi.network.get_other_config(ref)


def test_the_view_shows_the_daemons_state_of_the_same_link(served, tls_files):
    state = FakeState()
    api = start(served, tls_files, state=state)
    try:
        http = Http(Client(socket_path=api.socket))
        _s, private = http("POST", "/v1/networks", {"name": "private"})
        _s, br100 = http("POST", "/v1/networks", {"name": "br100", "link": {
            "parent": "private", "tag": 102}})
        daemon = {"network": br100["uuid"], "name": "br100", "bridge": br100["bridge"],
                  "parent": private["uuid"], "parent_name": "private", "tag": 102,
                  "state": "refused", "since": 1.0, "reason": "this host uses Linux bridges "
                  "(network.conf: bridge); a link is a pair of Open vSwitch patch ports"}
        state.links = lambda: [dict(daemon)]
        status, view = http("GET", "/v1/networks/br100")
        assert status == 200 and view["link"]["state"] == "refused"
        assert view["link"]["reason"].startswith("this host uses Linux bridges")
        status, listed = http("GET", "/v1/links")
        assert status == 200 and listed == [daemon]
        # a change the daemon has not seen yet: the records' verdict, not a stale state
        status, view = http("PUT", "/v1/networks/br100/link", {"parent": "private",
                                                                 "tag": 103})
        assert (view["link"]["tag"], view["link"]["state"]) == (103, "accepted")
        listing = http("GET", "/v1/networks")[1]
        assert [n["link"]["state"] for n in listing if n["name"] == "br100"] == ["accepted"]
    finally:
        api.close()
