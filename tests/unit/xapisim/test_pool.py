"""Pool members in the simulator: host.disable, host.enable, host.shutdown and
host_metrics.live as xapi has them, and a pool of three hosts (records only: the real
namespaces and Open vSwitch are in tests/integration/test_xapisim_pool.py): VM.start_on,
placement and VM_REQUIRES_NETWORK, tunnels; over the real SDK on HTTP."""
import pytest
import XenAPI

from agent.xapisim import pool as members
from agent.xapisim import server
from agent.xapisim.engine import Engine
from tests.unit.xapisim.test_sdk import failure


def test_a_member_is_disabled_shut_down_and_marked_dead_at_once(served, xenapi):
    engine = served[0]
    other = members.add_host(engine, "xgw-sim-2", "openvswitch")
    assert sorted(xenapi.host.get_name_label(h) for h in xenapi.host.get_all()) == [
        "xgw-sim", "xgw-sim-2"]
    metrics = xenapi.host.get_metrics(other)
    assert xenapi.host_metrics.get_live(metrics) is True
    assert failure(xenapi.host.shutdown, other) == ["HOST_NOT_DISABLED"]
    xenapi.host.disable(other)
    assert xenapi.host.get_enabled(other) is False
    xenapi.host.enable(other)
    assert xenapi.host.get_enabled(other) is True
    xenapi.host.disable(other)
    xenapi.host.shutdown(other)
    assert xenapi.host_metrics.get_live(metrics) is False
    assert failure(xenapi.host.enable, other) == ["HOST_OFFLINE", other]


def test_a_host_with_a_running_guest_is_not_shut_down(xenapi):
    host = xenapi.host.get_all()[0]
    template = xenapi.VM.get_by_name_label("Other install media")[0]
    vm = xenapi.VM.clone(template, "guest")
    xenapi.VM.provision(vm)
    xenapi.VM.start(vm, False, False)
    xenapi.host.disable(host)
    assert failure(xenapi.host.shutdown, host) == ["HOST_IN_USE", host, "VM", vm]
    assert xenapi.host_metrics.get_live(xenapi.host.get_metrics(host)) is True


def test_disable_and_shutdown_are_seen_through_event_from(served, xenapi):
    engine = served[0]
    other = members.add_host(engine, "xgw-sim-2", "openvswitch")
    token = xenapi.event_from(["host", "host_metrics"], "", 0.0)["token"]
    xenapi.host.disable(other)
    xenapi.host.shutdown(other)
    events = xenapi.event_from(["host", "host_metrics"], token, 1.0)["events"]
    seen = [(e["class"], e["snapshot"].get("enabled", e["snapshot"].get("live")))
            for e in events]
    assert ("host", False) in seen and ("host_metrics", False) in seen


# ---- a pool of three hosts (records only), through the SDK over HTTP -------------------

def _serve(model, backend="openvswitch"):
    engine = Engine(model)
    sim = members.Pool(engine, hosts=3, backend=backend)
    servers, (host, port) = server.serve(engine, host="127.0.0.1", port=0)
    session = XenAPI.Session("http://%s:%d" % (host, port))
    session.xenapi.login_with_password("root", "", "1.0", "xapi-gateway-tests")
    return engine, sim, servers, session.xenapi


@pytest.fixture
def pool3(model):
    engine, sim, servers, x = _serve(model)
    yield engine, sim, x
    server.shutdown(servers)
    sim.close()


