"""Networks, the HIMN, PIFs and VLANs as xapi treats them."""
import pytest

from tests.unit.xapisim.replies import error, ok


def network(call, **fields):
    return ok(call("network.create", dict({"other_config": {}}, **fields)))


def test_bridges_are_the_lowest_free_xapi_n(call):
    nets = [network(call, name_label=n) for n in ("pxe", "private", "br100")]
    assert [ok(call("network.get_bridge", n)) for n in nets] == ["xapi0", "xapi1", "xapi2"]
    ok(call("network.destroy", nets[1]))
    assert ok(call("network.get_bridge", network(call))) == "xapi1"


@pytest.mark.parametrize("bridge,code", [
    ("xapi7", "INVALID_VALUE"), ("xenbr9", "INVALID_VALUE"), ("vif1.0", "INVALID_VALUE"),
    ("tap0", "INVALID_VALUE"), ("eth9", "INVALID_VALUE"), ("a" * 16, "INVALID_VALUE"),
])
def test_bad_bridge_names_are_refused(call, bridge, code):
    assert error(call("network.create", {"other_config": {}, "bridge": bridge})) == [
        code, "bridge", bridge]


def test_a_taken_bridge_name(call):
    network(call, bridge="br100")
    assert error(call("network.create", {"other_config": {}, "bridge": "br100"})) == [
        "BRIDGE_NAME_EXISTS", "br100"]


def test_the_himn_is_there_and_cannot_be_destroyed(call):
    refs = ok(call("network.get_by_name_label", "Host internal management network"))
    assert len(refs) == 1
    record = ok(call("network.get_record", refs[0]))
    assert record["bridge"] == "xenapi"
    assert record["other_config"]["is_host_internal_management_network"] == "true"
    assert record["other_config"]["ip_begin"] == "169.254.0.1"
    assert error(call("network.destroy", refs[0])) == ["CANNOT_DESTROY_SYSTEM_NETWORK", refs[0]]


def test_a_network_in_use_cannot_be_destroyed(call, engine):
    net = network(call)
    vm = engine.create("VM", name_label="vm")
    vif = engine.create("VIF", VM=vm, network=net, device="0")
    assert ok(call("network.get_VIFs", net)) == [vif]
    assert error(call("network.destroy", net)) == ["NETWORK_CONTAINS_VIF", vif]
    engine.destroy("VIF", vif)
    ok(call("network.destroy", net))


def physical_pif(call):
    return [r for r, p in ok(call("PIF.get_all_records")).items() if p["physical"]][0]


def test_vlan_on_the_physical_pif(call):
    eth0 = physical_pif(call)
    net = network(call, name_label="vlan100")
    vlan = ok(call("VLAN.create", eth0, "100", net))
    record = ok(call("VLAN.get_record", vlan))
    untagged = record["untagged_PIF"]
    pif = ok(call("PIF.get_record", untagged))
    assert (pif["VLAN"], pif["device"], pif["network"], pif["currently_attached"]) == (
        "100", "eth0", net, True)
    assert pif["VLAN_master_of"] == vlan
    assert ok(call("PIF.get_VLAN_slave_of", eth0)) == [vlan]
    assert ok(call("network.get_PIFs", net)) == [untagged]
    assert error(call("network.destroy", net)) == ["NETWORK_CONTAINS_PIF", untagged]
    # the same tag again, a VLAN on a VLAN, a network already connected, bad tags
    other = network(call)
    assert error(call("VLAN.create", eth0, "100", other)) == ["PIF_VLAN_EXISTS", "eth0"]
    assert error(call("VLAN.create", untagged, "7", other)) == ["PIF_IS_VLAN", untagged]
    assert error(call("VLAN.create", eth0, "101", net))[0] == "NETWORK_ALREADY_CONNECTED"
    for tag in ("-1", "4095", "x"):
        assert error(call("VLAN.create", eth0, tag, other)) == ["VLAN_TAG_INVALID", tag]


def test_pool_create_vlan_from_pif(call):
    eth0 = physical_pif(call)
    net = network(call)
    pifs = ok(call("pool.create_VLAN_from_PIF", eth0, net, "4094"))
    assert len(pifs) == 1 and ok(call("PIF.get_VLAN", pifs[0])) == "4094"
