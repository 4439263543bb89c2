"""Spanning networks: VNIs and the star of VXLAN ports, from XAPI records as the pool
database holds them (agent.core.tunnels).

Each case builds the records XAPI would hold (hosts, host_metrics, the transport and access
PIFs, tunnel records, networks) and checks the ports every host should have, which host is
the hub and what status says about the hosts left out.
"""
import pytest

from agent.core import desired, model, tunnels
from agent.errors import GatewayInvalid

A, B, C, D = "1aaa", "2bbb", "3ccc", "4ddd"    # host uuids: A is the lowest
ADDR = {A: "10.0.0.1", B: "10.0.0.2", C: "10.0.0.3", D: "10.0.0.4"}
NAMES = {A: "host-a", B: "host-b", C: "host-c", D: "host-d"}


class Pool(object):
    """XAPI records of a pool under construction."""

    def __init__(self, *uuids):
        self.records = {"host": {}, "host_metrics": {}, "network": {}, "PIF": {}, "tunnel": {}}
        self.n = 0
        for uuid in uuids:
            self.host(uuid)

    def ref(self, kind):
        self.n += 1
        return "OpaqueRef:%s-%d" % (kind, self.n)

    def host(self, uuid, live=True, enabled=True, backend="openvswitch", address=None,
             mtu=1500):
        metrics = self.ref("metrics")
        self.records["host_metrics"][metrics] = {"live": live}
        ref = "OpaqueRef:host-" + uuid
        self.records["host"][ref] = {"uuid": uuid, "name_label": NAMES[uuid],
                                     "enabled": enabled, "metrics": metrics,
                                     "software_version": {"network_backend": backend}}
        pif = "OpaqueRef:eth0-" + uuid
        self.records["PIF"][pif] = {"uuid": "pif-" + uuid, "device": "eth0", "host": ref,
                                    "network": "OpaqueRef:net-eth0", "currently_attached": True,
                                    "IP": ADDR[uuid] if address is None else address,
                                    "MTU": mtu, "management": True}
        return ref

    def network(self, uuid, vni, mtu=1450, hosts=(), pin=None, attached=True, other=None):
        ref = "OpaqueRef:net-" + uuid
        config = {} if vni is None else {desired.VNI: str(vni)}
        if pin is not None:
            config[desired.ADDRESS] = "172.16.1.1/24"
            config[desired.HOST] = pin
        config.update(other or {})
        self.records["network"][ref] = {"uuid": uuid, "name_label": "net-" + uuid,
                                        "bridge": "xapi%d" % len(self.records["network"]),
                                        "MTU": mtu, "other_config": config}
        for host in hosts:
            self.tunnel(uuid, host, attached)
        return ref

    def tunnel(self, network, host, attached=True):
        access = self.ref("tunnel-pif")
        self.records["PIF"][access] = {"uuid": access, "device": "tunnel0",
                                       "host": "OpaqueRef:host-" + host,
                                       "network": "OpaqueRef:net-" + network,
                                       "currently_attached": attached, "IP": "", "MTU": -1}
        self.records["tunnel"][self.ref("tunnel")] = {
            "access_PIF": access, "transport_PIF": "OpaqueRef:eth0-" + host,
            "protocol": "vxlan"}

    def leave(self, uuid):
        """The host leaves the pool (pool.eject): its records go."""
        ref = "OpaqueRef:host-" + uuid
        self.records["host"].pop(ref)
        for kind in ("PIF",):
            for r, rec in list(self.records[kind].items()):
                if rec["host"] == ref:
                    del self.records[kind][r]
        for r, rec in list(self.records["tunnel"].items()):
            if rec["access_PIF"] not in self.records["PIF"]:
                del self.records["tunnel"][r]

    def shapes(self):
        return tunnels.shapes(self.records)


def star(shape):
    """{host: sorted (peer, remote_ip, key)} of a Shape."""
    return {h: sorted((p.peer, p.remote_ip, p.key) for p in ports)
            for h, ports in shape.ports.items()}


def problem_of(shape, host):
    return " ".join(t for h, t in shape.problems if h == host)


