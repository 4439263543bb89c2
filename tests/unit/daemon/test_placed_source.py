"""PlacedSource: the gateways placement gives this host, and what it says about the rest."""
from agent.adapters.xapi import read_inventory_uuid
from agent.core import desired
from agent.daemon.sources import PlacedSource, XapiSource

A, B = "1aaa", "2bbb"


def _records(pin=None, b_live=True):
    other = {desired.ADDRESS: "172.16.1.1/24"}
    if pin:
        other[desired.HOST] = pin
    return {
        "network": {"OpaqueRef:n": {"uuid": "net-1", "name_label": "vlan", "bridge": "xapi1",
                                    "other_config": other}},
        "host": {"OpaqueRef:a": {"uuid": A, "name_label": "one", "enabled": True,
                                 "metrics": "OpaqueRef:ma"},
                 "OpaqueRef:b": {"uuid": B, "name_label": "two", "enabled": True,
                                 "metrics": "OpaqueRef:mb"}},
        "host_metrics": {"OpaqueRef:ma": {"live": True}, "OpaqueRef:mb": {"live": b_live}},
        "pif": {"OpaqueRef:p%s" % h: {"network": "OpaqueRef:n", "host": "OpaqueRef:" + h,
                                      "currently_attached": True} for h in "ab"}}


def _source(this_host, records):
    xapi = XapiSource()
    xapi.update(records["network"])
    placed = PlacedSource(xapi, this_host)
    placed.update_pool(records)
    return placed


def test_the_lowest_uuid_serves_and_the_other_host_stands_aside():
    assert list(_source("one", _records()).gateways()) == ["vlan"]
    two = _source(B, _records())
    assert two.gateways() == {}
    gw, decision = two.elsewhere()["vlan"]
    assert (gw.name, decision.host.name) == ("vlan", "one")


def test_a_pin_and_liveness_move_it():
    assert _source(A, _records(pin="two")).gateways() == {}
    assert list(_source(A, _records(pin="two", b_live=False)).gateways()) == ["vlan"]


def test_a_bad_pin_is_invalid_and_served_nowhere():
    for me in (A, B):
        source = _source(me, _records(pin="three"))
        assert source.gateways() == {} and source.elsewhere() == {}
        assert "'three' is no host of this pool" in source.invalid()["vlan"].reason


def test_without_the_pool_or_this_host_every_gateway_is_served_here_as_before():
    xapi = XapiSource()
    xapi.update(_records()["network"])
    assert list(PlacedSource(xapi, B).gateways()) == ["vlan"]   # no pool records yet
    unknown = _source("somebody-else", _records())
    assert list(unknown.gateways()) == ["vlan"] and unknown.placement() == {}
    assert "'somebody-else' is no host of this pool" in unknown.problem
    assert list(_source("", _records()).gateways()) == ["vlan"]


def test_this_hosts_uuid_from_the_inventory(tmp_path):
    path = tmp_path / "xensource-inventory"
    path.write_text("PRIMARY_DISK='/dev/sda'\nINSTALLATION_UUID='%s'\n" % A)
    assert read_inventory_uuid(str(path)) == A
    assert read_inventory_uuid(str(tmp_path / "missing")) is None


def _spanning(vni="7", b_address="10.0.0.2"):
    """_records with the network spanning: a VNI, a tunnel on both hosts over eth0."""
    records = _records()
    records["network"]["OpaqueRef:n"]["other_config"][desired.VNI] = vni
    records["network"]["OpaqueRef:n"]["MTU"] = 1450
    for h, address in (("a", "10.0.0.1"), ("b", b_address)):
        records["pif"]["OpaqueRef:e%s" % h] = {"network": "OpaqueRef:eth0", "device": "eth0",
                                              "host": "OpaqueRef:" + h, "IP": address,
                                              "MTU": 1500, "currently_attached": True}
    records["tunnel"] = {"OpaqueRef:t%s" % h: {"access_PIF": "OpaqueRef:p" + h,
                                               "transport_PIF": "OpaqueRef:e" + h}
                         for h in "ab"}
    return records


def test_tunnel_status_follows_the_pool_records():
    one, two = _source("one", _spanning()), _source(B, _spanning())
    (status,) = one.tunnel_status()
    assert (status["name"], status["vni"], status["center_name"], status["state"]) == \
        ("vlan", 7, "one", "ready")
    assert [p["ports"] for p in status["ports"]] == [1, 1]
    assert status["here"] == [{"name": "v0000070a000002", "remote_ip": "10.0.0.2", "key": 7}]
    assert two.tunnel_status()[0]["here"][0]["remote_ip"] == "10.0.0.1"
    # the pool changes: host two's transport PIF loses its address
    one.update_pool(_spanning(b_address=""))
    (status,) = one.tunnel_status()
    assert status["here"] == [] and status["state"] == "idle"
    assert status["problems"][0]["host_name"] == "two"
    assert PlacedSource(XapiSource(), A).tunnel_status() == []   # no pool records yet


def test_the_ports_this_host_should_have():
    assert [p.remote_ip for p in _source("one", _spanning()).tunnel_ports()] == ["10.0.0.2"]
    assert [p.remote_ip for p in _source(B, _spanning()).tunnel_ports()] == ["10.0.0.1"]
    assert _source(A, _spanning(b_address="")).tunnel_ports() == ()
    # unknown pool or host: None, so the daemon keeps the ports it has (the status quo)
    assert PlacedSource(XapiSource(), A).tunnel_ports() is None
    assert _source("somebody-else", _spanning()).tunnel_ports() is None