def _vm(x, name, net):
    template = x.VM.get_by_name_label("Other install media")[0]
    vm = x.VM.clone(template, name)
    x.VM.provision(vm)
    x.VIF.create({"VM": vm, "network": net, "device": "0", "MAC": "", "MTU": "1500",
                  "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    return vm


def test_a_pool_of_three_hosts_has_a_master_and_a_management_pif_each(pool3):
    engine, sim, x = pool3
    hosts = x.host.get_all()
    assert len(hosts) == 3 and sim.hosts == hosts
    [pool] = x.pool.get_all()
    assert x.pool.get_master(pool) == hosts[0]
    assert [x.host.get_name_label(h) for h in hosts] == ["xgw-sim", "xgw-sim-2", "xgw-sim-3"]
    [eth0] = x.network.get_by_name_label("Pool-wide network associated with eth0")
    pifs = x.network.get_PIFs(eth0)
    assert sorted(x.PIF.get_host(p) for p in pifs) == sorted(hosts)
    for host in hosts:
        assert all(x.host_metrics.get_live(x.host.get_metrics(host)) for host in hosts)
        dom0 = x.host.get_control_domain(host)
        assert x.VM.get_resident_on(dom0) == host and x.VM.get_domid(dom0) == "0"
        [pif] = [p for p in x.host.get_PIFs(host) if x.PIF.get_management(p)]
        assert x.PIF.get_device(pif) == "eth0" and x.PIF.get_network(pif) == eth0


def test_a_private_network_keeps_its_vms_on_one_host(pool3):
    engine, sim, x = pool3
    h1, h2, h3 = x.host.get_all()
    net = x.network.create({"name_label": "private", "other_config": {}})
    bridge = x.network.get_bridge(net)
    a, b, c = _vm(x, "a", net), _vm(x, "b", net), _vm(x, "c", net)
    x.VM.start_on(a, h2, False, False)
    assert x.VM.get_resident_on(a) == h2
    assert engine.dom0[h2].created == {bridge} and engine.dom0[h1].created == set()
    # xapi's assert_can_see_named_networks: the network is in use on h2 only
    assert failure(x.VM.start_on, b, h3, False, False) == ["VM_REQUIRES_NETWORK", b, net]
    assert failure(x.VM.assert_can_boot_here, b, h1) == ["VM_REQUIRES_NETWORK", b, net]
    assert x.VM.get_power_state(b) == "Halted"
    x.VM.start(b, False, False)  # placement finds the one host that can run it
    assert x.VM.get_resident_on(b) == h2
    x.VM.hard_shutdown(a)
    x.VM.hard_shutdown(b)
    assert engine.dom0[h2].created == set()
    x.VM.start_on(c, h3, False, False)
    assert engine.dom0[h3].created == {bridge}
    # assume_network_is_shared lifts the rule
    x.network.add_to_other_config(net, "assume_network_is_shared", "true")
    x.VM.start_on(a, h1, False, False)
    assert engine.dom0[h1].created == {bridge} and engine.dom0[h3].created == {bridge}
    x.VM.hard_shutdown(a)
    x.network.remove_from_other_config(net, "assume_network_is_shared")
    # VM.start finds no host when the VM's networks are split across hosts
    other = x.network.create({"name_label": "other", "other_config": {}})
    d = _vm(x, "d", other)
    x.VM.start_on(d, h1, False, False)
    both = _vm(x, "both", net)
    x.VIF.create({"VM": both, "network": other, "device": "1", "MAC": "", "MTU": "1500",
                  "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    assert failure(x.VM.start, both, False, False) == ["NO_HOSTS_AVAILABLE"]


def test_start_on_a_disabled_or_dead_host_is_refused(pool3):
    engine, sim, x = pool3
    h1, h2, h3 = x.host.get_all()
    net = x.network.create({"name_label": "private", "other_config": {}})
    vm = _vm(x, "a", net)
    x.host.disable(h3)
    assert failure(x.VM.start_on, vm, h3, False, False) == ["HOST_DISABLED", h3]
    x.host.shutdown(h3)
    assert failure(x.VM.start_on, vm, h3, False, False) == ["HOST_NOT_LIVE"]
    x.host.disable(h1)
    x.VM.start(vm, False, False)  # the only live, enabled host
    assert x.VM.get_resident_on(vm) == h2


def test_tunnels_make_access_pifs_and_their_bridges_on_each_host(pool3):
    engine, sim, x = pool3
    hosts = x.host.get_all()
    net = x.network.create({"name_label": "spanning", "other_config": {}, "MTU": "1450"})
    bridge = x.network.get_bridge(net)
    transports = {h: [p for p in x.host.get_PIFs(h) if x.PIF.get_management(p)][0]
                  for h in hosts}
    tunnels = []
    for host in hosts:
        tunnel = x.tunnel.create(transports[host], net, "vxlan")
        tunnels.append(tunnel)
        record = x.tunnel.get_record(tunnel)
        assert record["protocol"] == "vxlan" and record["status"] == {"active": "false"}
        assert record["transport_PIF"] == transports[host]
        access = x.PIF.get_record(record["access_PIF"])
        assert (access["device"], access["network"], access["host"], access["physical"],
                access["currently_attached"], access["VLAN"], access["MTU"]) == (
            "tunnel0", net, host, False, True, "-1", "-1")
        assert access["tunnel_access_PIF_of"] == [tunnel]
        assert tunnel in x.PIF.get_tunnel_transport_PIF_of(transports[host])
        assert engine.dom0[host].created == {bridge}  # networkd made the bridge, no port
        assert engine.dom0[host].ports == {}
    assert len(x.network.get_PIFs(net)) == 3
    # one access PIF per host and network
    assert failure(x.tunnel.create, transports[hosts[0]], net, "gre")[0] == \
        "NETWORK_ALREADY_CONNECTED"
    # a tunnel over a tunnel: refused
    access0 = x.tunnel.get_access_PIF(tunnels[0])
    net2 = x.network.create({"name_label": "n2", "other_config": {}})
    assert failure(x.tunnel.create, access0, net2, "gre") == ["IS_TUNNEL_ACCESS_PIF", access0]
    # the default protocol is gre, the device the next free tunnelN
    t2 = x.tunnel.create(transports[hosts[0]], net2)
    assert x.tunnel.get_protocol(t2) == "gre"
    assert x.PIF.get_device(x.tunnel.get_access_PIF(t2)) == "tunnel1"
    # a VM on the tunnel network may start on any host that has its access PIF
    vm = _vm(x, "a", net)
    x.VM.start_on(vm, hosts[2], False, False)
    assert list(engine.dom0[hosts[2]].ports.values())[0][0] == bridge
    x.VM.hard_shutdown(vm)
    # unplugging the access PIF takes the bridge away on that host
    x.PIF.unplug(x.tunnel.get_access_PIF(tunnels[1]))
    assert engine.dom0[hosts[1]].created == set()
    x.PIF.plug(x.tunnel.get_access_PIF(tunnels[1]))
    assert engine.dom0[hosts[1]].created == {bridge}
    x.tunnel.destroy(tunnels[1])
    assert engine.dom0[hosts[1]].created == set()
    assert len(x.network.get_PIFs(net)) == 2
    assert failure(x.tunnel.get_record, tunnels[1])[0] == "HANDLE_INVALID"
    # a host shut down loses its bridges; powered on, it has them again
    x.host.disable(hosts[2])
    x.host.shutdown(hosts[2])
    assert engine.dom0[hosts[2]].created == set()
    sim.power_on(hosts[2])
    assert engine.dom0[hosts[2]].created == {bridge}
    assert x.host_metrics.get_live(x.host.get_metrics(hosts[2])) is True


def test_a_transport_pif_without_ip_leaves_the_tunnel_unplugged(pool3):
    engine, sim, x = pool3
    host = x.host.get_all()[1]
    net = x.network.create({"name_label": "spanning", "other_config": {}})
    transport = [p for p in x.host.get_PIFs(host) if x.PIF.get_management(p)][0]
    engine.set_field("PIF", transport, "ip_configuration_mode", "None")
    assert failure(x.tunnel.create, transport, net, "vxlan") == [
        "TRANSPORT_PIF_NOT_CONFIGURED", transport]
    # as in xapi: the records were made before the plug failed
    [tunnel] = x.tunnel.get_all()
    assert x.PIF.get_currently_attached(x.tunnel.get_access_PIF(tunnel)) is False
    assert engine.dom0[host].created == set()


def test_tunnels_need_open_vswitch_on_every_host(model):
    engine, sim, servers, x = _serve(model, backend="bridge")
    try:
        net = x.network.create({"name_label": "spanning", "other_config": {}})
        pif = [p for p in x.PIF.get_all() if x.PIF.get_management(p)][0]
        assert failure(x.tunnel.create, pif, net, "vxlan") == ["OPENVSWITCH_NOT_ACTIVE"]
        assert x.tunnel.get_all() == [] and x.network.get_PIFs(net) == []
    finally:
        server.shutdown(servers)
        sim.close()


def test_a_vlan_from_a_pif_is_made_on_every_live_host(pool3):
    engine, sim, x = pool3
    hosts = x.host.get_all()
    x.host.disable(hosts[2])
    x.host.shutdown(hosts[2])
    [eth0] = x.network.get_by_name_label("Pool-wide network associated with eth0")
    pif = x.network.get_PIFs(eth0)[0]
    net = x.network.create({"name_label": "vlan 102", "other_config": {}})
    untagged = x.pool.create_VLAN_from_PIF(pif, net, "102")
    assert sorted(x.PIF.get_host(p) for p in untagged) == sorted(hosts[:2])
    assert all(x.PIF.get_VLAN(p) == "102" for p in untagged)