def test_a_star_around_the_lowest_uuid_with_the_vni_as_key():
    pool = Pool(A, B, C)
    pool.network("n1", 5001, hosts=(A, B, C))
    shape = pool.shapes()["n1"]
    assert shape.state == tunnels.READY and shape.center.uuid == A
    assert star(shape) == {A: [(B, ADDR[B], 5001), (C, ADDR[C], 5001)],
                           B: [(A, ADDR[A], 5001)], C: [(A, ADDR[A], 5001)]}
    assert shape.counts(tunnels.placement.snapshot(pool.records["host"], {}, {}, {}).hosts) \
        == {A: 2, B: 1, C: 1}
    port = shape.ports[B][0]
    assert port.bridge == "xapi0" and port.network == "n1"
    assert port.options == {"remote_ip": "10.0.0.1", "key": "5001"}
    assert port.name == "v0013890a000001" and len(port.name) <= 15


def test_the_shape_has_no_loop_and_connects_every_member():
    pool = Pool(A, B, C, D)
    pool.network("n1", 7, hosts=(A, B, C, D))
    shape = pool.shapes()["n1"]
    edges = set(frozenset((h, p.peer)) for h, ports in shape.ports.items() for p in ports)
    # a tree: n - 1 edges connecting n hosts, each edge configured at both of its ends
    assert len(edges) == 3 and set().union(*edges) == {A, B, C, D}
    assert sum(len(p) for p in shape.ports.values()) == 2 * len(edges)


def test_the_records_order_does_not_change_the_answer():
    one, two = Pool(A, B, C), Pool(C, B, A)
    one.network("n1", 9, hosts=(A, B, C))
    two.network("n1", 9, hosts=(C, A, B))
    assert star(one.shapes()["n1"]) == star(two.shapes()["n1"])


def test_the_center_is_the_gateway_host_when_pinned():
    pool = Pool(A, B, C)
    pool.network("n1", 5001, hosts=(A, B, C), pin="host-c")
    shape = pool.shapes()["n1"]
    assert shape.center.uuid == C and "pinned" in shape.reason
    assert star(shape)[C] == [(A, ADDR[A], 5001), (B, ADDR[B], 5001)]


@pytest.mark.parametrize("change,center", [
    (dict(live=False), B), (dict(enabled=False), B)], ids=["center-dies", "center-disabled"])
def test_failover_moves_the_center_and_reshapes(change, center):
    pool = Pool(B, C)
    pool.host(A, **change)
    pool.network("n1", 5001, hosts=(A, B, C))
    shape = pool.shapes()["n1"]
    assert shape.center.uuid == center
    if change.get("live") is False:  # a dead host is out of the star, silently
        assert star(shape) == {B: [(C, ADDR[C], 5001)], C: [(B, ADDR[B], 5001)]}
        assert shape.state == tunnels.READY and not shape.problems
    else:  # a disabled host is still a spoke: its VMs are being moved
        assert star(shape)[A] == [(B, ADDR[B], 5001)]


def test_a_center_this_host_no_longer_hears_is_replaced_before_xapi_says_it_is_dead():
    """A host that simply dies stays live in XAPI for minutes; the heartbeats say so in
    seconds, and the star follows them as the gateway does."""
    pool = Pool(A, B, C)
    pool.network("n1", 5001, hosts=(A, B, C))
    records = pool.records
    seen = tunnels.placement.snapshot(records["host"], records["host_metrics"],
                                      records["network"], records["PIF"]).reaching({A})
    shape = tunnels.shapes(records, seen)["n1"]
    assert shape.center.uuid == B
    assert star(shape) == {B: [(C, ADDR[C], 5001)], C: [(B, ADDR[B], 5001)]}


