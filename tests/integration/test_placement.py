"""A daemon in a pool serves only the gateways that placement gives its host.

The simulator holds a pool of two hosts (the seeded one, this daemon's, and a member added
with agent.xapisim.pool.add_host); a network on the wire (PIFs on both hosts) carries a
gateway. Through the real SDK: a pin moves the gateway away from this host and back, the
other host's disable and shutdown (host.disable / host.shutdown, as `xe host-disable` and
`xe host-shutdown`) move it here, and a pin naming no host makes it invalid. Each time the
kernel of this host's namespace is checked: the address on the bridge or not, a VM
reaching the outside through it or not.
"""
import time

from agent.xapisim import pool as members
from tests.integration import netns as N
from tests.integration.test_xapi import sdk, xapi  # noqa: F401 (a fixture)


def _wired(engine, network, hosts):
    """The network's PIFs on ``hosts``, as a VLAN or physical network has them."""
    for i, host in enumerate(hosts):
        engine.create("PIF", network=network, host=host, device="eth%d" % (i + 5),
                      currently_attached=True, physical=True, VLAN=-1, MTU=1500)


def test_only_the_placed_host_serves_a_wired_network(xapi, workdir, daemons):  # noqa: F811
    engine, api = xapi["engine"], sdk(xapi["path"])
    here = api.host.get_all()[0]
    other = members.add_host(engine, "xgw-sim-2", "bridge")
    net = api.network.create({"name_label": "vlan", "other_config": {}})
    _wired(engine, net, [here, other])
    bridge = api.network.get_bridge(net)
    topo = N.Topology(bridge=bridge)
    try:
        topo.create_bridge()
        daemon = daemons(topo.dom0, workdir, {}, xapi_url="unix:" + xapi["path"],
                         xapi_host=api.host.get_name_label(here))

        def carries():
            return N.Topology.PRIVATE in topo.dom0.addresses(bridge)

        def placed(wanted, why):
            """The gateway's state and placement as wanted (a pin is changed in two
            writes, so a round may see the gateway unpinned in between)."""
            gw = daemon.gateway_state("vlan") or {}
            return gw.get("state") == wanted and why in (gw.get("placement") or
                                                         gw.get("reason") or "")

        def pings():
            return topo.vm.run(["ping", "-c", "1", "-W", "1", topo.OUTSIDE],
                               check=False).returncode == 0

        api.network.add_to_other_config(net, "xapi-gateway.address", N.Topology.PRIVATE)
        api.network.add_to_other_config(net, "xapi-gateway.host", "xgw-sim-2")
        N.wait_for(lambda: placed("elsewhere", "pinned (xapi-gateway.host)"), timeout=5,
                   message="placed on the other host")
        gw = daemon.gateway_state("vlan")
        assert gw["host"] == api.host.get_uuid(other) and gw["host_name"] == "xgw-sim-2"
        assert gw["placement"] == "pinned (xapi-gateway.host)"
        assert "served by xgw-sim-2" in gw["reason"]
        assert not carries() and not pings()

        # the pin moves it here: address, NAT, a VM reaching the outside
        api.network.remove_from_other_config(net, "xapi-gateway.host")
        api.network.add_to_other_config(net, "xapi-gateway.host", api.host.get_uuid(here))
        N.wait_for(lambda: placed("applied", "pinned"), timeout=5, message="pinned here")
        assert carries()
        N.wait_for(pings, timeout=5, message="a VM reaching the outside through this host")
        assert daemon.gateway_state("vlan")["host_name"] == api.host.get_name_label(here)

        # moved away again: this host removes exactly its own address and rules
        api.network.remove_from_other_config(net, "xapi-gateway.host")
        api.network.add_to_other_config(net, "xapi-gateway.host", "xgw-sim-2")
        N.wait_for(lambda: placed("elsewhere", "pinned"), timeout=5, message="moved away")
        assert not carries() and not pings()
        assert "xgw:%s" % bridge not in topo.dom0.run(["iptables-save"]).stdout

        # the pinned host goes into maintenance, then down: this host takes over
        api.host.disable(other)
        started = time.monotonic()
        N.wait_for(lambda: placed("applied", "pinned to xgw-sim-2, which is disabled"),
                   timeout=5, message="taken over on disable")
        N.wait_for(pings, timeout=5, message="pings through the new server")
        print("\ntakeover after host.disable: first ping through this host %.2f s after "
              "the call" % (time.monotonic() - started))
        api.host.shutdown(other)
        N.wait_for(lambda: placed("applied", "pinned to xgw-sim-2, which is not live"),
                   timeout=5, message="still served here once the other host is down")

        # a pin naming no host of the pool: invalid, served nowhere
        api.network.remove_from_other_config(net, "xapi-gateway.host")
        api.network.add_to_other_config(net, "xapi-gateway.host", "no-such-host")
        N.wait_for(lambda: placed("invalid", "'no-such-host' is no host of this pool"),
                   timeout=5, message="invalid")
        N.wait_for(lambda: not carries(), timeout=5, message="address removed")
    finally:
        topo.close()
