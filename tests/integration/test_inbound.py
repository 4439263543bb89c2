"""Inbound routes for real: an outside network reaches the VMs through the host, routed and
not NATed, behind Dom0's stock firewall; everyone else still meets its REJECT.

The topology of test_gateway.py (dom0 with xapi1 172.16.1.1/24, a VM at 172.16.1.10, an
uplink 10.200.0.1 to 'outside' 10.200.0.2), plus a second outside source, 'other'
(10.201.0.2, through dom0's 10.201.0.1), that is not in the gateway's inbound list. Both
outside namespaces get the route the daemon tells its users to add. The servers answer
with the peer address they saw, so each test shows who the VM believes it talks to.
"""
import pytest

from tests.integration import netns as N
from tests.integration.test_forwards import applied, tcp_connect, tcp_server

VM = N.Topology.VM_ADDR.split("/")[0]              # 172.16.1.10
DOM0 = N.Topology.DOM0_UPLINK.split("/")[0]        # 10.200.0.1
OUTSIDE = N.Topology.OUTSIDE                       # 10.200.0.2
NET = "172.16.1.0/24"
OTHER, OTHER_DOM0 = "10.201.0.2", "10.201.0.1"
ALLOWED = "10.200.0.0/24"
GW = {"private": {"bridge": "xapi1", "address": N.Topology.PRIVATE, "inbound": ALLOWED}}
CLOSED = {"private": {"bridge": "xapi1", "address": N.Topology.PRIVATE}}
INBOUND_RULE = ('-A XGW-FORWARD -s %s -d %s -o xapi1 -m comment --comment '
                '"xgw:xapi1:inbound:%s" -j ACCEPT' % (ALLOWED, NET, ALLOWED))


@pytest.fixture
def other(topo):
    """A second outside network, routed to the private subnet through dom0 like the
    first, but not allowed in."""
    ns = N.Netns("other")
    try:
        topo.dom0.run(["ip", "link", "add", "uplink2", "type", "veth", "peer", "name", "eth0",
                       "netns", ns.name])
        topo.dom0.run(["ip", "addr", "add", OTHER_DOM0 + "/24", "dev", "uplink2"])
        topo.dom0.run(["ip", "link", "set", "uplink2", "up"])
        ns.run(["ip", "addr", "add", OTHER + "/24", "dev", "eth0"])
        ns.run(["ip", "link", "set", "eth0", "up"])
        ns.run(["ip", "route", "add", NET, "via", OTHER_DOM0])
        yield ns
    finally:
        ns.delete()


@pytest.fixture
def inbound(topo, workdir, daemons, other):
    """The gateway with 'outside' allowed in, applied; 'outside' has the route to the
    subnet through the host, as `xgw gateways` tells its user to add."""
    topo.create_bridge()
    topo.outside.run(["ip", "route", "add", NET, "via", DOM0])
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: INBOUND_RULE in topo.dom0.rules("filter"), message="inbound rule")
    N.wait_for(lambda: applied(daemon), message="gateway applied")
    return daemon


def test_an_allowed_source_reaches_the_vm_directly_and_the_vm_sees_it(topo, inbound):
    with tcp_server(topo.vm, VM, 80):
        # Routed, not NATed: the VM sees the workstation's own address.
        assert tcp_connect(topo.outside, VM, 80) == "peer=%s" % OUTSIDE


def test_a_source_not_in_the_list_meets_dom0s_firewall(topo, inbound, other):
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(other, VM, 80) is None
    # ...rejected by Dom0's own chain, whose counter shows it; not by anything of ours
    counts = topo.dom0.run(["iptables-legacy", "-t", "filter", "-L", "RH-Firewall-1-INPUT",
                            "-v", "-n", "-x"]).stdout
    reject = [l for l in counts.splitlines() if "REJECT" in l]
    assert reject and int(reject[-1].split()[0]) >= 1, counts


def test_the_status_names_the_route_a_user_adds(topo, inbound):
    gw = inbound.gateway_state("private")
    assert gw["inbound"] == [ALLOWED]
    assert gw["routes"] == [{
        "source": ALLOWED, "via": DOM0,
        "commands": {"linux": "sudo ip route add %s via %s" % (NET, DOM0),
                     "macos": "sudo route -n add -net %s %s" % (NET, DOM0),
                     "windows": "route ADD 172.16.1.0 MASK 255.255.255.0 %s" % DOM0}}]


def test_the_nat_path_out_still_works(topo, inbound):
    with tcp_server(topo.outside, OUTSIDE, 7000):
        # A connection the VM opens is still masqueraded behind the host's uplink.
        assert tcp_connect(topo.vm, OUTSIDE, 7000) == "peer=%s" % DOM0


def test_an_allowed_source_can_still_use_the_hosts_forwarded_ports(topo, workdir, daemons,
                                                                   other):
    topo.create_bridge()
    topo.outside.run(["ip", "route", "add", NET, "via", DOM0])
    gateways = {"private": dict(GW["private"], forwards="tcp:8080=%s:80" % VM)}
    daemon = daemons(topo.dom0, workdir, gateways)
    N.wait_for(lambda: applied(daemon), message="gateway applied")
    with tcp_server(topo.vm, VM, 80, count=2):
        assert tcp_connect(topo.outside, DOM0, 8080) == "peer=%s" % OUTSIDE
        assert tcp_connect(topo.outside, VM, 80) == "peer=%s" % OUTSIDE
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(other, OTHER_DOM0, 8080) == "peer=%s" % OTHER  # the forward
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(other, VM, 80) is None                        # not routed in


def test_removing_the_option_closes_the_path_again(topo, inbound):
    inbound.write_config(CLOSED)
    inbound.reload()
    N.wait_for(lambda: INBOUND_RULE not in topo.dom0.rules("filter"), timeout=5,
               message="inbound rule removed")
    N.wait_for(lambda: applied(inbound), message="gateway still applied")
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(topo.outside, VM, 80) is None
    assert inbound.gateway_state("private")["routes"] == []


DRIFTS = {
    "the inbound rule deleted": lambda ns: ns.ipt("-D", "XGW-FORWARD", *INBOUND_RULE.split(
        " ", 2)[2].replace('"', "").split()),
    "XGW-FORWARD flushed": lambda ns: ns.ipt("-F", "XGW-FORWARD"),
    "FORWARD flushed": lambda ns: ns.ipt("-F", "FORWARD"),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_drift_of_the_inbound_rule_is_repaired(topo, inbound, drift):
    writes = inbound.status()["writes"]
    DRIFTS[drift](topo.dom0)
    N.wait_for(lambda: inbound.status()["writes"] > writes, timeout=5, message="a repair")
    N.wait_for(lambda: INBOUND_RULE in topo.dom0.rules("filter"), timeout=5,
               message="inbound rule back")
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(topo.outside, VM, 80) == "peer=%s" % OUTSIDE


def test_any_is_the_whole_internet_and_its_route_follows_the_default_route(topo, workdir,
                                                                         daemons, other):
    topo.create_bridge()
    topo.dom0.run(["ip", "route", "add", "default", "via", OUTSIDE])
    gateways = {"private": dict(GW["private"], inbound="any")}
    daemon = daemons(topo.dom0, workdir, gateways)
    N.wait_for(lambda: applied(daemon), message="gateway applied")
    routes = daemon.gateway_state("private")["routes"]
    assert [(r["source"], r["via"]) for r in routes] == [("any", DOM0)]
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(other, VM, 80) == "peer=%s" % OTHER