def test_host_join_and_leave_reshape_the_star():
    pool = Pool(A, B)
    pool.network("n1", 11, hosts=(A, B))
    assert {h: len(p) for h, p in pool.shapes()["n1"].ports.items()} == {A: 1, B: 1}
    pool.host(C)
    shape = pool.shapes()["n1"]
    assert shape.state == tunnels.PARTIAL and "no tunnel of this network" in problem_of(shape, C)
    pool.tunnel("n1", C)
    assert {h: len(p) for h, p in pool.shapes()["n1"].ports.items()} == {A: 2, B: 1, C: 1}
    pool.leave(B)
    assert {h: len(p) for h, p in pool.shapes()["n1"].ports.items()} == {A: 1, C: 1}
    pool.leave(A)
    shape = pool.shapes()["n1"]
    assert shape.state == tunnels.IDLE and shape.ports == {C: ()} and shape.center.uuid == C


def test_a_duplicate_vni_is_kept_by_the_lowest_uuid():
    pool = Pool(A, B)
    pool.network("n2", 42, hosts=(A, B))
    pool.network("n1", 42, hosts=(A, B))
    pool.network("n3", 43, hosts=(A, B))
    shapes = pool.shapes()
    assert shapes["n1"].state == tunnels.READY
    assert shapes["n2"].state == tunnels.INVALID and shapes["n2"].ports == {}
    assert shapes["n2"].reason == ("xapi-gateway.vni 42 is already used by network net-n1 "
                                   "(n1), which keeps it (the lowest uuid does); give this "
                                   "network a free VNI")
    assert shapes["n3"].state == tunnels.READY


def test_a_vni_of_xen_orchestras_vxlan_network_is_taken():
    pool = Pool(A, B)
    pool.network("xo", None, other={tunnels.XO_VNI: "3", tunnels.XO_ENCAPSULATION: "vxlan"})
    pool.network("xogre", None, other={tunnels.XO_VNI: "4"})  # GRE keys are another space
    pool.network("n1", 3, hosts=(A, B))
    pool.network("n2", 4, hosts=(A, B))
    shapes = pool.shapes()
    assert set(shapes) == {"n1", "n2"}
    assert shapes["n1"].state == tunnels.INVALID and "Xen Orchestra" in shapes["n1"].reason
    assert shapes["n2"].state == tunnels.READY
    assert tunnels.allocate(pool.records["network"]) == 1
    pool.network("n0", 1)
    assert tunnels.allocate(pool.records["network"]) == 2  # 3 and 4 are taken
    pool.network("n5", 2)
    assert tunnels.allocate(pool.records["network"]) == 5


@pytest.mark.parametrize("value,reason", [
    ("0", "xapi-gateway.vni 0 is out of range: use a whole number from 1 to 16777215"),
    ("16777216", "xapi-gateway.vni 16777216 is out of range"),
    ("five", "xapi-gateway.vni 'five' is not a VNI: use a whole number from 1 to 16777215"),
    ("", "xapi-gateway.vni is empty")])
def test_a_bad_vni_is_invalid_everywhere(value, reason):
    pool = Pool(A, B)
    pool.network("n1", value, hosts=(A, B))
    shape = pool.shapes()["n1"]
    assert shape.state == tunnels.INVALID and shape.ports == {}
    assert shape.reason.startswith(reason)
    assert tunnels.allocate(pool.records["network"]) == 1


def test_a_transport_pif_without_an_address_leaves_its_host_out():
    pool = Pool(A, C)
    pool.host(B, address="")
    pool.network("n1", 5, hosts=(A, B, C))
    shape = pool.shapes()["n1"]
    assert shape.state == tunnels.PARTIAL
    assert problem_of(shape, B) == ("its transport PIF eth0 has no IP address: configure "
                                    "one (xe pif-reconfigure-ip)")
    assert star(shape) == {A: [(C, ADDR[C], 5)], C: [(A, ADDR[A], 5)]}


def test_a_transport_address_that_is_no_ipv4_address_leaves_its_host_out():
    pool = Pool(A, C)
    pool.host(B, address="fe80::1")
    pool.network("n1", 5, hosts=(A, B, C))
    assert "has address 'fe80::1', not an IPv4 address" in problem_of(pool.shapes()["n1"], B)


