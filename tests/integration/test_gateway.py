"""The gateway engine for real: namespaces, a bridge, the Dom0 firewall, real packets."""
import json
import os
import re
import subprocess
import sys

import pytest

from tests.integration import netns as N

# on both of Dom0's network backends: Linux bridges and Open vSwitch (userspace datapath)
BOTH = pytest.mark.parametrize("backend", N.BACKENDS)
GW = {"private": {"bridge": "xapi1", "address": N.Topology.PRIVATE, "nat": "yes"}}


def applied(daemon, name="private"):
    gw = daemon.gateway_state(name)
    return gw is not None and gw["state"] == "applied"


def gateway_in_kernel(ns, bridge="xapi1", address=N.Topology.PRIVATE):
    nat = ns.rules("nat")
    flt = ns.rules("filter")
    postrouting = [l for l in nat if l.startswith("-A POSTROUTING ")]
    forward = [l for l in flt if l.startswith("-A FORWARD ")]
    return (address in ns.addresses(bridge)
            and any(l.startswith("172.16.1.0/24 dev %s" % bridge) for l in ns.routes())
            and postrouting[:1] == ["-A POSTROUTING -j XGW-POSTROUTING"]
            and forward[:1] == ["-A FORWARD -j XGW-FORWARD"]
            and sum(1 for l in nat if "xgw:%s:masquerade" % bridge in l) == 1
            and sum(1 for l in flt if "xgw:%s:forward-" % bridge in l) == 2
            and all(line in flt for line in expected_forward(bridge))
            and ns.ip_forward() == "1")


def expected_forward(bridge="xapi1", net="172.16.1.0/24"):
    return ['-A XGW-FORWARD -s %s -i %s -m comment --comment "xgw:%s:forward-out:%s" -j ACCEPT'
            % (net, bridge, bridge, net),
            '-A XGW-FORWARD -d %s -o %s -m conntrack --ctstate RELATED,ESTABLISHED -m comment '
            '--comment "xgw:%s:forward-back:%s" -j ACCEPT' % (net, bridge, bridge, net)]


def tcp_through(topo, port=8080):
    server = topo.outside.popen([sys.executable, os.path.join(N.HELPERS, "peer_server.py"),
                                 topo.OUTSIDE, str(port)], stdout=subprocess.PIPE,
                                universal_newlines=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        out = topo.vm.run([sys.executable, os.path.join(N.HELPERS, "tcp_client.py"),
                           topo.OUTSIDE, str(port)], check=False)
        return out.stdout.strip()
    finally:
        server.kill()
        server.wait()


def ping(ns, target, count=1):
    return ns.run(["ping", "-c", str(count), "-W", "2", target], check=False).returncode == 0


@BOTH
def test_vm_reaches_outside_only_through_the_gateway(topo, workdir, daemons):
    topo.create_bridge()
    assert not ping(topo.vm, topo.OUTSIDE)  # no gateway address yet
    # What the seed script does: address, MASQUERADE, ip_forward, but no FORWARD accept.
    # Dom0's firewall lets ICMP through FORWARD but REJECTs the TCP connection.
    seed = ["-t", "nat", "-A", "POSTROUTING", "-s", "172.16.1.0/24", "-j", "MASQUERADE"]
    topo.dom0.run(["ip", "addr", "add", topo.PRIVATE, "dev", "xapi1"])
    topo.dom0.ipt(*seed)
    topo.dom0.set_ip_forward(1)
    # a few tries: the first echo also waits for ARP on a bridge made a moment ago, and a
    # loaded machine can take longer than one ping's 2 s for that
    N.wait_for(lambda: ping(topo.vm, topo.OUTSIDE), timeout=15, interval=0.1,
               message="the seed's NAT path answering a ping")
    assert tcp_through(topo) == ""  # rejected: icmp-host-prohibited
    topo.dom0.ipt(*(["-D" if a == "-A" else a for a in seed]))
    topo.dom0.run(["ip", "addr", "flush", "dev", "xapi1"])
    topo.dom0.set_ip_forward(0)

    if topo.ovs is not None:  # a real OVS bridge and port, not a Linux bridge
        assert topo.ovs.list_ports("xapi1") == ["vif1.0"]
        assert topo.dom0.run(["test", "-e", "/sys/class/net/xapi1/bridge"],
                             check=False).returncode != 0
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway in the kernel")
    assert ping(topo.vm, topo.OUTSIDE, count=2)
    # The outside has no route to 172.16.1.0/24: the reply came back only because the
    # connection left dom0 masqueraded behind its uplink address.
    assert tcp_through(topo) == "peer=10.200.0.1"
    assert applied(daemon)


def test_without_nat_the_outside_cannot_answer(topo, workdir, daemons):
    topo.create_bridge()
    gateways = {"private": dict(GW["private"], nat="no")}
    daemon = daemons(topo.dom0, workdir, gateways)
    N.wait_for(lambda: applied(daemon), message="gateway applied")
    assert not any("MASQUERADE" in l for l in topo.dom0.rules("nat"))
    assert not ping(topo.vm, topo.OUTSIDE)  # forwarded, but no way back


@BOTH
def test_bridge_created_after_start_becomes_gateway(topo, workdir, daemons):
    daemon = daemons(topo.dom0, workdir, GW)
    gw = daemon.gateway_state("private")
    assert gw["state"] == "absent"
    topo.create_bridge()
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), timeout=5, message="gateway applied")
    assert ping(topo.vm, topo.OUTSIDE)


