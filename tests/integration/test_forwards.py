"""Port forwards (DNAT) for real: namespaces, the Dom0 firewall, real connections.

The topology of test_gateway.py: dom0 with xapi1 (172.16.1.1/24) and an uplink
(10.200.0.1) to 'outside' (10.200.0.2, no route to the private subnet), a VM at
172.16.1.10. The gateway publishes the VM's port 80 as the host's tcp port 8080 and its
port 53 as udp 5353. The servers answer with the peer address they saw, so each test
also shows who the VM believes it is talking to.
"""
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest

from tests.integration import netns as N
from tests.integration import test_xapi

xapi = test_xapi.xapi  # the XAPI simulator fixture, on a Unix socket

VM = N.Topology.VM_ADDR.split("/")[0]              # 172.16.1.10
DOM0 = N.Topology.DOM0_UPLINK.split("/")[0]        # 10.200.0.1
GATEWAY = N.Topology.PRIVATE.split("/")[0]         # 172.16.1.1
NET = "172.16.1.0/24"
FORWARDS = "tcp:8080=%s:80,udp:5353=%s:53" % (VM, VM)
GW = {"private": {"bridge": "xapi1", "address": N.Topology.PRIVATE, "forwards": FORWARDS}}
WITHOUT_FORWARDS = {"private": {"bridge": "xapi1", "address": N.Topology.PRIVATE}}

UDP_SERVER = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
sock.settimeout(30)
print("listening", flush=True)
data, peer = sock.recvfrom(100)
sock.sendto(("udp-peer=%s" % peer[0]).encode(), peer)
"""
UDP_CLIENT = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(5)
sock.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
print(sock.recv(100).decode())
"""


def forward_lines(proto, port, to_port, bridge="xapi1", to=VM, net=NET):
    """The iptables-save lines of one forward (agent.core.rules' docstring)."""
    what = "%s:%d=%s:%d" % (proto, port, to, to_port)
    comment = '-m comment --comment "xgw:%s:%%s:%s"' % (bridge, what)
    return {
        "nat": [
            "-A XGW-PREROUTING -p %s -m addrtype --dst-type LOCAL -m %s --dport %d %s "
            "-j DNAT --to-destination %s:%d" % (proto, proto, port, comment % "dnat", to,
                                                to_port),
            "-A XGW-OUTPUT ! -d 127.0.0.0/8 -p %s -m addrtype --dst-type LOCAL -m %s "
            "--dport %d %s -j DNAT --to-destination %s:%d"
            % (proto, proto, port, comment % "dnat-local", to, to_port),
            "-A XGW-POSTROUTING -s %s -d %s/32 -o %s -p %s -m %s --dport %d -m conntrack "
            "--ctstate DNAT %s -j MASQUERADE" % (net, to, bridge, proto, proto, to_port,
                                                 comment % "hairpin"),
        ],
        "filter": [
            "-A XGW-FORWARD -d %s/32 -o %s -p %s -m %s --dport %d -m conntrack --ctstate DNAT "
            "%s -j ACCEPT" % (to, bridge, proto, proto, to_port, comment % "forward-dnat"),
        ],
    }


GATEWAY_LINES = {
    "nat": ["-A POSTROUTING -j XGW-POSTROUTING",
            '-A XGW-POSTROUTING -s %s ! -d %s -m comment --comment '
            '"xgw:xapi1:masquerade:%s" -j MASQUERADE' % (NET, NET, NET)],
    "filter": ["-A FORWARD -j XGW-FORWARD",
               '-A XGW-FORWARD -s %s -i xapi1 -m comment --comment "xgw:xapi1:forward-out:%s" '
               '-j ACCEPT' % (NET, NET),
               '-A XGW-FORWARD -d %s -o xapi1 -m conntrack --ctstate RELATED,ESTABLISHED -m '
               'comment --comment "xgw:xapi1:forward-back:%s" -j ACCEPT' % (NET, NET)],
}


