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
    assert "overlaps the gateway of network private" in info.value.message
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
