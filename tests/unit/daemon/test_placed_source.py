"""PlacedSource: the gateways placement gives this host and the claim lets it serve, and
what it says about the rest."""
from agent.adapters.xapi import read_inventory_uuid
from agent.core import claims, desired
from agent.daemon.sources import PlacedSource, XapiSource

A, B = "1aaa", "2bbb"


def _records(pin=None, b_live=True, claim=A + ":1"):
    other = {desired.ADDRESS: "172.16.1.1/24"}
    if pin:
        other[desired.HOST] = pin
    if claim:
        other[claims.CLAIM] = claim
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
    assert _source(A, _records(pin="two", claim=B + ":1")).gateways() == {}
    assert list(_source(A, _records(pin="two", b_live=False)).gateways()) == ["vlan"]


def _writes(source):
    return [(name, net, v.action, v.write) for name, net, v in source.claim_writes()]


def test_the_placed_host_serves_only_once_its_claim_is_written():
    one = _source(A, _records(claim=None))
    assert one.gateways() == {} and _writes(one) == [
        ("vlan", "net-1", claims.CLAIM_IT, ("", A + ":1"))]
    assert "claiming (no claim yet)" in one.elsewhere()["vlan"][1].reason
    one.note_claim("net-1", A + ":1")
    assert list(one.gateways()) == ["vlan"] and _writes(one) == []
    two = _source(B, _records(claim=None))   # the other host writes nothing
    assert two.gateways() == {} and _writes(two) == []


def test_the_successor_takes_the_claim_of_an_unreachable_holder_and_serves_after():
    two = _source(B, _records())
    two.set_unreachable([A])
    assert two.gateways() == {}
    assert _writes(two) == [("vlan", "net-1", claims.TAKE, (A + ":1", B + ":2"))]
    assert "which is unreachable (no heartbeat)" in two.elsewhere()["vlan"][1].reason
    two.note_claim("net-1", B + ":2")
    assert list(two.gateways()) == ["vlan"]
    # A is heard again: placement wants A back; B hands over, A waits for it
    two.set_unreachable([])
    assert two.gateways() == {}
    assert _writes(two) == [("vlan", "net-1", claims.RELEASE, (B + ":2", ":3"))]
    one = _source(A, _records(claim=B + ":2"))
    assert one.gateways() == {} and _writes(one) == []
    assert "waiting for %s to hand over" % B in one.elsewhere()["vlan"][1].reason
    assert one.elsewhere()["vlan"][1].host.uuid == B


def test_a_host_never_counts_itself_unreachable():
    one = _source(A, _records())
    one.set_unreachable([A, B])
    assert list(one.gateways()) == ["vlan"]


def test_a_takeover_seen_half_way_changes_nothing():
    two = _source(B, _records())
    two.set_unreachable([A])
    two.note_claim("net-1", B + ":2")
    two.update_pool(_records(claim=None))      # the event between remove and add
    assert list(two.gateways()) == ["vlan"] and _writes(two) == []
    two.update_pool(_records(claim=B + ":2"))
    assert list(two.gateways()) == ["vlan"]


def test_a_claim_by_another_host_stops_service_at_once():
    one = _source(A, _records())
    assert list(one.gateways()) == ["vlan"]
    one.update_pool(_records(claim=B + ":2"))   # B's takeover, seen through the event
    assert one.gateways() == {} and _writes(one) == []   # B is fit: A waits


def test_emergency_mode_keeps_the_status_quo():
    one, two = _source(A, _records()), _source(B, _records())
    assert one.set_connected(False) and two.set_connected(False)
    assert two.emergency
    two.set_unreachable([A])              # A dies while the master is away
    assert list(one.gateways()) == ["vlan"] and two.gateways() == {}
    assert _writes(two) == [] and "emergency mode" in two.elsewhere()["vlan"][1].reason
    one.update_pool(_records(claim=B + ":5"))  # nothing dropped either
    assert list(one.gateways()) == ["vlan"]
    assert two.set_connected(True) and not two.emergency
    assert _writes(two)[0][2] == claims.TAKE


def test_before_the_pool_records_a_cached_claim_of_another_host_is_respected():
    xapi = XapiSource()
    xapi.update(_records(claim=A + ":3")["network"])
    cached = {"net-1": A + ":3"}
    assert PlacedSource(xapi, B, claims_of=lambda: cached).gateways() == {}
    assert list(PlacedSource(xapi, A, claims_of=lambda: cached).gateways()) == ["vlan"]
    # after a boot the kernel is empty and the claim may be stale: wait for XAPI
    assert PlacedSource(xapi, A, claims_of=lambda: cached, restarted=False).gateways() == {}
    assert PlacedSource(xapi, A, claims_of=lambda: {"net-1": "junk"}).gateways() == {}
    assert list(PlacedSource(xapi, A, claims_of=lambda: {}).gateways()) == ["vlan"]


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


def test_the_star_follows_the_heartbeats():
    """Host two stops hearing the center (host one, still live in XAPI): it drops its port
    to it at once, and takes it back when the heartbeats do."""
    two = _source(B, _spanning())
    assert [p.remote_ip for p in two.tunnel_ports()] == ["10.0.0.1"]
    two.set_unreachable([A])
    assert two.tunnel_ports() == () and two.tunnel_status()[0]["center_name"] == "two"
    two.set_unreachable([])
    assert [p.remote_ip for p in two.tunnel_ports()] == ["10.0.0.1"]


def test_the_ports_this_host_should_have():
    assert [p.remote_ip for p in _source("one", _spanning()).tunnel_ports()] == ["10.0.0.2"]
    assert [p.remote_ip for p in _source(B, _spanning()).tunnel_ports()] == ["10.0.0.1"]
    assert _source(A, _spanning(b_address="")).tunnel_ports() == ()
    # unknown pool or host: None, so the daemon keeps the ports it has (the status quo)
    assert PlacedSource(XapiSource(), A).tunnel_ports() is None
    assert _source("somebody-else", _spanning()).tunnel_ports() is None