def test_a_bridge_left_down_is_down_and_never_said_applied(topo, workdir, daemons):
    """A bridge made and not set up gets its address and rules at once, but no connected
    route while it is down: its gateway is "down", never "applied" before the bridge is
    up (the status once said "applied" for the round that added the address, then
    "down" for the next one)."""
    daemon = daemons(topo.dom0, workdir, GW)
    topo.dom0.run(["ip", "link", "add", "xapi1", "type", "bridge"])
    N.wait_for(lambda: N.Topology.PRIVATE in topo.dom0.addresses("xapi1"), timeout=5,
               message="the address on the bridge that is down")
    N.wait_for(lambda: (daemon.gateway_state("private") or {}).get("state") == "down",
               timeout=5, message="gateway down")
    with open(daemon.log_path) as f:
        assert "gateway private on xapi1: applied" not in f.read()
    topo.dom0.run(["ip", "link", "set", "xapi1", "up"])
    N.wait_for(lambda: applied(daemon), timeout=5, message="gateway applied once up")
    assert gateway_in_kernel(topo.dom0)


def test_converged_rounds_write_nothing_and_nothing_is_duplicated(topo, workdir, daemons):
    topo.create_bridge()
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    N.wait_for(lambda: applied(daemon))
    before = daemon.status()
    # check_interval is 0.5 s: wait for several more full rounds
    N.wait_for(lambda: daemon.status()["rounds"] >= before["rounds"] + 4, timeout=10,
               message="four more rounds")
    after = daemon.status()
    assert after["writes"] == before["writes"]
    assert after["iptables_commits"] == before["iptables_commits"]
    for table in ("nat", "filter"):
        lines = topo.dom0.rules(table)
        assert len(lines) == len(set(lines)), lines


