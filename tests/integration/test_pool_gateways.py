"""Gateways in a pool of three simulated hosts on real Open vSwitch, one daemon per host
namespace, all on the pool's XAPI (tests/integration/pool.py).

A VLAN network with a gateway is one segment across the hosts: exactly one host carries
the address, checked in every host's kernel, and a VM on another host reaches the outside
through it. Host-local private networks are served by the host that has their bridge.
"""
import threading
import time

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


def rules_for(host, bridge):
    """The tables where host's daemon has rules for ``bridge`` (its rules carry
    xgw:<bridge> comments)."""
    return sorted(table for table in ("nat", "filter")
                  if "xgw:%s" % bridge in host.ns.save(table))


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


def served_once(lab):
    """Three hosts, a daemon on each, a wired gateway settled on one host: (pool, api,
    bridge, the serving host's number)."""
    pool = lab(3)
    api = pool.api()
    for n in (1, 2, 3):
        pool.start_daemon(n)
    _net, bridge = wired_gateway(pool, api)
    server = N.wait_for(lambda: served_by(pool, "vlan"), timeout=10,
                        message="every daemon naming the same serving host")
    N.wait_for(lambda: carriers(pool, bridge) == [server], timeout=10,
               message="the address on host %d's bridge only" % server)
    return pool, api, bridge, server


def test_a_wired_gateway_is_served_by_exactly_one_host(lab):
    pool, api, bridge, server = served_once(lab)
    ready = sorted((h for h in pool.hosts), key=lambda h: h.uuid)
    assert server == ready[0].number  # the lowest uuid of the live, enabled hosts
    for host in pool.hosts:
        gw = host.daemon.gateway_state("vlan")
        assert gw["state"] == ("applied" if host.number == server else "elsewhere"), gw
        # NAT and the forward accepts on the serving host only
        assert rules_for(host, bridge) == (["filter", "nat"] if host.number == server
                                           else []), host.number
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


class Sampler(object):
    """Samples, as often as it can, which hosts carry the gateway address: the longest
    stretch during which two or more did (the double-service window) and when the first
    carrier after the old one appeared."""

    def __init__(self, pool, bridge):
        self.pool, self.bridge = pool, bridge
        self.samples = []      # (monotonic time, [host numbers])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.daemon = True

    def _run(self):
        while not self._stop.is_set():
            now = time.monotonic()
            hosts = [h.number for h in self.pool.hosts
                     if GATEWAY in h.ns.addresses(self.bridge)]
            self.samples.append((now, hosts))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def double_service(self):
        """(longest stretch with 2+ carriers in seconds, bounded by the samples around
        it; the most carriers seen at once)."""
        longest, began, most, last = 0.0, None, 0, None
        for t, hosts in self.samples:
            most = max(most, len(hosts))
            if len(hosts) > 1 and began is None:
                began = last if last is not None else t  # it may have begun just after
            elif len(hosts) <= 1 and began is not None:
                longest, began = max(longest, t - began), None
            last = t
        return longest, most

    def interval(self):
        gaps = [b[0] - a[0] for a, b in zip(self.samples, self.samples[1:])]
        return max(gaps) if gaps else None


def neighbour_mac(ns, address):
    out = ns.run(["ip", "neigh", "show", address, "dev", "eth0"], check=False).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


def mac_of(host, bridge):
    return host.ns.run(["cat", "/sys/class/net/%s/address" % bridge]).stdout.strip()


def test_failover_moves_the_gateway_once_and_announces_it(lab):
    pool, api, bridge, old = served_once(lab)
    # the next host by the rule: the lowest uuid among the others (all live and enabled)
    new = sorted((h for h in pool.hosts if h.number != old), key=lambda h: h.uuid)[0].number
    others = [h.number for h in pool.hosts if h.number != old]
    gw = GATEWAY.split("/")[0]
    vm = pool.plug_vm(others[0], bridge, "172.16.1.10/24", gw)
    neighbour = pool.plug_vm(others[1], bridge, "172.16.1.11/24")
    N.wait_for(lambda: pool.pings(vm, pool.outside), timeout=10, message="the VM's way out")
    # the neighbour learns the gateway's MAC, then is quiet (a fresh port may drop the
    # very first frames while the switch is busy: poll)
    N.wait_for(lambda: pool.pings(neighbour, gw), timeout=10, message="the neighbour's ping")
    old_mac = mac_of(pool.host(old), bridge)
    assert neighbour_mac(neighbour, gw) == old_mac
    time.sleep(1.2)  # past the neighbour entry's locktime (1 s): an update may override it

    with Sampler(pool, bridge) as sampler:
        # `xe host-disable; xe host-shutdown` (xapi shuts down only a disabled host):
        # from then on the old host is off the wire, so a ping that succeeds went
        # through the new gateway
        started = time.monotonic()
        api.host.disable(pool.host(old).ref)
        api.host.shutdown(pool.host(old).ref)
        shut = time.monotonic()
        N.wait_for(lambda: pool.pings(vm, pool.outside), timeout=60, interval=0,
                   message="a ping through the new gateway")
        first_ping = time.monotonic()
        pool.host(old).daemon.stop()  # gone with its host (its bridges went already)
        N.wait_for(lambda: carriers(pool, bridge) == [new], timeout=10,
                   message="host %d serving" % new)
        time.sleep(0.5)  # a little more sampling after the takeover
    # the new host took address, NAT and forwards over; the old one kept none of it
    assert rules_for(pool.host(new), bridge) == ["filter", "nat"]
    assert rules_for(pool.host(old), bridge) == []
    new_mac = mac_of(pool.host(new), bridge)
    assert new_mac != old_mac
    # the gratuitous ARP: the quiet neighbour now has the new server's MAC
    N.wait_for(lambda: neighbour_mac(neighbour, gw) == new_mac, timeout=5,
               message="the neighbour's ARP entry moved to host %d's MAC" % new)
    overlap, most = sampler.double_service()
    print("\nfailover host %d -> host %d: first ping through the new gateway %.2f s after "
          "host.disable (%.2f s after host.shutdown returned); double service: %d carriers "
          "at most, longest overlap %.3f s; %d samples, at most %.3f s apart"
          % (old, new, first_ping - started, first_ping - shut, most, overlap,
             len(sampler.samples), sampler.interval() or 0))
    assert most <= 2 and overlap < 2.0, (most, overlap)
