"""Network operations against the simulator, through the real SDK: validation first,
conflicts named, all-or-nothing."""
import pytest

from agent.service.errors import Conflict, InvalidInput, NotFound, XapiCallFailed
from agent.service.networks import Networks


@pytest.fixture
def networks(xenapi):
    return Networks(xenapi)


def count(engine, cls):
    return len(engine.objects[cls])


def test_private_network_with_a_gateway(networks, xenapi):
    rec = networks.create("private", gateway={"address": "172.16.0.1/24", "nat": True})
    assert rec["bridge"].startswith("xapi")
    assert rec["other_config"] == {"xapi-gateway.address": "172.16.0.1/24",
                                   "xapi-gateway.nat": "true"}
    assert networks.find("private")[1]["uuid"] == rec["uuid"]
    assert networks.find(rec["uuid"])[1]["name_label"] == "private"


@pytest.mark.parametrize("kwargs,field", [
    (dict(name="bad name!"), "name"),
    (dict(name="n", gateway={"address": "172.16.0.0/24"}), "gateway.address"),
    (dict(name="n", gateway={"address": "172.16.0.1/24", "nat": "maybe"}), "gateway.nat"),
    (dict(name="n", gateway={"address": "172.16.0.1/24", "nta": True}), "gateway.nta"),
    (dict(name="n", vlan={"tag": 4095}), "vlan.tag"),
    (dict(name="n", vlan={"tag": "100"}), "vlan.tag"),
    (dict(name="n", vlan={"tag": 100, "pif": ""}), "vlan.pif"),
])
def test_invalid_input_changes_nothing(networks, engine, kwargs, field):
    before = count(engine, "network")
    with pytest.raises(InvalidInput) as info:
        networks.create(**kwargs)
    assert info.value.details["field"] == field
    assert count(engine, "network") == before


def test_conflicts_are_named(networks, engine):
    networks.create("private", gateway={"address": "172.16.0.1/24"})
    before = count(engine, "network")
    with pytest.raises(Conflict) as info:
        networks.create("private")
    assert info.value.details["field"] == "name"
    with pytest.raises(Conflict) as info:
        networks.create("other", gateway={"address": "172.16.0.129/25"})
    assert "overlaps gateway private" in info.value.message
    assert count(engine, "network") == before


def test_vlan_network(networks, xenapi):
    rec = networks.create("br100", vlan={"tag": 100, "pif": "eth0"})
    assert len(rec["PIFs"]) == 1 and xenapi.PIF.get_VLAN(rec["PIFs"][0]) == "100"


def test_a_failing_step_undoes_what_was_created(networks, engine):
    networks.create("first", vlan={"tag": 100})
    before = (count(engine, "network"), count(engine, "PIF"), count(engine, "VLAN"))
    with pytest.raises(XapiCallFailed) as info:
        networks.create("second", vlan={"tag": 100})  # PIF_VLAN_EXISTS at step 2
    assert info.value.details["step"] == "create VLAN 100 on eth0"
    assert info.value.details["xapi_code"] == "PIF_VLAN_EXISTS"
    assert (count(engine, "network"), count(engine, "PIF"), count(engine, "VLAN")) == before
    with pytest.raises(NotFound):
        networks.find("second")


def test_unknown_pif(networks, engine):
    before = count(engine, "network")
    with pytest.raises(NotFound) as info:
        networks.create("v", vlan={"tag": 5, "pif": "eth7"})
    assert info.value.details["field"] == "vlan.pif"
    assert count(engine, "network") == before


def test_update_and_remove_the_gateway(networks):
    networks.create("private", gateway={"address": "172.16.0.1/24"})
    rec = networks.set_gateway("private", {"address": "172.16.0.1/24", "nat": False})
    assert rec["other_config"]["xapi-gateway.nat"] == "false"  # its own subnet: no conflict
    rec = networks.set_gateway("private", None)
    assert not any(k.startswith("xapi-gateway.") for k in rec["other_config"])


def test_a_topology_mark_survives_gateway_changes_and_is_no_gateway(networks, xenapi):
    from agent.core import desired
    networks.create("pxe", marks={desired.TOPOLOGY_MARK: "lab"})
    networks.set_gateway("pxe", {"address": "10.20.0.1/24"})
    rec = networks.set_gateway("pxe", None)
    assert rec["other_config"] == {desired.TOPOLOGY_MARK: "lab"}
    gateways, invalid = desired.gateways_from_networks(xenapi.network.get_all_records())
    assert gateways == {} and invalid == {}