DRIFTS = {
    "nat table flushed": (lambda ns: ns.ipt("-t", "nat", "-F")),
    "FORWARD flushed": (lambda ns: ns.ipt("-F", "FORWARD")),
    "our chain flushed": (lambda ns: ns.ipt("-F", "XGW-FORWARD")),
    "jump moved below the firewall": (lambda ns: (ns.ipt("-D", "FORWARD", "-j", "XGW-FORWARD"),
                                                  ns.ipt("-A", "FORWARD", "-j", "XGW-FORWARD"))),
    "address flushed": (lambda ns: ns.run(["ip", "addr", "flush", "dev", "xapi1"])),
    "route deleted": (lambda ns: ns.run(["ip", "route", "del", "172.16.1.0/24", "dev", "xapi1"])),
    "ip_forward reset": (lambda ns: ns.set_ip_forward(0)),
    # someone rewrites our rule in place, keeping our comment: content counts, not the name
    "our rule altered in place": (lambda ns: ns.ipt(
        "-R", "XGW-FORWARD", "1", "-s", "172.16.1.0/24", "-i", "xapi9", "-m", "comment",
        "--comment", "xgw:xapi1:forward-out:172.16.1.0/24", "-j", "ACCEPT")),
}


@BOTH
@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_drift_is_repaired(topo, workdir, daemons, drift):
    topo.create_bridge()
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    N.wait_for(lambda: applied(daemon))
    writes = daemon.status()["writes"]
    DRIFTS[drift](topo.dom0)
    # Netlink drift is often repaired before we could even look, so the proof that it
    # happened and was repaired is the daemon's own write count.
    N.wait_for(lambda: daemon.status()["writes"] > writes, timeout=5, message="a repair")
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), timeout=5, message="repair of " + drift)
    assert ping(topo.vm, topo.OUTSIDE)


@BOTH
def test_reboot_like_recovery(topo, workdir, daemons):
    topo.create_bridge()
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    saved = topo.dom0.run(["iptables-legacy-save"]).stdout
    assert daemon.stop() == 0
    # SIGTERM leaves the gateway in place: VMs keep their network across restarts.
    assert gateway_in_kernel(topo.dom0)

    # "Reboot": bridges gone, tables empty, forwarding off.
    topo.delete_bridge()
    for table in ("nat", "filter"):
        topo.dom0.ipt("-t", table, "-F")
        topo.dom0.ipt("-t", table, "-X")
    topo.dom0.set_ip_forward(0)
    # ... and the boot restores what `service iptables save` stored while we ran.
    topo.dom0.run(["iptables-legacy-restore"], input=saved)

    daemon = daemons(topo.dom0, workdir, GW)
    topo.create_bridge()
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), timeout=5, message="gateway after reboot")
    for table in ("nat", "filter"):
        lines = topo.dom0.rules(table)
        assert len(lines) == len(set(lines)), "duplicates after restore: %s" % lines
    assert ping(topo.vm, topo.OUTSIDE)


@BOTH
def test_bridge_gone_takes_its_rules_and_they_come_back(topo, workdir, daemons):
    topo.create_bridge()
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    topo.delete_bridge()
    N.wait_for(lambda: not any("xgw:" in l for t in ("nat", "filter")
                               for l in topo.dom0.rules(t)), timeout=5, message="rules removed")
    N.wait_for(lambda: daemon.gateway_state("private")["state"] == "absent")
    # the chains and jumps stay, empty: that is the daemon's resting state
    assert "-A FORWARD -j XGW-FORWARD" in topo.dom0.rules("filter")
    topo.create_bridge()
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), timeout=5, message="gateway back")


FOREIGN_NAT = "-A POSTROUTING -s 192.168.77.0/24 -o uplink -j MASQUERADE"
FOREIGN_FWD = "-A FORWARD -s 192.168.77.0/24 -j ACCEPT"