def test_two_hosts_with_one_transport_address_keep_the_first():
    pool = Pool(A, B)
    pool.host(C, address=ADDR[B])
    pool.network("n1", 5, hosts=(A, B, C))
    shape = pool.shapes()["n1"]
    assert "has address 10.0.0.2, as host host-b's does" in problem_of(shape, C)
    assert set(shape.ports) == {A, B}


def test_a_host_on_the_linux_bridge_backend_is_left_out():
    pool = Pool(A, B)
    pool.host(C, backend="bridge")
    pool.network("n1", 5, hosts=(A, B))
    shape = pool.shapes()["n1"]
    assert problem_of(shape, C).startswith("it runs the bridge network backend; XAPI's "
                                           "tunnels need Open vSwitch")
    assert set(shape.ports) == {A, B}


def test_an_unplugged_access_pif_leaves_its_host_out():
    pool = Pool(A, B, C)
    pool.network("n1", 5, hosts=(A, B))
    pool.tunnel("n1", C, attached=False)
    shape = pool.shapes()["n1"]
    assert problem_of(shape, C) == "the tunnel's access PIF is not plugged (xe pif-plug)"


@pytest.mark.parametrize("pin,why", [
    ("no-such-host", "the gateway's host pin is invalid (xapi-gateway.host 'no-such-host' "
                     "is no host of this pool"),
    ("host-c", "the gateway host host-c cannot carry the tunnels; ")],
    ids=["unknown-host", "gateway-host-without-transport-address"])
def test_a_pin_the_tunnels_cannot_follow_falls_back_to_the_lowest_member(pin, why):
    pool = Pool(A, B)
    pool.host(C, address="")
    pool.network("n1", 5, hosts=(A, B, C), pin=pin)
    shape = pool.shapes()["n1"]
    assert shape.center.uuid == A and shape.reason.startswith(why)
    assert shape.reason.endswith("lowest uuid among the enabled hosts that carry the network")


def test_a_pin_to_a_host_without_the_tunnel_is_placement_s_fallback():
    pool = Pool(A, B, C)
    pool.network("n1", 5, hosts=(A, B), pin="host-c")
    shape = pool.shapes()["n1"]
    assert shape.center.uuid == A and shape.reason == (
        "the network's gateway host (pinned to host-c, which does not have the network "
        "attached; lowest uuid among the live, enabled hosts with the network attached)")


def test_the_mtu_must_leave_room_for_vxlan():
    pool = Pool(A)
    pool.host(B, mtu=1600)
    pool.network("ok", 5, mtu=1450, hosts=(A, B))
    pool.network("big", 6, mtu=1500, hosts=(A, B))
    shapes = pool.shapes()
    assert shapes["ok"].warnings == ()
    assert shapes["big"].warnings == ((A, "network MTU 1500 + 50 bytes of VXLAN exceed the "
                                          "MTU 1500 of transport PIF eth0: larger frames are "
                                          "dropped; set the network's MTU to 1450"),)
    assert shapes["big"].state == tunnels.READY  # it works, for smaller frames


def test_a_network_without_a_vni_is_not_spanning():
    pool = Pool(A, B)
    pool.network("n1", None, hosts=(A, B))   # tunnels made by someone else (XO): not ours
    assert pool.shapes() == {}


def test_ports_on_one_host():
    pool = Pool(A, B, C)
    pool.network("n1", 5, hosts=(A, B, C))
    pool.network("n2", 6, hosts=(A, B, C), pin="host-b")
    shapes = pool.shapes()
    assert [(p.network, p.peer) for p in tunnels.ports_on(shapes, A)] == \
        [("n1", B), ("n1", C), ("n2", B)]
    assert [(p.network, p.peer) for p in tunnels.ports_on(shapes, B)] == \
        [("n1", A), ("n2", A), ("n2", C)]
    assert tunnels.ports_on(shapes, D) == ()


def test_conflict_names_the_holder():
    pool = Pool(A)
    net = pool.network("n1", 5)
    assert tunnels.conflict(pool.records["network"], 5) == \
        "VNI 5 is already used by network net-n1 (n1)"
    assert tunnels.conflict(pool.records["network"], 5, exclude=net) is None
    assert tunnels.conflict(pool.records["network"], 6) is None


