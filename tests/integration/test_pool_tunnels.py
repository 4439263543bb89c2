"""Spanning networks in a pool of three simulated hosts on real Open vSwitch, one daemon
per host namespace, all on the pool's XAPI (tests/integration/pool.py): each daemon makes
its own host's VXLAN ports, and only those, from the pool database.

What a user sees is asserted: real packets between VMs on different hosts, the ports in
each host's OVSDB, and the tunnels' state in every daemon's status; the star re-shaped
when a host joins (its tunnel created) and leaves (shut down), and the center moving on
failover.
"""
import time

from agent.core import tunnels
from agent.service.networks import Networks
from agent.xapisim import ovs
from tests.integration import netns as N


def tunnel_ports(host, bridge):
    """{port name: remote_ip} of the daemon's tunnel ports on ``bridge`` of ``host``, read
    with ovs-vsctl; {} while a port goes between two reads (the daemon is re-shaping)."""
    out = {}
    try:
        for port in host.ovs.list_ports(bridge):
            ids = host.ovs.external_ids_of("Port", port)
            if ids.get("xapi-gateway-kind") == tunnels.KIND:
                options = host.ovs.get("Interface", port, "options")
                out[port] = options.split('remote_ip="')[1].split('"')[0]
    except ovs.OvsError:
        return {}
    return out


def status_of(host, uuid):
    for entry in (host.daemon.status() or {}).get("tunnels", []):
        if entry["network"] == uuid:
            return entry
    return None


def converged(pool, uuid, bridge, hosts):
    """The daemons of ``hosts`` (numbers) agree on the shape (its center and the ports of
    every host) and each host's OVS has exactly the ports its daemon's status lists, which
    it says are applied; returns {host number: number of ports}, else None."""
    shapes, counts = set(), {}
    for n in hosts:
        host = pool.host(n)
        entry = status_of(host, uuid)
        if entry is None or entry.get("here_state") != "applied":
            return None
        shapes.add((entry["center"], tuple((p["host"], p["ports"]) for p in entry["ports"])))
        ports = tunnel_ports(host, bridge)
        if sorted(ports.values()) != sorted(p["remote_ip"] for p in entry["here"]):
            return None
        counts[n] = len(ports)
    if len(shapes) != 1:
        return None
    (_center, wanted), = shapes
    wanted = dict(wanted)
    if any(wanted[pool.host(n).uuid] != counts[n] for n in hosts):
        return None
    return counts


def center_number(pool, uuid, n):
    entry = status_of(pool.host(n), uuid)
    return next(h.number for h in pool.hosts if h.uuid == entry["center"])


def test_vms_on_three_hosts_share_a_spanning_network_reshaped_by_the_pool(lab):
    pool = lab(3)
    api = pool.api()
    for n in (1, 2, 3):   # a long periodic check: what repairs here is an event
        pool.start_daemon(n, agent_opts={"check_interval": "300"})
    # made by hand, as with xe: the network, its VNI, and tunnels on hosts 1 and 2 only
    net = api.network.create({"name_label": "lab", "name_description": "", "MTU": "1450",
                              "other_config": {"xapi-gateway.vni": "4242"}})
    uuid, bridge = api.network.get_uuid(net), api.network.get_bridge(net)
    transport = {h.number: next(p for p, r in api.PIF.get_all_records().items()
                                if r["host"] == h.ref and r["management"])
                 for h in pool.hosts}
    for n in (1, 2):
        api.tunnel.create(transport[n], net, "vxlan")
    assert N.wait_for(lambda: converged(pool, uuid, bridge, (1, 2)), timeout=20,
                      message="hosts 1 and 2 tunnelled") == {1: 1, 2: 1}
    entry = status_of(pool.host(3), uuid)
    assert entry["here"] == [] and entry["state"] == "partial"
    assert "no tunnel of this network" in entry["problems"][0]["problem"]

    # host 3 joins: its tunnel made; the center gets a second port, host 3 one
    started = time.monotonic()
    api.tunnel.create(transport[3], net, "vxlan")
    counts = N.wait_for(lambda: converged(pool, uuid, bridge, (1, 2, 3)), timeout=20,
                        interval=0.05, message="the star over three hosts")
    print("join: the star re-shaped on every host %.2f s after tunnel.create"
          % (time.monotonic() - started))
    center = center_number(pool, uuid, 1)
    assert counts == {n: 2 if n == center else 1 for n in (1, 2, 3)}
    vms = {n: pool.plug_vm(n, bridge, "192.168.71.%d/24" % n) for n in (1, 2, 3)}
    for vm in vms.values():
        vm.run(["ip", "link", "set", "eth0", "mtu", str(tunnels.MTU)])
    assert N.wait_for(lambda: pool.pings(vms[3], "192.168.71.1"), timeout=10,
                      message="a VM on host 3 reaching a VM on host 1")
    assert pool.pings(vms[1], "192.168.71.2") and pool.pings(vms[2], "192.168.71.3")

    # someone deletes a tunnel port of the daemon's: it is back at once (an OVSDB event)
    hub = pool.host(center)
    victim = sorted(tunnel_ports(hub, bridge))[0]
    started = time.monotonic()
    hub.ovs.vsctl("del-port", victim)
    N.wait_for(lambda: victim in tunnel_ports(hub, bridge), timeout=10, interval=0.01,
               message="the tunnel port restored")
    print("repair: a deleted tunnel port back in %.3f s" % (time.monotonic() - started))


    # failover: the center is shut down through XAPI; the next host by the rule is the
    # hub, the star is re-shaped over the two left, and their VMs talk again
    left = [n for n in (1, 2, 3) if n != center]
    # a tunnel port the daemon did not make, on a spoke's bridge: never touched
    spoke = pool.host(left[0])
    spoke.ovs.vsctl("add-port", bridge, "vxforeign", "--", "set", "Interface", "vxforeign",
                    "type=vxlan", "options:remote_ip=192.0.2.1", "options:key=4242")
    started = time.monotonic()
    pool.shutdown_host(center, api)
    counts = N.wait_for(lambda: converged(pool, uuid, bridge, left), timeout=20,
                        interval=0.05, message="the star over the two hosts left")
    reshaped = time.monotonic() - started
    assert counts == {n: 1 for n in left}
    new_center = center_number(pool, uuid, left[0])
    assert new_center != center and new_center in left
    assert N.wait_for(lambda: pool.pings(vms[left[0]], "192.168.71.%d" % left[1]),
                      timeout=10, interval=0.05, message="the two hosts left talking")
    assert "vxforeign" in spoke.ovs.list_ports(bridge)
    assert "vxforeign" not in tunnel_ports(spoke, bridge)
    print("failover: the star re-shaped %.2f s and the first ping between the hosts left "
          "%.2f s after the center's host.disable" % (reshaped, time.monotonic() - started))