@BOTH
def test_foreign_rules_are_never_touched(topo, workdir, daemons):
    topo.dom0.ipt("-t", "nat", *FOREIGN_NAT.split()[0:])
    topo.dom0.ipt(*FOREIGN_FWD.split())
    nat_before = [l for l in topo.dom0.rules("nat")]
    topo.create_bridge()
    ovsdb_before = ovsdb_rows(topo)
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    nat = topo.dom0.rules("nat")
    flt = topo.dom0.rules("filter")
    assert FOREIGN_NAT in nat and FOREIGN_FWD in flt
    assert nat[1:] == [l for l in nat_before] + [l for l in nat if "XGW-POSTROUTING -s" in l]

    # Remove the gateway from the config and reload: ours go, theirs stay.
    daemon.write_config({})
    daemon.reload()
    N.wait_for(lambda: not any("xgw:" in l for t in ("nat", "filter")
                               for l in topo.dom0.rules(t)), timeout=5, message="ours removed")
    N.wait_for(lambda: topo.dom0.addresses("xapi1") == [], message="address removed")
    assert FOREIGN_NAT in topo.dom0.rules("nat")
    assert FOREIGN_FWD in topo.dom0.rules("filter")
    assert "-A FORWARD -j RH-Firewall-1-INPUT" in topo.dom0.rules("filter")

    # --cleanup removes the chains and jumps too, and still nothing else.
    assert daemon.stop() == 0
    out = topo.dom0.run([sys.executable, "-m", "agent.daemon.main", "-c", daemon.config_path,
                         "--cleanup"])
    assert "removed" in out.stdout
    nat, flt = topo.dom0.rules("nat"), topo.dom0.rules("filter")
    assert not any("XGW" in l for l in nat + flt)
    assert FOREIGN_NAT in nat and FOREIGN_FWD in flt
    assert "-A FORWARD -j RH-Firewall-1-INPUT" in flt
    # nor any row of Open vSwitch's: xcp-networkd's bridge and port are as they were
    assert ovsdb_rows(topo) == ovsdb_before


def ovsdb_rows(topo):
    """What xcp-networkd owns in OVSDB (None on Linux bridges): every Bridge, Port and
    Interface with the columns that configure them."""
    if topo.ovs is None:
        return None
    return [topo.ovs.vsctl("--format=json", "--columns=%s" % columns, "list", table)
            for table, columns in (
                ("Open_vSwitch", "bridges,external_ids,other_config"),
                ("Bridge", "name,ports,datapath_type,external_ids,other_config,fail_mode"),
                ("Port", "name,interfaces,tag,trunks,external_ids,other_config"),
                ("Interface", "name,type,options,external_ids,other_config,mac"))]


def test_cleanup_removes_everything_it_added(topo, workdir, daemons):
    topo.create_bridge()
    topo.dom0.set_ip_forward(0)
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    assert daemon.stop() == 0
    topo.dom0.run([sys.executable, "-m", "agent.daemon.main", "-c", daemon.config_path,
                   "--cleanup"])
    assert topo.dom0.addresses("xapi1") == []
    assert not any("XGW" in l for t in ("nat", "filter") for l in topo.dom0.save(t).splitlines())
    assert topo.dom0.ip_forward() == "0"  # it was 0 before the daemon turned it on


def test_overlapping_gateway_is_refused_and_nothing_applied(topo, workdir, daemons):
    topo.create_bridge()
    topo.dom0.run(["ip", "link", "add", "xapi2", "type", "bridge"])
    topo.dom0.run(["ip", "link", "set", "xapi2", "up"])
    # Two gateways of one file whose subnets overlap: the file is invalid (exit 2, as
    # --check-config says), and nothing is applied.
    gateways = dict(GW)
    gateways["shadow"] = {"bridge": "xapi2", "address": "172.16.1.129/25"}
    with pytest.raises(AssertionError, match="daemon exited with 2"):
        daemons(topo.dom0, workdir, gateways)
    assert topo.dom0.addresses("xapi1") == [] and topo.dom0.addresses("xapi2") == []
    # A subnet that overlaps an address the host has on another interface is only known
    # at run time: that gateway is refused, the others are applied.
    gateways = dict(GW)
    gateways["uplinkclash"] = {"bridge": "xapi3", "address": "10.200.0.77/24"}
    daemon = daemons(topo.dom0, workdir, gateways)
    N.wait_for(lambda: applied(daemon, "private"), message="private applied")
    clash = daemon.gateway_state("uplinkclash")
    assert clash["state"] == "refused" and "on uplink" in clash["reason"]
    assert not any("xapi3" in l for t in ("nat", "filter") for l in topo.dom0.rules(t))
    assert re.search(r"refused: subnet 10.200.0.0/24 .*on uplink", daemon.log())