def test_allocation_when_every_vni_is_taken(monkeypatch):
    monkeypatch.setattr(model, "VNI_RANGE", (1, 2))
    pool = Pool(A)
    pool.network("n1", 1)
    assert tunnels.allocate(pool.records["network"]) == 2
    pool.network("n2", 2)
    with pytest.raises(GatewayInvalid, match="every VNI from 1 to 2 is in use"):
        tunnels.allocate(pool.records["network"])


def test_as_dict_names_hosts():
    pool = Pool(A, B)
    pool.host(C, address="")
    pool.network("n1", 5, hosts=(A, B, C))
    shape = pool.shapes()["n1"]
    hosts = tunnels.placement.snapshot(pool.records["host"], {}, {}, {}).hosts
    view = shape.as_dict(hosts)
    assert view["vni"] == 5 and view["center_name"] == "host-a" and view["state"] == "partial"
    assert view["ports"] == [{"host": A, "host_name": "host-a", "ports": 1},
                             {"host": B, "host_name": "host-b", "ports": 1},
                             {"host": C, "host_name": "host-c", "ports": 0}]
    assert view["problems"][0]["host_name"] == "host-c"


# ---- the key in other_config -----------------------------------------------------------------
def test_a_vni_alone_is_no_gateway():
    rec = {"uuid": "n1", "bridge": "xapi1", "other_config": {desired.VNI: "5"}}
    assert desired.read_gateway(rec) is None
    assert desired.gateways_from_networks({"r": rec}) == ({}, {})
    rec["other_config"][desired.ADDRESS] = "172.16.1.1/24"
    assert desired.read_gateway(rec).address.ip.exploded == "172.16.1.1"


@pytest.mark.parametrize("value,vni", [(1, 1), ("16777215", 16777215), (" 42 ", 42)])
def test_parse_vni(value, vni):
    assert model.parse_vni(value) == vni


@pytest.mark.parametrize("value", [True, 0, -1, 1 << 24, "1e3", "0x10", 1.5, None])
def test_parse_vni_refuses(value):
    with pytest.raises(GatewayInvalid):
        model.parse_vni(value)


def test_a_port_as_the_ovsdb_writer_takes_it():
    pool = Pool(A, B)
    pool.network("n1", 5001, hosts=(A, B))
    (port,) = pool.shapes()["n1"].ports[B]
    spec = port.spec()
    assert (spec.name, spec.bridge, spec.type, spec.tag) == (port.name, "xapi0", "vxlan", None)
    assert spec.options == {"remote_ip": ADDR[A], "key": "5001"}
    ids = spec.external_ids()
    assert ids["xapi-gateway-kind"] == "tunnel" and ids["xapi-gateway-for"] == "n1"
    assert ids["xapi-gateway-peer"] == A and ids["xapi-gateway-vni"] == "5001"
    assert tunnels.portsmod.is_own(ids, tunnels.KIND)


def test_the_transport_pifs_of_a_new_spanning_network():
    pool = Pool(A, B)
    hosts, pifs = pool.records["host"], pool.records["PIF"]
    assert tunnels.transports(hosts, pifs) == [("host-a", "OpaqueRef:eth0-" + A),
                                               ("host-b", "OpaqueRef:eth0-" + B)]
    with pytest.raises(GatewayInvalid) as info:
        tunnels.transports(hosts, pifs, "eth1")
    assert str(info.value) == "host host-a has no PIF eth1 to carry the tunnels"
    assert info.value.details == {"field": "transport", "host": "host-a"}
    pool.host(C, address="")
    with pytest.raises(GatewayInvalid) as info:
        tunnels.transports(pool.records["host"], pool.records["PIF"])
    assert str(info.value) == ("host host-c: transport PIF eth0 has no IP address: "
                               "configure one (xe pif-reconfigure-ip)")
    assert info.value.details["field"] == "span"
    pool = Pool(A)
    pool.host(B, backend="bridge")
    with pytest.raises(GatewayInvalid, match="host host-b runs the bridge network backend"):
        tunnels.transports(pool.records["host"], pool.records["PIF"])
