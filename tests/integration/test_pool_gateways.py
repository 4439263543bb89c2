"""Gateways in a pool of three simulated hosts on real Open vSwitch, one daemon per host
namespace, all on the pool's XAPI (tests/integration/pool.py).

A VLAN network with a gateway is one segment across the hosts: exactly one host carries
the address, checked in every host's kernel, and a VM on another host reaches the outside
through it. Host-local private networks are served by the host that has their bridge.
"""
from tests.integration import netns as N

GATEWAY = "172.16.1.1/24"
VLAN_TAG = 102


def carriers(pool, bridge, address=GATEWAY):
    """The numbers of the hosts whose ``bridge`` carries ``address`` now."""
    return [h.number for h in pool.hosts
            if h.daemon is not None and h.daemon.proc is not None
            and address in h.ns.addresses(bridge)]


def wired_gateway(pool, api):
    """A VLAN network on eth0 of every host with a gateway; returns (network, bridge)."""
    [eth0] = api.network.get_by_name_label("Pool-wide network associated with eth0")
    net = api.network.create({"name_label": "vlan", "other_config": {}})
    api.pool.create_VLAN_from_PIF(api.network.get_PIFs(eth0)[0], net, str(VLAN_TAG))
    api.network.add_to_other_config(net, "xapi-gateway.address", GATEWAY)
    return net, api.network.get_bridge(net)


def served_by(pool, name):
    """The number of the host every daemon says serves gateway ``name`` (None until
    they agree)."""
    named = set()
    for host in pool.hosts:
        if host.daemon is None or host.daemon.proc is None:
            continue
        gw = host.daemon.gateway_state(name) or {}
        named.add(gw.get("host"))
    if len(named) != 1:
        return None
    [uuid] = named
    return next((h.number for h in pool.hosts if h.uuid == uuid), None)


def test_a_wired_gateway_is_served_by_exactly_one_host(lab):
    pool = lab(3)
    api = pool.api()
    for n in (1, 2, 3):
        pool.start_daemon(n)
    net, bridge = wired_gateway(pool, api)
    server = N.wait_for(lambda: served_by(pool, "vlan"), timeout=10,
                        message="every daemon naming the same serving host")
    N.wait_for(lambda: carriers(pool, bridge) == [server], timeout=10,
               message="the address on host %d's bridge only" % server)
    ready = sorted((h for h in pool.hosts), key=lambda h: h.uuid)
    assert server == ready[0].number  # the lowest uuid of the live, enabled hosts
    for host in pool.hosts:
        gw = host.daemon.gateway_state("vlan")
        assert gw["state"] == ("applied" if host.number == server else "elsewhere"), gw
    # a VM on another host reaches the outside through the one gateway (its NAT)
    other = next(h.number for h in pool.hosts if h.number != server)
    vm = pool.plug_vm(other, bridge, "172.16.1.10/24", GATEWAY.split("/")[0])
    N.wait_for(lambda: pool.pings(vm, pool.outside), timeout=10,
               message="a VM on host %d reaching the outside via host %d" % (other, server))
    assert carriers(pool, bridge) == [server]


def test_host_local_networks_are_served_where_their_bridge_is(lab):
    pool = lab(3)
    api = pool.api()
    for n in (1, 2, 3):
        pool.start_daemon(n)
    template = api.VM.get_by_name_label("Other install media")[0]
    nets = {}
    for n, subnet in ((2, 21), (3, 31)):
        net = api.network.create({"name_label": "local%d" % n, "other_config": {
            "xapi-gateway.address": "172.16.%d.1/24" % subnet}})
        vm = api.VM.clone(template, "vm%d" % n)
        api.VM.provision(vm)
        api.VIF.create({"VM": vm, "network": net, "device": "0", "MAC": "", "MTU": "1500",
                        "other_config": {}, "qos_algorithm_type": "",
                        "qos_algorithm_params": {}})
        api.VM.start_on(vm, pool.host(n).ref, False, False)
        nets[n] = (net, api.network.get_bridge(net), "172.16.%d.1/24" % subnet)
    for n, (net, bridge, address) in nets.items():
        N.wait_for(lambda: carriers(pool, bridge, address) == [n], timeout=10,
                   message="host %d serving its own private network" % n)
        assert pool.host(n).daemon.gateway_state("local%d" % n)["state"] == "applied"
        for other in pool.hosts:
            if other.number != n:  # no bridge there: nothing to serve, nothing served
                assert not other.ns.link_exists(bridge)
                assert other.daemon.gateway_state("local%d" % n)["state"] in (
                    "absent", "elsewhere")