def test_bad_config_on_reload_keeps_the_running_one(topo, workdir, daemons):
    topo.create_bridge()
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    with open(daemon.config_path, "a") as f:
        f.write("\n[gateway:broken]\nbridge = xapi9\naddress = 172.16.9.0/24\n")
    daemon.reload()
    N.wait_for(lambda: "reload refused" in daemon.log(), message="refusal logged")
    assert "host bits all zero" in daemon.log()
    assert daemon.proc.poll() is None
    assert gateway_in_kernel(topo.dom0)
    assert ping(topo.vm, topo.OUTSIDE)


def test_bad_config_at_start_exits_with_a_clear_error(workdir):
    path = os.path.join(workdir, "bad.conf")
    with open(path, "w") as f:
        f.write("[gateway:x]\nbridge = xapi1\naddress = 172.16.1.1/24\nnat = perhaps\n")
    proc = subprocess.run([sys.executable, "-m", "agent.daemon.main", "-c", path],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=N.REPO)
    assert proc.returncode == 2
    assert "nat 'perhaps' is not a boolean" in proc.stderr


def test_each_rule_carries_its_own_bridge_subnet_and_comment(workdir, daemons):
    """Several gateways at once (names that are prefixes of each other): every rule's
    interface, subnet and comment must agree, and a converged state must stay put."""
    dom0 = N.Netns("multi")
    try:
        bridges = {"xapi1": "10.1.1.1/24", "xapi10": "10.1.10.1/24", "xapi2": "10.1.2.1/24"}
        for bridge in bridges:
            dom0.run(["ip", "link", "add", bridge, "type", "bridge"])
            dom0.run(["ip", "link", "set", bridge, "up"])
        gateways = {"gw-" + b: {"bridge": b, "address": a} for b, a in bridges.items()}
        daemon = daemons(dom0, workdir, gateways)
        N.wait_for(lambda: all(applied(daemon, n) for n in gateways), message="all applied")
        expected_nat, expected_fwd = ["-A POSTROUTING -j XGW-POSTROUTING"], [
            "-A FORWARD -j XGW-FORWARD"]
        for bridge, address in sorted(bridges.items()):
            net = "%s.0/24" % address.rsplit(".", 1)[0]
            expected_nat.append('-A XGW-POSTROUTING -s %s ! -d %s -m comment --comment '
                                '"xgw:%s:masquerade:%s" -j MASQUERADE' % (net, net, bridge, net))
            expected_fwd.append('-A XGW-FORWARD -s %s -i %s -m comment --comment '
                                '"xgw:%s:forward-out:%s" -j ACCEPT' % (net, bridge, bridge, net))
            expected_fwd.append('-A XGW-FORWARD -d %s -o %s -m conntrack --ctstate '
                                'RELATED,ESTABLISHED -m comment --comment '
                                '"xgw:%s:forward-back:%s" -j ACCEPT' % (net, bridge, bridge, net))
            assert dom0.addresses(bridge) == [address]
        assert sorted(dom0.rules("nat")) == sorted(expected_nat)
        assert sorted(dom0.rules("filter")) == sorted(expected_fwd)
        writes = daemon.status()["writes"]
        N.wait_for(lambda: daemon.status()["rounds"] >= 6, message="more rounds")
        assert daemon.status()["writes"] == writes
    finally:
        dom0.delete()