def test_delete_refuses_while_vms_use_it_and_names_them(networks, engine):
    rec = networks.create("private", gateway={"address": "172.16.0.1/24"})
    net = networks.find("private")[0]
    vm = engine.create("VM", name_label="Controller")
    vif = engine.create("VIF", VM=vm, network=net, device="0")
    with pytest.raises(Conflict) as info:
        networks.delete("private")
    assert info.value.details["vms"] == ["Controller"]
    assert "in use by Controller" in info.value.message
    engine.destroy("VIF", vif)
    networks.delete(rec["uuid"])
    with pytest.raises(NotFound):
        networks.find("private")


def test_delete_a_vlan_network_removes_its_vlan(networks, engine):
    networks.create("br100", vlan={"tag": 100})
    pifs, vlans = count(engine, "PIF"), count(engine, "VLAN")
    networks.delete("br100")
    assert (count(engine, "PIF"), count(engine, "VLAN")) == (pifs - 1, vlans - 1)


def test_the_himn_cannot_be_deleted(networks):
    with pytest.raises(Conflict) as info:
        networks.delete("Host internal management network")
    assert "cannot be deleted" in info.value.message


# ---- forwards ----------------------------------------------------------------------------

WEB = {"proto": "tcp", "port": 8080, "to": "172.16.0.3:80"}


def test_gateway_with_forwards_is_stored_in_the_text_form_and_read_back(networks, xenapi):
    from agent.core import desired, model
    rec = networks.create("private", gateway={
        "address": "172.16.0.1/24",
        "forwards": [{"proto": "udp", "port": 5353, "to": "172.16.0.4:53"}, WEB]})
    assert rec["other_config"] == {
        "xapi-gateway.address": "172.16.0.1/24", "xapi-gateway.nat": "true",
        "xapi-gateway.forwards": "tcp:8080=172.16.0.3:80,udp:5353=172.16.0.4:53"}
    gateways, invalid = desired.gateways_from_networks(xenapi.network.get_all_records())
    assert invalid == {}
    assert model.format_forwards(gateways["private"].forwards) == \
        rec["other_config"]["xapi-gateway.forwards"]


def test_no_forwards_stores_no_key(networks):
    rec = networks.create("private", gateway={"address": "172.16.0.1/24", "forwards": []})
    assert "xapi-gateway.forwards" not in rec["other_config"]


@pytest.mark.parametrize("forwards, field, fragment", [
    ("tcp:8080=172.16.0.3:80", "gateway.forwards", "must be a list"),
    ([WEB, "tcp:8081=172.16.0.3:80"], "gateway.forwards[1]", "must be an object"),
    ([dict(WEB, proto="icmp")], "gateway.forwards[0].proto", "tcp or udp"),
    ([WEB, dict(WEB, port=0)], "gateway.forwards[1].port", "out of range"),
    ([dict(WEB, port="8080")], "gateway.forwards[0].port", "whole number"),
    ([dict(WEB, port=True)], "gateway.forwards[0].port", "whole number"),
    ([dict(WEB, to="172.16.0.3:http")], "gateway.forwards[0].to", "not a port"),
    ([dict(WEB, to="vm1:80")], "gateway.forwards[0].to", "not an IPv4"),
    ([WEB, dict(WEB, port=8081, to="172.16.9.3:80")], "gateway.forwards[1].to",
     "outside the gateway's subnet 172.16.0.0/24"),
    ([dict(WEB, to="172.16.0.1:80")], "gateway.forwards[0].to", "the gateway's own address"),
    ([WEB, dict(WEB, to="172.16.0.4:80")], "gateway.forwards[1].port", "forwarded twice"),
    ([dict(WEB, port=22)], "gateway.forwards[0].port", "Dom0's own SSH port"),
    ([{"proto": "tcp", "port": 8080}], "gateway.forwards[0].to", "no field to"),
    ([dict(WEB, host="x")], "gateway.forwards[0].host", "unknown field host"),
])
def test_invalid_forwards_change_nothing_and_name_the_item(networks, engine, forwards, field,
                                                           fragment):
    before = count(engine, "network")
    with pytest.raises(InvalidInput) as info:
        networks.create("n", gateway={"address": "172.16.0.1/24", "forwards": forwards})
    assert info.value.details["field"] == field
    assert fragment in info.value.message
    assert count(engine, "network") == before