def expected(with_forwards=True):
    """Our lines (those naming an XGW chain) of iptables-save, per table, sorted."""
    lines = {t: list(GATEWAY_LINES[t]) for t in ("nat", "filter")}
    if with_forwards:
        lines["nat"] += ["-A PREROUTING -j XGW-PREROUTING", "-A OUTPUT -j XGW-OUTPUT"]
        for proto, port, to_port in (("tcp", 8080, 80), ("udp", 5353, 53)):
            for table, more in forward_lines(proto, port, to_port).items():
                lines[table] += more
    return {t: sorted(l) for t, l in lines.items()}


def kernel_rules(ns):
    """Our lines of iptables-save; the rest (Dom0's firewall) is never ours to change."""
    return {t: sorted(l for l in ns.rules(t) if "XGW" in l) for t in ("nat", "filter")}


def in_kernel(ns, with_forwards=True):
    return kernel_rules(ns) == expected(with_forwards)


def applied(daemon, name="private"):
    gw = daemon.gateway_state(name)
    return gw is not None and gw["state"] == "applied"


@contextmanager
def tcp_server(ns, address, port, count=1):
    """The helpers' peer server: answers each connection with the peer address it saw."""
    proc = ns.popen([sys.executable, os.path.join(N.HELPERS, "peer_server.py"), address,
                     str(port), str(count)], stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert proc.stdout.readline().strip() == "listening"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def tcp_connect(ns, address, port):
    """What the server said, or None when the connection failed."""
    out = ns.run([sys.executable, os.path.join(N.HELPERS, "tcp_client.py"), address,
                  str(port)], check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def udp_exchange(server_ns, client_ns, listen, target, port_in, port_out):
    proc = server_ns.popen([sys.executable, "-c", UDP_SERVER, listen, str(port_in)],
                           stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert proc.stdout.readline().strip() == "listening"
        out = client_ns.run([sys.executable, "-c", UDP_CLIENT, target, str(port_out)],
                            check=False)
        return out.stdout.strip() if out.returncode == 0 else None
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture
def forwarded(topo, workdir, daemons):
    """The topology with its bridge, and the daemon with the forwarding gateway applied."""
    topo.create_bridge()
    daemon = daemons(topo.dom0, workdir, GW)
    N.wait_for(lambda: in_kernel(topo.dom0), message="gateway and forwards in the kernel")
    N.wait_for(lambda: applied(daemon), message="gateway applied")
    return daemon


@pytest.mark.parametrize("backend", N.BACKENDS)  # the main path on both backends
def test_outside_reaches_the_vm_through_the_forward(topo, forwarded):
    with tcp_server(topo.vm, VM, 80):
        # The VM sees the real client: DNAT changes the destination only.
        assert tcp_connect(topo.outside, DOM0, 8080) == "peer=%s" % topo.OUTSIDE
    assert udp_exchange(topo.vm, topo.outside, VM, DOM0, 53, 5353) == \
        "udp-peer=%s" % topo.OUTSIDE
    # Only the published ports: the VM's port 80 is not the host's port 80.
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(topo.outside, DOM0, 80) is None


def test_dom0_itself_reaches_the_forward_on_its_own_addresses(topo, forwarded):
    with tcp_server(topo.vm, VM, 80, count=2):
        # OUTPUT: a process in Dom0 connecting to the host's own uplink address...
        assert tcp_connect(topo.dom0, DOM0, 8080) == "peer=%s" % DOM0
        # ...or to the gateway address, which is the host's too.
        assert tcp_connect(topo.dom0, GATEWAY, 8080) == "peer=%s" % GATEWAY
    # Loopback stays local: nothing listens on Dom0's own port 8080.
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(topo.dom0, "127.0.0.1", 8080) is None


def test_a_vm_of_the_subnet_reaches_the_published_address_hairpin(topo, forwarded):
    vm2 = N.Netns("vm2")
    try:
        topo.dom0.bridge_veth("xapi1", "vif2.0", vm2, "eth0")
        vm2.run(["ip", "addr", "add", "172.16.1.20/24", "dev", "eth0"])
        vm2.run(["ip", "route", "add", "default", "via", GATEWAY])
        with tcp_server(topo.vm, VM, 80):
            # Masqueraded behind the gateway address: had the server seen 172.16.1.20 it
            # would have answered it directly, from an address it never connected to.
            assert tcp_connect(vm2, DOM0, 8080) == "peer=%s" % GATEWAY
    finally:
        vm2.delete()


def test_converged_rounds_with_forwards_write_nothing(topo, forwarded):
    before = forwarded.status()
    N.wait_for(lambda: forwarded.status()["rounds"] >= before["rounds"] + 4, timeout=10,
               message="four more rounds")
    after = forwarded.status()
    assert after["writes"] == before["writes"]
    assert after["iptables_commits"] == before["iptables_commits"]
    assert in_kernel(topo.dom0)


def test_removing_the_forwards_on_sighup_removes_their_rules_and_chains(topo, forwarded):
    forwarded.write_config(WITHOUT_FORWARDS)
    forwarded.reload()
    N.wait_for(lambda: in_kernel(topo.dom0, with_forwards=False), timeout=5,
               message="forward rules, chains and jumps removed")
    save = topo.dom0.save("nat")
    assert "XGW-PREROUTING" not in save and "XGW-OUTPUT" not in save
    N.wait_for(lambda: applied(forwarded), message="gateway still applied")
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(topo.outside, DOM0, 8080) is None  # Dom0's firewall rejects it
    # ...and back on the next reload
    forwarded.write_config(GW)
    forwarded.reload()
    N.wait_for(lambda: in_kernel(topo.dom0), timeout=5, message="forwards back")
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(topo.outside, DOM0, 8080) == "peer=%s" % topo.OUTSIDE


def test_a_port_published_twice_in_the_config_file_is_refused_before_anything_changes(
        topo, workdir, daemons):
    # Two gateways of one file that clash make the file invalid: the daemon says so and
    # exits (status 2) as --check-config does, instead of applying one and refusing the
    # other. (A clash between a file's gateway and XAPI's is a per-gateway refusal: the
    # planner's, see tests/unit/core/test_planner.py.)
    topo.create_bridge()
    topo.dom0.run(["ip", "link", "add", "xapi2", "type", "bridge"])
    topo.dom0.run(["ip", "link", "set", "xapi2", "up"])
    gateways = dict(GW)
    gateways["second"] = {"bridge": "xapi2", "address": "172.16.2.1/24",
                          "forwards": "tcp:8080=172.16.2.10:80"}
    daemon = N.Daemon(topo.dom0, workdir, gateways)
    check = topo.dom0.run([sys.executable, "-m", "agent.daemon.main", "-c",
                           daemon.config_path, "--check-config"], check=False)
    assert check.returncode == 2
    assert "[gateway:second]: tcp port 8080 is already forwarded by gateway private" in \
        check.stderr
    with pytest.raises(AssertionError, match="daemon exited with 2"):
        daemons(topo.dom0, workdir, gateways)
    assert not any("XGW" in l for t in ("nat", "filter") for l in topo.dom0.rules(t))
    assert topo.dom0.addresses("xapi1") == [] and topo.dom0.addresses("xapi2") == []


def test_a_port_forwarded_by_a_config_and_an_xapi_gateway_is_refused_for_the_second(
        topo, workdir, daemons, xapi):
    """The config file's gateway and one from XAPI forward the same port: the later by
    name is refused at run time, with the sentence of every other entry point."""
    topo.create_bridge()
    api = test_xapi.sdk(xapi["path"])
    net = api.network.create({"name_label": "second", "other_config": {
        "xapi-gateway.address": "172.16.2.1/24",
        "xapi-gateway.forwards": "tcp:8080=172.16.2.10:80"}})
    bridge = api.network.get_bridge(net)  # XAPI's choice
    assert bridge != topo.bridge
    topo.dom0.run(["ip", "link", "add", bridge, "type", "bridge"])
    topo.dom0.run(["ip", "link", "set", bridge, "up"])
    daemon = daemons(topo.dom0, workdir, GW, xapi_url="unix:" + xapi["path"])
    N.wait_for(lambda: applied(daemon) and daemon.gateway_state("second"),
               message="first gateway applied, second known")
    second = daemon.gateway_state("second")
    assert second["state"] == "refused"
    assert "tcp port 8080 is already forwarded by gateway private (to 172.16.1.10:80)" \
        in second["reason"]
    assert not any(second["bridge"] + ":" in l for t in ("nat", "filter")
                   for l in topo.dom0.rules(t))
    assert in_kernel(topo.dom0)


DRIFTS = {
    "XGW-PREROUTING flushed": lambda ns: ns.ipt("-t", "nat", "-F", "XGW-PREROUTING"),
    "jump to XGW-OUTPUT deleted": lambda ns: ns.ipt("-t", "nat", "-D", "OUTPUT", "-j",
                                                    "XGW-OUTPUT"),
    "nat table flushed and chains deleted": lambda ns: (ns.ipt("-t", "nat", "-F"),
                                                        ns.ipt("-t", "nat", "-X")),
    # someone points our DNAT elsewhere, keeping our comment: content counts
    "DNAT destination altered in place": lambda ns: ns.ipt(
        "-t", "nat", "-R", "XGW-PREROUTING", "1", "-p", "tcp", "-m", "addrtype", "--dst-type",
        "LOCAL", "-m", "tcp", "--dport", "8080", "-m", "comment", "--comment",
        "xgw:xapi1:dnat:tcp:8080=%s:80" % VM, "-j", "DNAT", "--to-destination",
        "172.16.1.99:80"),
    "forward accept port altered in place": lambda ns: ns.ipt(
        "-R", "XGW-FORWARD", "3", "-d", VM + "/32", "-o", "xapi1", "-p", "tcp", "-m", "tcp",
        "--dport", "81", "-m", "conntrack", "--ctstate", "DNAT", "-m", "comment", "--comment",
        "xgw:xapi1:forward-dnat:tcp:8080=%s:80" % VM, "-j", "ACCEPT"),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_drift_of_forwards_is_repaired(topo, forwarded, drift):
    def foreign():
        return [l for t in ("nat", "filter") for l in topo.dom0.rules(t) if "XGW" not in l]
    firewall = foreign()
    writes = forwarded.status()["writes"]
    DRIFTS[drift](topo.dom0)
    # no "it is broken now" check: the 0.5 s periodic check may repair it before one
    # could look; the write count rising is what proves the drift happened and was fixed
    N.wait_for(lambda: forwarded.status()["writes"] > writes, timeout=5, message="a repair")
    N.wait_for(lambda: in_kernel(topo.dom0), timeout=5, message="repair of " + drift)
    assert foreign() == firewall  # Dom0's own rules untouched, in their order
    with tcp_server(topo.vm, VM, 80):
        assert tcp_connect(topo.outside, DOM0, 8080) == "peer=%s" % topo.OUTSIDE


def test_cleanup_removes_the_dnat_chains_too(topo, forwarded):
    assert forwarded.stop() == 0
    assert in_kernel(topo.dom0)  # SIGTERM leaves everything in place
    topo.dom0.run([sys.executable, "-m", "agent.daemon.main", "-c", forwarded.config_path,
                   "--cleanup"])
    assert "XGW" not in topo.dom0.save("nat") + topo.dom0.save("filter")
    assert "-A FORWARD -j RH-Firewall-1-INPUT" in topo.dom0.rules("filter")


# Every revision of the addrtype match (0, 1) and the DNAT target (0, 1, 2) must read back
# as the same view: python-iptables and iptables-restore pick the newest the userspace
# knows (DNAT 0 with Dom0's iptables 1.4.21, 2 here), and a view that differs from the
# wanted one would be rewritten every round. python-iptables cannot build an older
# revision, so the entries are built by hand (kernel UAPI layouts) and appended through
# libiptc; the kernel checks them on commit.
REVISIONS_SCRIPT = r'''
import ctypes, json, socket, struct
import iptc
from agent.adapters.iptables import Iptables
from agent.core import model, rules

def align(n):
    return (n + 7) & ~7

def part(name, revision, data):
    data = data.ljust(align(len(data)), b"\0")
    return struct.pack("=H29sB", 32 + len(data), name, revision) + data

def entry(dnat_revision, addrtype_revision, comment, to, port):
    ip = struct.pack("=4s4s4s4s16s16s16s16sHBB", b"", b"", b"", b"", b"", b"", b"", b"",
                     6, 0, 0)
    local = 1 << 2  # XT_ADDRTYPE_LOCAL
    matches = part(b"addrtype", addrtype_revision,
                   struct.pack("=HHII", 0, local, 0, 0) if addrtype_revision == 0
                   else struct.pack("=HHI", 0, local, 0))
    matches += part(b"tcp", 0, struct.pack("=HHHHBBBB", 0, 0xFFFF, 8080, 8080, 0, 0, 0, 0))
    matches += part(b"comment", 0, comment.encode().ljust(256, b"\0"))
    address, flags = socket.inet_aton(to), 3  # NF_NAT_RANGE_MAP_IPS | PROTO_SPECIFIED
    if dnat_revision == 0:
        data = struct.pack("=II4s4s", 1, flags, address, address)
    else:
        data = struct.pack("=I16s16s", flags, address, address)
    data += struct.pack("!HH", port, port) + (b"\0\0" if dnat_revision == 2 else b"")
    target = part(b"DNAT", dnat_revision, data)
    offset = 112 + len(matches)
    return ip + struct.pack("=IHHI", 0, offset, offset + len(target), 0) + b"\0" * 16 \
        + matches + target

gw = model.make_gateway("g", "xapi1", "172.16.1.1/24", forwards="tcp:8080=172.16.1.10:80")
spec = [s for s in rules.gateway_rules(gw) if s.chain == "XGW-PREROUTING"][0]
table = iptc.Table(iptc.Table.NAT)
table.autocommit = False
table.create_chain("XGW-PREROUTING")
combinations = [(0, 0), (0, 1), (1, 1), (2, 0), (2, 1)]
for dnat_revision, addrtype_revision in combinations:
    raw = entry(dnat_revision, addrtype_revision, spec.key, "172.16.1.10", 80)
    buf = ctypes.create_string_buffer(raw, len(raw))
    ok = table._iptc.iptc_append_entry(
        b"XGW-PREROUTING", ctypes.cast(buf, ctypes.POINTER(iptc.ip4tc.ipt_entry)),
        table._handle)
    assert ok == 1, table.strerror()
table.commit()
views = Iptables().observe("nat")["XGW-PREROUTING"]
print(json.dumps({"wanted": list(rules.match_of(spec)),
                  "views": [[v.key, v.target, list(v.match)] for v in views],
                  "count": len(combinations)}))
'''


def test_every_revision_of_a_dnat_rule_reads_back_as_wanted():
    import json
    ns = N.Netns("rev")
    try:
        out = ns.run([sys.executable, "-c", REVISIONS_SCRIPT], check=False)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert len(result["views"]) == result["count"] == 5
        for key, target, match in result["views"]:
            assert key == "xgw:xapi1:dnat:tcp:8080=172.16.1.10:80" and target == "DNAT"
            assert match == result["wanted"]
        assert result["wanted"] == [None, None, None, None, "tcp", 8080, "LOCAL",
                                    "172.16.1.10:80"]
    finally:
        ns.delete()