@BOTH
def test_doctor_sees_the_forward_path_before_and_after_the_daemon(topo, workdir, daemons,
                                                                  backend):
    import json as _json
    conf = os.path.join(workdir, "doctor.conf")
    network_conf = os.path.join(workdir, "network.conf")
    with open(network_conf, "w") as f:  # what Dom0's /etc/xensource/network.conf says
        f.write("bridge\n" if backend == N.LINUX_BRIDGE else "openvswitch\n")
    with open(conf, "w") as f:
        f.write("[agent]\nnetwork_conf = %s\n%s[xapi]\nurl = none\n" % (
            network_conf, "ovsdb = %s\n" % topo.ovs.remote if topo.ovs else ""))

    def doctor():
        out = topo.dom0.run([sys.executable, "-m", "agent.cli", "-c", conf, "doctor", "--json"],
                            check=False)
        return out.returncode, {c["name"]: c for c in _json.loads(out.stdout)["checks"]}

    code, checks = doctor()
    assert code == 1 and checks["forward path"]["status"] == "fail"
    assert "RH-Firewall-1-INPUT" in checks["forward path"]["detail"]
    topo.create_bridge()
    daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    code, checks = doctor()
    assert code == 0, checks
    assert checks["forward path"]["status"] == "ok" and checks["ip_forward"]["status"] == "ok"
    assert checks["xapi"]["status"] == "warn"
    if backend == N.LINUX_BRIDGE:
        assert checks["network backend"]["detail"].startswith("Linux bridges")
        assert "ovsdb" not in checks
    else:
        assert checks["network backend"]["detail"].startswith("Open vSwitch")
        assert checks["ovsdb"]["status"] == "ok", checks["ovsdb"]
        assert "Open_vSwitch" in checks["ovsdb"]["detail"]
        # Open vSwitch down: the host cannot make the network's bridges, a failure
        topo.ovs.stop()
        code, checks = doctor()
        assert code == 1 and checks["ovsdb"]["status"] == "fail"
        assert "does not answer" in checks["ovsdb"]["detail"]


def rename(ns, old, new):
    ns.run(["ip", "link", "set", old, "down"])   # the kernel renames only a link that is down
    ns.run(["ip", "link", "set", old, "name", new])
    ns.run(["ip", "link", "set", new, "up"])


def owned(daemon):
    with open(os.path.join(daemon.state_dir, "state.json")) as f:
        return json.load(f)["owned"]


FOREIGN_ADDRESS = "192.168.77.1/24"


@pytest.mark.parametrize("while_stopped", [False, True], ids=["running", "while-stopped"])
def test_renamed_gateway_bridge_gives_back_its_address(topo, workdir, daemons, while_stopped):
    """`ip link set xapi1 name other`: the daemon follows the interface index and takes
    its own address (and only its own) off the renamed link, also when the rename
    happened while it was stopped; a new xapi1 then becomes the gateway, and the VM's
    traffic goes out through it."""
    topo.create_bridge()
    topo.dom0.run(["ip", "addr", "add", FOREIGN_ADDRESS, "dev", "xapi1"])  # someone else's
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: gateway_in_kernel(topo.dom0), message="gateway")
    if while_stopped:
        assert daemon.stop() == 0
    rename(topo.dom0, "xapi1", "other")
    if while_stopped:
        daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: topo.dom0.addresses("other") == [FOREIGN_ADDRESS], timeout=5,
               message="our address off the renamed link, the foreign one left")
    N.wait_for(lambda: daemon.gateway_state("private")["state"] == "absent")

    topo.dom0.run(["ip", "link", "add", "xapi1", "type", "bridge"])
    topo.dom0.run(["ip", "link", "set", "xapi1", "up"])
    topo.dom0.run(["ip", "link", "set", "vif1.0", "master", "xapi1"])
    N.wait_for(lambda: gateway_in_kernel(topo.dom0) and applied(daemon), timeout=5,
               message="the new xapi1 is the gateway")
    assert topo.dom0.addresses("xapi1") == [N.Topology.PRIVATE]
    assert topo.dom0.addresses("other") == [FOREIGN_ADDRESS]
    assert owned(daemon) == {"xapi1": N.Topology.PRIVATE}
    assert tcp_through(topo) == "peer=10.200.0.1"