def test_a_port_forwarded_by_another_network_is_a_conflict(networks, engine, xenapi):
    networks.create("web", gateway={"address": "172.16.0.1/24", "forwards": [WEB]})
    before = count(engine, "network")
    other = {"address": "172.16.1.1/24",
             "forwards": [{"proto": "udp", "port": 8080, "to": "172.16.1.3"},
                          {"proto": "tcp", "port": 8080, "to": "172.16.1.3:80"}]}
    with pytest.raises(Conflict) as info:
        networks.create("other", gateway=other)
    assert info.value.details == {"field": "gateway.forwards[1].port", "network": "web"}
    assert "tcp port 8080 is already forwarded by gateway web (to 172.16.0.3:80)" in \
        info.value.message
    assert count(engine, "network") == before
    # set_gateway checks the same, and a network's own forwards never conflict with it
    networks.create("other", gateway={"address": "172.16.1.1/24"})
    with pytest.raises(Conflict):
        networks.set_gateway("other", other)
    assert "xapi-gateway.forwards" not in networks.find("other")[1]["other_config"]
    rec = networks.set_gateway("web", {"address": "172.16.0.1/24",
                                       "forwards": [dict(WEB, to="172.16.0.9:8080")]})
    assert rec["other_config"]["xapi-gateway.forwards"] == "tcp:8080=172.16.0.9:8080"


def test_set_gateway_replaces_and_removes_forwards(networks):
    networks.create("private", gateway={"address": "172.16.0.1/24", "forwards": [WEB]})
    rec = networks.set_gateway("private", {"address": "172.16.0.1/24"})
    assert "xapi-gateway.forwards" not in rec["other_config"]
    rec = networks.set_gateway("private", {"address": "172.16.0.1/24", "forwards": [WEB]})
    assert rec["other_config"]["xapi-gateway.forwards"] == "tcp:8080=172.16.0.3:80"
    rec = networks.set_gateway("private", None)
    assert not any(k.startswith("xapi-gateway.") for k in rec["other_config"])


# ---- inbound sources -----------------------------------------------------------------------

def test_inbound_is_stored_in_its_text_form_and_read_back_by_the_daemon(networks, xenapi):
    from agent.core import desired, model
    rec = networks.create("private", gateway={
        "address": "172.16.0.1/24", "inbound": ["198.51.100.7", "192.0.2.0/24"]})
    assert rec["other_config"]["xapi-gateway.inbound"] == "192.0.2.0/24,198.51.100.7/32"
    gateways, invalid = desired.gateways_from_networks(xenapi.network.get_all_records())
    assert invalid == {}
    assert model.format_inbound(gateways["private"].inbound) == \
        rec["other_config"]["xapi-gateway.inbound"]
    # set_gateway without inbound removes the key: the path closes
    rec = networks.set_gateway("private", {"address": "172.16.0.1/24"})
    assert "xapi-gateway.inbound" not in rec["other_config"]


@pytest.mark.parametrize("inbound, fragment", [
    (["192.0.2.1/24"], "has host bits set"),
    (["0.0.0.0/0"], "write 'any'"),
    (["172.16.0.0/16"], "overlaps the gateway's own subnet"),
    ("192.0.2.0/24", None),   # the text form is accepted too
    ([7], "not text"),
])
def test_invalid_inbound_changes_nothing(networks, engine, inbound, fragment):
    before = count(engine, "network")
    if fragment is None:
        rec = networks.create("n", gateway={"address": "172.16.0.1/24", "inbound": inbound})
        assert rec["other_config"]["xapi-gateway.inbound"] == "192.0.2.0/24"
        return
    with pytest.raises(InvalidInput) as info:
        networks.create("n", gateway={"address": "172.16.0.1/24", "inbound": inbound})
    assert info.value.details["field"] == "gateway.inbound"
    assert fragment in info.value.message
    assert count(engine, "network") == before
