"""Networks that span the pool, through the real SDK against a simulated pool of three
hosts: network.create with MTU 1450 and a VNI, tunnel.create on every host, all or
nothing; refusals change nothing."""
import pytest

from agent.core import desired, tunnels
from agent.service import views
from agent.service.errors import Conflict, InvalidInput, XapiCallFailed
from agent.service.networks import Networks
from agent.xapisim import pool as members
from agent.xapisim.engine import XapiFailure

ADDRESSES = ("10.0.0.1", "10.0.0.2", "10.0.0.3")


@pytest.fixture
def hosts(engine):
    """Three hosts, each with an address on its management PIF; their refs in order."""
    first = next(iter(engine.objects["host"]))
    members.configure_management(engine, first, ADDRESSES[0], "255.255.255.0")
    refs = [first]
    for n, address in enumerate(ADDRESSES[1:], 2):
        refs.append(members.add_host(engine, "host-%d" % n, "openvswitch", address=address))
    return refs


@pytest.fixture
def networks(xenapi, hosts):
    return Networks(xenapi)


def snapshot(engine):
    """What a refusal must leave as it was."""
    return {cls: sorted(engine.objects[cls]) for cls in ("network", "PIF", "tunnel")}


def test_a_spanning_network_has_a_vni_mtu_1450_and_a_tunnel_on_every_host(networks, engine,
                                                                          xenapi, hosts):
    rec = networks.create("lab", span="pool", gateway={"address": "172.16.0.1/24"})
    assert rec["other_config"][desired.VNI] == "1"
    assert int(rec["MTU"]) == tunnels.MTU == 1450
    access = [xenapi.PIF.get_record(p) for p in rec["PIFs"]]
    assert sorted(p["host"] for p in access) == sorted(hosts)
    assert all(p["currently_attached"] for p in access)
    for pif in access:
        (tunnel,) = pif["tunnel_access_PIF_of"]
        t = xenapi.tunnel.get_record(tunnel)
        assert t["protocol"] == "vxlan"
        transport = xenapi.PIF.get_record(t["transport_PIF"])
        assert transport["management"] and transport["host"] == pif["host"]
    second = networks.create("lab2", span="pool")
    assert second["other_config"] == {desired.VNI: "2"}


def test_the_view_shows_the_vni_the_center_and_ports_per_host(networks, xenapi, hosts):
    rec = networks.create("lab", span="pool", vni=5001)
    view = networks.view("lab")
    assert view["span"] == "pool" and view["vni"] == 5001
    t = view["tunnels"]
    assert t["state"] == "ready" and t["center"] == min(
        xenapi.host.get_uuid(h) for h in hosts)
    assert sorted(p["ports"] for p in t["ports"]) == [1, 1, 2]
    assert t["problems"] == [] and t["warnings"] == []
    plain = networks.create("plain")
    assert networks.view(plain["uuid"])["span"] == "host"
    assert networks.view(plain["uuid"])["tunnels"] is None
    listed = {n["name"]: n for n in views.networks(xenapi)}
    assert listed["lab"]["tunnels"] == t and listed["lab"]["uuid"] == rec["uuid"]


def test_a_transport_pif_by_device(networks, engine, xenapi, hosts):
    for n, host in enumerate(hosts):
        ref = engine.create("PIF", device="eth1", network=next(iter(engine.objects["network"])),
                            host=host, MAC="02:00:00:01:00:%02x" % n, MTU=1600, VLAN=-1,
                            physical=True, currently_attached=True, managed=True,
                            ip_configuration_mode="Static", IP="192.168.9.%d" % (n + 1))
        assert ref
    rec = networks.create("lab", span="pool", transport="eth1")
    transports = set(xenapi.PIF.get_device(xenapi.tunnel.get_transport_PIF(
        xenapi.PIF.get_tunnel_access_PIF_of(p)[0])) for p in rec["PIFs"])
    assert transports == {"eth1"}


