"""The simulator as a pool of three hosts on real Open vSwitch: each host a namespace with
its own OVS, the hosts' eth0 on one wire, and XAPI's records and each host's bridges in
step, through the real SDK. Nothing of it is left once the simulator stops (the lab
fixture checks)."""
import re

from tests.integration import netns as N


def _bridges(host):
    return [b for b in host.ovs.list_bridges() if b != "xenbr0"]


def test_three_hosts_each_with_its_own_open_vswitch_on_one_wire(lab):
    pool = lab(3)
    api = pool.api()
    h1, h2, h3 = pool.hosts
    [master] = [api.pool.get_master(p) for p in api.pool.get_all()]
    assert master == h1.ref
    for host in pool.hosts:
        # the management PIF's address is on xenbr0 (an OVS bridge, eth0 its port)
        assert "%s/24" % host.address in host.ns.addresses("xenbr0")
        assert host.ovs.list_ports("xenbr0") == ["eth0"]
        [pif] = [p for p in api.host.get_PIFs(host.ref) if api.PIF.get_management(p)]
        assert (api.PIF.get_IP(pif), api.host.get_address(host.ref)) == (host.address,) * 2
        N.wait_for(lambda: pool.pings(host.ns, pool.outside), timeout=10,
                   message="host %d reaching the underlay" % host.number)
    N.wait_for(lambda: pool.pings(h1.ns, h3.address) and pool.pings(h3.ns, h2.address),
               timeout=10, message="the hosts reaching each other")

    # a private network's bridge is made where its VM runs, on that host only
    net = api.network.create({"name_label": "private", "other_config": {}})
    bridge = api.network.get_bridge(net)
    template = api.VM.get_by_name_label("Other install media")[0]
    vm = api.VM.clone(template, "a")
    api.VM.provision(vm)
    vif = api.VIF.create({"VM": vm, "network": net, "device": "0", "MAC": "", "MTU": "1500",
                          "other_config": {}, "qos_algorithm_type": "",
                          "qos_algorithm_params": {}})
    api.VM.start_on(vm, h2.ref, False, False)
    assert (_bridges(h1), _bridges(h2), _bridges(h3)) == ([], [bridge], [])
    [port] = h2.ovs.list_ports(bridge)
    assert re.match(r"^vif\d+\.0$", port)
    assert h2.ovs.external_ids_of("Interface", port)["xs-vif-uuid"] == api.VIF.get_uuid(vif)

    # tunnels: an access PIF and the network's bridge on every host, no tunnel port
    span = api.network.create({"name_label": "span", "other_config": {}, "MTU": "1450"})
    span_bridge, span_uuid = api.network.get_bridge(span), api.network.get_uuid(span)
    for host in pool.hosts:
        [pif] = [p for p in api.host.get_PIFs(host.ref) if api.PIF.get_management(p)]
        api.tunnel.create(pif, span, "vxlan")
        assert span_bridge in _bridges(host)
        assert host.ovs.external_ids_of("Bridge", span_bridge) == {
            "xs-network-uuids": span_uuid}
        assert host.ovs.list_ports(span_bridge) == []
    # the wire carries tunnels between the hosts' OVS (what the daemon's ports will do)
    for host, peer, inner in ((h1, h2, "192.168.77.1/24"), (h2, h1, "192.168.77.2/24")):
        host.ovs.vsctl("add-port", span_bridge, "t-test", "--", "set", "Interface", "t-test",
                       "type=vxlan", "options:remote_ip=%s" % peer.address, "options:key=77")
        host.ns.run(["ip", "link", "set", span_bridge, "mtu", "1450"])
        host.ns.run(["ip", "addr", "add", inner, "dev", span_bridge])
    N.wait_for(lambda: pool.pings(h1.ns, "192.168.77.2"), timeout=10,
               message="a ping through a VXLAN tunnel between hosts 1 and 2")

    # a VLAN on eth0: a fake bridge on each host's xenbr0, one segment across the hosts
    [eth0] = api.network.get_by_name_label("Pool-wide network associated with eth0")
    vlan = api.network.create({"name_label": "vlan 102", "other_config": {}})
    api.pool.create_VLAN_from_PIF(api.network.get_PIFs(eth0)[0], vlan, "102")
    vlan_bridge = api.network.get_bridge(vlan)
    for host in pool.hosts:
        assert vlan_bridge in _bridges(host)
        assert host.ovs.vsctl("br-to-vlan", vlan_bridge).strip() == "102"
        assert host.ovs.vsctl("br-to-parent", vlan_bridge).strip() == "xenbr0"
    h1.ns.run(["ip", "addr", "add", "172.16.5.1/24", "dev", vlan_bridge])
    guest = pool.plug_vm(3, vlan_bridge, "172.16.5.10/24")
    N.wait_for(lambda: pool.pings(guest, "172.16.5.1"), timeout=10,
               message="a VM on host 3 reaching host 1 on VLAN 102")
    assert not pool.pings(pool.wire, "172.16.5.1")  # the wire itself is untagged

    # a host shut down through XAPI: dead at once, its bridges gone, off the wire
    api.VM.hard_shutdown(vm)
    pool.shutdown_host(2, api)
    assert api.host_metrics.get_live(api.host.get_metrics(h2.ref)) is False
    assert _bridges(h2) == []
    assert not pool.pings(h1.ns, h2.address)
    assert span_bridge in _bridges(h1) and span_bridge in _bridges(h3)


def test_a_pool_on_linux_bridges_refuses_tunnels(lab):
    pool = lab(2, backend=N.LINUX_BRIDGE)
    api = pool.api()
    h1, h2 = pool.hosts
    assert "%s/24" % h2.address in h2.ns.addresses("xenbr0")
    N.wait_for(lambda: pool.pings(h2.ns, h1.address), timeout=10, message="host 1 from 2")
    net = api.network.create({"name_label": "private", "other_config": {}})
    bridge = api.network.get_bridge(net)
    api.network.attach(net, h2.ref)  # the hidden call that makes the bridge on a host
    assert h2.ns.link_exists(bridge) and not h1.ns.link_exists(bridge)
    [pif] = [p for p in api.host.get_PIFs(h1.ref) if api.PIF.get_management(p)]
    span = api.network.create({"name_label": "span", "other_config": {}})
    try:
        api.tunnel.create(pif, span, "vxlan")
    except Exception as exc:  # XenAPI.Failure
        assert exc.details == ["OPENVSWITCH_NOT_ACTIVE"]
    else:
        raise AssertionError("tunnel.create succeeded on Linux bridges")