@pytest.mark.parametrize("kwargs,field,message", [
    (dict(span="everywhere"), "span", "span 'everywhere' is not a span: use host"),
    (dict(span="pool", vni=0), "vni", "vni 0 is out of range: use a whole number from 1 to 16777215"),
    (dict(span="pool", vni="7"), "vni", None),   # the API's JSON gives an int: text is "7"
    (dict(vni=7), "vni", "vni is for a network that spans the pool (span pool)"),
    (dict(span="pool", vlan={"tag": 5}), "span", "give span pool or vlan, not both"),
    (dict(span="pool", transport="bad name"), "transport", "not a valid interface name"),
])
def test_invalid_input_changes_nothing(networks, engine, kwargs, field, message):
    before = snapshot(engine)
    try:
        networks.create("lab", **kwargs)
    except InvalidInput as exc:
        assert exc.details["field"] == field
        assert message is None or message in exc.message
    else:
        assert message is None  # "7" is a VNI's digits: accepted, as xe writes it
        return
    assert snapshot(engine) == before


def test_a_vni_already_used_is_a_conflict_naming_its_network(networks, engine):
    networks.create("first", span="pool", vni=42)
    before = snapshot(engine)
    with pytest.raises(Conflict) as info:
        networks.create("second", span="pool", vni=42)
    assert info.value.message.startswith("VNI 42 is already used by network first (")
    assert info.value.details["field"] == "vni"
    assert snapshot(engine) == before


def test_a_transport_pif_without_an_address_is_refused(networks, engine, hosts):
    for ref, pif in engine.objects["PIF"].items():
        if pif["host"] == hosts[2] and pif["management"]:
            engine.set_field("PIF", ref, "IP", "")
    before = snapshot(engine)
    with pytest.raises(Conflict) as info:
        networks.create("lab", span="pool")
    assert info.value.message == ("host host-3: transport PIF eth0 has no IP address: "
                                  "configure one (xe pif-reconfigure-ip)")
    assert snapshot(engine) == before


def test_a_host_on_the_linux_bridge_backend_is_refused(networks, engine, hosts):
    version = dict(engine.objects["host"][hosts[1]]["software_version"],
                   network_backend="bridge")
    engine.set_field("host", hosts[1], "software_version", version)
    before = snapshot(engine)
    with pytest.raises(Conflict) as info:
        networks.create("lab", span="pool")
    assert info.value.message.startswith("host host-2 runs the bridge network backend; "
                                         "XAPI's tunnels need Open vSwitch")
    assert snapshot(engine) == before


def test_a_missing_transport_device_is_refused(networks, engine):
    before = snapshot(engine)
    with pytest.raises(Conflict) as info:
        networks.create("lab", span="pool", transport="eth7")
    assert "has no PIF eth7 to carry the tunnels" in info.value.message
    assert info.value.details["field"] == "transport"
    assert snapshot(engine) == before


def test_a_xapi_failure_half_way_rolls_everything_back(networks, engine):
    before = snapshot(engine)
    engine.fail_next["tunnel.create"] = [None, XapiFailure("INTERNAL_ERROR", "injected")]
    with pytest.raises(XapiCallFailed) as info:
        networks.create("lab", span="pool")
    assert info.value.details["step"].startswith("create the tunnel on host ")
    assert info.value.details["xapi_code"] == "INTERNAL_ERROR"
    assert snapshot(engine) == before  # the first tunnel, its access PIF and the network


def test_delete_removes_the_tunnels(networks, engine):
    before = snapshot(engine)
    networks.create("lab", span="pool")
    assert len(engine.objects["tunnel"]) == 3
    networks.delete("lab")
    assert snapshot(engine) == before


def test_set_gateway_keeps_the_vni(networks):
    networks.create("lab", span="pool", vni=9)
    rec = networks.set_gateway("lab", {"address": "172.16.5.1/24"})
    assert rec["other_config"][desired.VNI] == "9"
    rec = networks.set_gateway("lab", None)
    assert rec["other_config"] == {desired.VNI: "9"}
