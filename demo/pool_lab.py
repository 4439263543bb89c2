"""The multi-host lab (``demo/run --hosts 3``): examples/pool-lab.yaml on a simulated pool
of three XenServer hosts, one xapi-gateway daemon per host, shown end to end.

The XAPI simulator runs the pool (``--hosts 3``): each host is a network namespace
PREFIX-h<n> with its own Open vSwitch (a private ovsdb-server and ovs-vswitchd), the hosts'
eth0 joined by an underlay, the management network (namespace PREFIX-ul). The demo adds:

    PREFIX-out   the world outside, 198.51.100.100 on the management network, with a web
                 server; the hosts are 198.51.100.1, .2 and .3 there
    PREFIX-ctl   the Controller's NIC on 'private' (172.16.0.3), on host 2
    PREFIX-cmp   the Compute node's NIC on 'private' (172.16.0.4), on host 3

It applies the example with ``xgw`` (pxe, private and br100 span the pool: a VXLAN tunnel
of XAPI's on every host, the daemons' VXLAN ports in a star around the gateway host;
Fuel, Controller and Compute started on hosts 1, 2 and 3), then checks: the tunnels up on
every host and exactly one host serving private's gateway (host 1, pinned); Compute on
host 3 reaching the outside through host 1's NAT; Horizon on the Controller through the
forward; host 1 shut down through XAPI (host.disable, host.shutdown), the gateway moving
to another host and Compute's pings resuming, with the outage measured. Then it destroys
the lab, stops everything and removes what it made, also on Ctrl-C or a failure.
"""
from __future__ import print_function

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import lab as base
from agent.core import config, tunnels
from agent.xapisim import firewall, ovs
from agent.xapisim.netns import Netns, names, stop, wait_for

REPO, OUT, DemoFailed = base.REPO, base.OUT, base.DemoFailed
EXAMPLE = os.path.join(REPO, "examples", "pool-lab.yaml")
HOSTS = 3
UNDERLAY = "198.51.100.0/24"          # TEST-NET-2: the hosts' management network
OUTSIDE = "198.51.100.100"            # the world outside, on it
HEARTBEAT_PORT = config.XAPI_SCHEMA["heartbeat_port"].default   # the daemons' default
GATEWAY, CONTROLLER, COMPUTE = "172.16.0.1", "172.16.0.3", "172.16.0.4"
SPANNING = ("pxe", "private", "br100")
VM_HOSTS = (("Fuel", 1), ("Controller", 2), ("Compute", 3))
CHECKS = ("simulator", "daemons", "apply", "vms", "tunnels", "gateway", "ping", "tcp",
          "horizon", "failover", "destroy", "cleanup")


class Host(object):
    def __init__(self, number, name, ns, address, ovsdb):
        self.number, self.name, self.address = number, name, address
        self.ns = Netns(ns)
        self.ovs = ovs.Ovs(ovsdb, ns)
        self.ovsdb = ovsdb
        self.daemon = self.agent = None   # its process, its demo.lab.Agent
        self.ref = self.uuid = None

    def __str__(self):
        return "host %d (%s)" % (self.number, self.name)


class PoolLab(base.Stage):
    def __init__(self, args):
        self.args = args
        self.python = sys.executable
        self.prefix = args.prefix
        self.out = Netns(self.prefix + "-out")
        self.ctl = Netns(self.prefix + "-ctl")
        self.cmp = Netns(self.prefix + "-cmp")
        self.namespaces = [self.out, self.ctl, self.cmp]
        self.work = "/tmp/%s-%d" % (self.prefix, os.getpid())   # no '_': XenAPI's URLs
        self.sim = None
        self.hosts = []
        self.servers = []
        self.pinger = None
        self.checks = base.Checks()
        self.env = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1")

    # -- helpers
    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def host(self, n):
        return self.hosts[n - 1]

    def api(self):
        import XenAPI
        session = XenAPI.Session("http://%s/" % self.path("xapi").replace("/", "_"),
                                 transport=XenAPI.UDSTransport())
        session.xenapi.login_with_password("root", "", "1.0", "xgw-demo")
        return session.xenapi

    def xgw(self, n, *argv, **kw):
        """xgw in host n's Dom0, against that host's daemon."""
        quiet = kw.pop("quiet", False)
        host = self.host(n)
        if not quiet:
            OUT.cmd("xgw " + " ".join(a if a != EXAMPLE else "examples/pool-lab.yaml"
                                      for a in argv) + "   # on %s" % host)
        proc = host.ns.run([self.python, "-m", "agent.cli", "-c",
                            self.path("h%d" % n, "agent.conf")] + list(argv), check=False,
                           timeout=180, env=self.env)
        if not quiet:
            OUT.show(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise DemoFailed("xgw %s on %s exited with %d: %s%s" % (
                " ".join(argv), host, proc.returncode, proc.stdout, proc.stderr))
        return proc.stdout

    def xgw_json(self, n, *argv):
        return json.loads(self.xgw(n, *(argv[:1] + ("--json",) + argv[1:]), quiet=True)
                          or "null")

    def status(self, host):
        try:
            with open(self.path("h%d" % host.number, "run", "status.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def live(self):
        return [h for h in self.hosts if h.daemon is not None and h.daemon.poll() is None]

    def daemon_log(self, host):
        return host.agent.log() if host.agent is not None else ""

    def daemon_tail(self):
        for host in self.hosts:
            if host.daemon is not None:
                print("\n  --- the daemon's log on %s (last 15 lines) ---" % host)
                OUT.show("\n".join(self.daemon_log(host).splitlines()[-15:]) or "(empty)")

    def ping(self, ns, address, count=3):
        proc = ns.run(["ping", "-c", str(count), "-i", "0.2", "-W", "2", address],
                      check=False)
        received = re.search(r"(\d+) received", proc.stdout)
        return proc.returncode == 0, received.group(1) if received else "0"

    def carriers(self, bridge):
        """The hosts (alive) whose bridge carries the gateway address."""
        return [h for h in self.live() if GATEWAY + "/" in h.ns.run(
            ["ip", "-4", "-br", "addr", "show", "dev", bridge], check=False).stdout]

    def served_by(self):
        """The host every live daemon's status says serves private's gateway, or None."""
        named = set()
        for host in self.live():
            gws = [g for g in self.status(host).get("gateways", []) if g.get("name") ==
                   "private"]
            named.add(gws[0].get("host") if gws else None)
        if len(named) != 1:
            return None
        uuid = named.pop()
        return next((h for h in self.hosts if h.uuid == uuid), None)

    def tunnel_ports(self, host, bridge):
        """{port: remote_ip} of the daemon's VXLAN ports on ``bridge`` of ``host``."""
        ports = {}
        try:
            for port in host.ovs.list_ports(bridge):
                if host.ovs.external_ids_of("Port", port).get(
                        "xapi-gateway-kind") == tunnels.KIND:
                    options = host.ovs.get("Interface", port, "options")
                    ports[port] = options.split('remote_ip="')[1].split('"')[0]
        except ovs.OvsError:
            return None
        return ports

    def center(self, name, hosts):
        """The host every daemon of ``hosts`` names as the center of network ``name``'s
        star (its status), or None while they differ."""
        uuid = self.nets[name]["uuid"]
        named = set()
        for host in hosts:
            entry = [t for t in self.status(host).get("tunnels", [])
                     if t.get("network") == uuid]
            named.add(entry[0].get("center") if entry else None)
        return next((h for h in hosts if {h.uuid} == named), None)

    def star(self, hosts):
        """{network: (center, {host number: ports})} when every host of ``hosts`` has the
        star its daemon computes on every spanning network (the center: a port to each
        other host; the others one port, to the center), else None."""
        shape = {}
        for name in SPANNING:
            center = self.center(name, hosts)
            if center is None:
                return None
            counts = {}
            for host in hosts:
                ports = self.tunnel_ports(host, self.nets[name]["bridge"])
                if ports is None:
                    return None
                wanted = sorted(h.address for h in hosts if h is not host) \
                    if host is center else [center.address]
                if sorted(ports.values()) != wanted:
                    return None
                counts[host.number] = len(ports)
            shape[name] = (center, counts)
        return shape

    def shape_text(self, shape):
        return "; ".join("%s: center h%d, %s" % (
            name, center.number, " ".join("h%d:%d" % kv for kv in sorted(counts.items())))
            for name, (center, counts) in sorted(shape.items()))

    def nic(self, host, ns, port, address):
        """Namespace ``ns`` as a VM's NIC on 'private' of ``host``: a veth whose Dom0 end
        ``port`` is an OVS port of private's bridge there (beside the simulator's vif
        port, as a guest's emulated NIC is), MTU 1450 as the network's."""
        host.ovs.plug_veth(self.nets["private"]["bridge"], port, ns.name, "eth1",
                           mtu=tunnels.MTU)
        ns.run(["ip", "addr", "add", address + "/24", "dev", "eth1"])
        ns.run(["ip", "route", "add", "default", "via", GATEWAY])

    # -- the steps
    def prepare(self):
        ours = [ns.name for ns in self.namespaces] + ["%s-h%d" % (self.prefix, n) for n in
                                                      range(1, HOSTS + 1)] + [
            self.prefix + "-ul"]
        for name in names():
            if name in ours:
                OUT.note("removing %s, left over by an interrupted demo" % name)
                Netns(name).delete()
        for name in os.listdir("/tmp"):
            match = re.match(r"^%s-(\d+)$" % re.escape(self.prefix), name)
            if match and not os.path.exists("/proc/%s" % match.group(1)):
                shutil.rmtree(os.path.join("/tmp", name), ignore_errors=True)
        os.makedirs(self.work)
        for ns in self.namespaces:
            ns.create()
        OUT.note("namespaces %s (the outside world), %s and %s (the Controller's and "
                 "Compute's NICs)" % (self.out.name, self.ctl.name, self.cmp.name))

    def start_simulator(self):
        argv = ["--unix", self.path("xapi"), "--bridges", "--hosts", str(HOSTS),
                "--netns-prefix", self.prefix, "--underlay", UNDERLAY,
                "--network-backend", base.OPENVSWITCH]
        OUT.cmd("python -m agent.xapisim " + " ".join(argv))
        log = open(self.path("xapisim.log"), "w")
        self.sim = subprocess.Popen([self.python, "-m", "agent.xapisim"] + argv,
                                    stdout=subprocess.PIPE, stderr=log,
                                    universal_newlines=True, env=self.env, cwd=REPO)
        log.close()
        line = self.sim.stdout.readline()
        OUT.show(line)
        if not line.startswith("xapisim: serving"):
            with open(self.path("xapisim.log")) as f:
                raise DemoFailed("the simulator did not start: %s%s" % (line, f.read()))
        for n in range(1, HOSTS + 1):
            line = self.sim.stdout.readline()
            OUT.show(line)
            # xapisim: host N NAME netns NS address IP ovsdb REMOTE
            fields = line.split()
            self.hosts.append(Host(n, fields[3], fields[5], fields[7], fields[9]))
        line = self.sim.stdout.readline()   # xapisim: underlay netns NS address IP
        OUT.show(line)
        self.wire = Netns(line.split()[3])
        threading.Thread(target=self.sim.stdout.read, daemon=True).start()
        api = self.api()
        for host in self.hosts:
            [host.ref] = api.host.get_by_name_label(host.name)
            host.uuid = api.host.get_uuid(host.ref)
            # the rest of a Dom0 that matters: its stock firewall, forwarding off
            host.ns.run(["iptables-legacy-restore"], input=firewall.DOM0_FIREWALL)
            host.ns.run(["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"])
            # what the README asks of a pool's admin: the daemons' heartbeats let in
            host.ns.run(["iptables-legacy", "-I", "RH-Firewall-1-INPUT", "-p", "udp", "-s",
                         UNDERLAY, "--dport", str(HEARTBEAT_PORT), "-j", "ACCEPT"])
        # the pool secret every member has (/etc/xensource/ptoken): the heartbeats' key
        with open(self.path("ptoken"), "w") as f:
            f.write("the-demo-pool-secret\n")
        os.chmod(self.path("ptoken"), 0o600)
        # the outside world: a machine on the management network
        self.wire.run(["ip", "link", "add", "out", "type", "veth", "peer", "name", "eth0",
                       "netns", self.out.name])
        self.wire.run(["ip", "link", "set", "out", "master", "ul0", "up"])
        self.out.run(["ip", "addr", "add", OUTSIDE + "/24", "dev", "eth0"])
        self.out.run(["ip", "link", "set", "eth0", "up"])
        # its TCP reaches the hosts' userspace datapath: no checksums left to offload
        self.out.run(["ethtool", "-K", "eth0", "tx", "off"], check=False)
        master = api.pool.get_master(api.pool.get_all()[0])
        self.checks.record("simulator", True, "a pool of %d hosts (%s; master %s), each "
                           "with its own Open vSwitch, on the wire %s; outside %s"
                           % (HOSTS, ", ".join("%s %s" % (h.name, h.address)
                                               for h in self.hosts),
                              api.host.get_name_label(master), UNDERLAY, OUTSIDE))

    def start_daemons(self):
        for host in self.hosts:
            directory = self.path("h%d" % host.number)
            os.makedirs(directory)
            OUT.note("on %s, in namespace %s:" % (host, host.ns.name))
            host.agent = base.Agent(host.ns, directory, base.OPENVSWITCH, host.ovsdb,
                                    self.path("xapi"), self.python, self.env,
                                    host=host.name, pool_secret=self.path("ptoken"))
            host.daemon = host.agent.start()
        wait_for(lambda: all([h.agent.ready() for h in self.hosts]), timeout=90,
                 interval=0.1, message="every daemon's READY=1")
        wait_for(lambda: all(self.hears(h) for h in self.hosts), timeout=30,
                 interval=0.1, message="every daemon hearing the others' heartbeats")
        self.checks.record("daemons", True, "xapi-gateway-agent ready on each of the %d "
                           "hosts, in its namespace, on the pool's XAPI; each hears the "
                           "others' heartbeats (UDP %d)" % (HOSTS, HEARTBEAT_PORT))

    def hears(self, host):
        """Whether host's daemon hears every other host's heartbeats (its status)."""
        beat = (self.status(host).get("pool") or {}).get("heartbeat") or {}
        peers = beat.get("peers") or {}
        return all(peers.get(h.uuid, {}).get("reachable") and
                   peers[h.uuid].get("silent") is not None
                   for h in self.hosts if h is not host)

    def apply(self):
        self.xgw(1, "plan", EXAMPLE)
        self.xgw(1, "apply", EXAMPLE)
        again = json.loads(self.xgw(1, "plan", "--json", EXAMPLE, quiet=True))
        changes = [a for a in again.get("actions", []) if a.get("kind") != "noop"]
        nets = {n["name"]: n for n in self.xgw_json(1, "networks")}
        self.nets = {name: nets[name] for name in SPANNING}
        mine = [n for n in nets.values() if n.get("topology") == "pool-lab"]
        self.checks.record("apply", not changes and again.get("changes") is False,
                           "pool-lab applied: %d networks spanning the pool, %d VMs; a "
                           "second plan shows no change" % (
                               len(mine), len([v for v in self.xgw_json(1, "vms")
                                                if v.get("topology") == "pool-lab"])))

    def vms(self):
        api = self.api()
        where = {}
        for name, _n in VM_HOSTS:
            [vm] = api.VM.get_by_name_label(name)
            resident = api.VM.get_resident_on(vm)
            where[name] = next((h for h in self.hosts if h.ref == resident), None)
            OUT.note("%s: %s on %s" % (name, api.VM.get_power_state(vm),
                                       where[name] or "no host"))
        ok = all(where[name] is self.host(n) for name, n in VM_HOSTS)
        self.checks.record("vms", ok, ", ".join("%s on %s" % (name, where[name])
                                                for name, _n in VM_HOSTS))

    def tunnels(self):
        OUT.note("every host's daemon makes its own VXLAN ports (the networks' VNIs from "
                 "other_config), a star around the gateway host (private's: host 1):")
        shape = wait_for(lambda: self.star(self.hosts), timeout=60, interval=0.2,
                         message="the star of VXLAN ports on every host")
        for host in self.hosts:
            OUT.cmd("ovs-vsctl show   # in %s: the daemon's ports" % host.ns.name)
            OUT.show("\n".join(base.ovs_show_ours(host.ovs.vsctl("show"))))
        self.xgw(1, "networks")
        self.checks.record("tunnels", shape["private"][0] is self.host(1),
                           "VXLAN ports per host, " + self.shape_text(shape))

    def gateway(self):
        bridge = self.nets["private"]["bridge"]
        wait_for(lambda: self.served_by() is self.host(1) and
                 self.carriers(bridge) == [self.host(1)], timeout=60, interval=0.1,
                 message="private's gateway on host 1 only")
        self.xgw(2, "gateways")
        states = {}
        for host in self.hosts:
            gws = [g for g in self.status(host).get("gateways", [])
                   if g.get("name") == "private"]
            states[host.number] = gws[0].get("state") if gws else None
            OUT.cmd("ip -4 -br addr show dev %s   # in %s" % (bridge, host.ns.name))
            OUT.show(host.ns.run(["ip", "-4", "-br", "addr", "show", "dev", bridge]).stdout)
        nat = host_nat(self.host(1))
        ok = states == {1: "applied", 2: "elsewhere", 3: "elsewhere"} and nat
        self.checks.record("gateway", ok, "private's %s/24 on host 1's %s only (states %s), "
                           "NAT and the forward there" % (
                               GATEWAY, bridge, ", ".join("h%d %s" % kv for kv in
                                                          sorted(states.items()))))

    def plug(self):
        api = self.api()
        for name, ns, address, n in (("Controller", self.ctl, CONTROLLER, 2),
                                     ("Compute", self.cmp, COMPUTE, 3)):
            [vm] = api.VM.get_by_name_label(name)
            port = "tap%s.1" % api.VM.get_domid(vm)
            OUT.note("%s's NIC on 'private' (device 1) becomes namespace %s, %s, on host "
                     "%d (port %s), default route via %s" % (name, ns.name, address, n,
                                                             port, GATEWAY))
            self.nic(self.host(n), ns, port, address)

    def traffic(self):
        OUT.cmd("ping -c 3 %s   # from Compute, on host 3" % OUTSIDE)
        ok, received = self.ping(self.cmp, OUTSIDE)
        self.checks.record("ping", ok, "Compute %s on host 3 -> %s (outside): %s of 3 "
                           "replies" % (COMPUTE, OUTSIDE, received))
        self.server(self.out, "whoami", OUTSIDE, 80)
        OUT.cmd("curl http://%s/   # from Compute; the server says who it sees" % OUTSIDE)
        seen = self.fetch(self.cmp, "http://%s/" % OUTSIDE).stdout
        OUT.show(seen)
        one = self.host(1)
        self.checks.record("tcp", seen.strip() == "you are %s" % one.address,
                           "Compute on host 3 -> outside through host 1's NAT: the outside "
                           "saw %s" % seen.strip().replace("you are ", ""))
        www = self.path("horizon")
        os.makedirs(www)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write(base.HORIZON_PAGE)
        self.server(self.ctl, "horizon", CONTROLLER, 80, www)
        page = self.horizon(one)
        self.checks.record("horizon", page == base.HORIZON_PAGE,
                           "outside -> host 1 %s:%d -> Controller %s:80 on host 2 answered "
                           "%r" % (one.address, base.HORIZON_PORT, CONTROLLER, page.strip()))

    def horizon(self, host):
        url = "http://%s:%d/" % (host.address, base.HORIZON_PORT)
        OUT.cmd("curl %s   # from outside: %s's port %d" % (url, host, base.HORIZON_PORT))
        page = self.fetch(self.out, url).stdout
        OUT.show(page)
        return page

    def failover(self):
        api = self.api()
        one, bridge = self.host(1), self.nets["private"]["bridge"]
        log = self.path("ping.log")
        OUT.cmd("ping -D -i 0.1 %s   # from Compute, all along" % OUTSIDE)
        with open(log, "w") as f:   # a line at a time, not a block at the end
            self.pinger = self.cmp.popen(["stdbuf", "-oL", "ping", "-D", "-n", "-i", "0.1",
                                          "-W", "1", OUTSIDE], stdout=f,
                                         stderr=subprocess.STDOUT)
        wait_for(lambda: replies(log), timeout=10, interval=0.1, message="the first reply")
        OUT.note("host 1 runs Fuel: XAPI shuts down only a host without running guests "
                 "(the simulator has no migration), so Fuel goes first")
        self.xgw(2, "vms", "shutdown", "Fuel", "--force")
        OUT.cmd("xe host-disable host=%s; xe host-shutdown host=%s   # through XAPI"
                % (one.name, one.name))
        started = time.time()
        api.host.disable(one.ref)
        api.host.shutdown(one.ref)
        stop(one.daemon)   # its daemon goes with the host, as on a real one
        left = self.hosts[1:]
        server = wait_for(lambda: self.served_by() not in (None, one) and self.served_by(),
                          timeout=60, interval=0.05, message="a new gateway host")
        moved = time.time() - started
        wait_for(lambda: self.carriers(bridge) == [server], timeout=30, interval=0.05,
                 message="the address on %s only" % server)
        wait_for(lambda: [t for t in replies(log) if t > started + moved], timeout=60,
                 interval=0.05, message="pings from Compute resuming")
        time.sleep(1)
        self.pinger.send_signal(signal.SIGINT)
        stop(self.pinger)
        times = replies(log)
        # the longest silence since host.disable: from the last reply before it to the
        # first one after
        back, last = max(((b, a) for a, b in zip(times, times[1:]) if b > started),
                         key=lambda pair: pair[0] - pair[1])
        outage, resumed = back - last, back - started
        OUT.note("Compute's pings around the outage (times after host.disable):")
        with open(log) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("[")]
        for line in lines:
            stamp = float(line[1:line.index("]")])
            if last - 0.25 <= stamp <= back + 0.25:
                OUT.show("%+.2f s  %s" % (stamp - started, line[line.index("]") + 2:]))
        OUT.note("the log of the daemon on %s, the new gateway host:" % server)
        OUT.show("\n".join([l for l in self.daemon_log(server).splitlines()
                            if bridge in l or "private" in l][-6:]) or "(nothing)")
        self.xgw(server.number, "gateways")
        shape = wait_for(lambda: self.star(left), timeout=60, interval=0.2,
                         message="the stars re-shaped over the hosts left")
        seen = self.fetch(self.cmp, "http://%s/" % OUTSIDE).stdout.strip()
        page = self.horizon(server)
        ok = (seen == "you are %s" % server.address and page == base.HORIZON_PAGE
              and shape["private"][0] is server)
        self.checks.record("failover", ok, "host 1 shut down; the gateway on %s after "
                           "%.1f s; Compute's pings resumed %.1f s after host.disable "
                           "(outage %.1f s); the outside now sees %s; Horizon through %s; "
                           "re-shaped: %s" % (
                               server, moved, resumed, outage,
                               seen.replace("you are ", ""), server.address,
                               self.shape_text(shape)))

    def look_around(self):
        host = self.host(2)
        print("""
  The pool lab is up. In another shell, as root, you can look around:
    ip netns exec {h} {py} -m agent.cli -c {w}/h2/agent.conf gateways
    ip netns exec {h} {py} -m agent.cli -c {w}/h2/agent.conf networks
    ip netns exec {c} ping {o}
    less {w}/h1/agent.log
  (from {repo}, where the demo runs)""".format(h=host.ns.name, c=self.cmp.name, o=OUTSIDE,
                                              w=self.work, py=self.python, repo=REPO))
        try:
            input("\n  Press Enter to shut host 1 down, and then destroy the lab. ")
        except EOFError:
            pass

    def destroy(self):
        n = self.live()[0].number
        self.xgw(n, "destroy", EXAMPLE)
        left = [v for v in self.xgw_json(n, "vms") if v.get("topology") == "pool-lab"] + \
            [v for v in self.xgw_json(n, "networks") if v.get("topology") == "pool-lab"]

        def leftovers():
            """What the daemons of the hosts that are up still have: their OVS ports
            (tunnels and others), rules of their chains."""
            found = []
            for host in self.live():
                for bridge in host.ovs.list_bridges():
                    found.extend("%s: port %s" % (host, p) for p in
                                 host.ovs.list_ports(bridge)
                                 if host.ovs.external_ids_of("Port", p).get(
                                     "xapi-gateway-kind"))
                for table in ("nat", "filter"):
                    found.extend("%s: %s" % (host, l) for l in host.ns.run(
                        ["iptables-legacy-save", "-t", table]).stdout.splitlines()
                        if l.startswith("-A") and "xgw:" in l)
            return found
        try:
            wait_for(lambda: not leftovers(), timeout=30, interval=0.2,
                     message="the daemons' ports and rules gone")
        except AssertionError:
            left += leftovers()
        self.checks.record("destroy", not left, "VMs and networks removed; no port or rule "
                           "of the daemons' left on the hosts that are up" if not left else
                           "left: %s" % "; ".join(str(l) for l in left))

    def close(self):
        """Stops everything, removes the namespaces and directories; returns what is
        left over (nothing, normally)."""
        for proc in self.servers + [self.pinger] + [h.daemon for h in self.hosts]:
            if proc is not None:
                stop(proc)
        if self.sim is not None:   # it removes the hosts, their OVS and the underlay
            stop(self.sim, timeout=30)
        for ns in self.namespaces:
            ns.delete()
        left = [n for n in names() if n.startswith(self.prefix + "-")]
        for name in left:
            Netns(name).delete()
        dirs = [os.path.dirname(h.ovsdb[len("unix:"):]) for h in self.hosts
                if h.ovsdb.startswith("unix:")]
        kept = [d for d in dirs if os.path.exists(d)]
        for directory in kept:
            shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        return left + kept + ([self.work] if os.path.exists(self.work) else [])


def host_nat(host):
    rules = host.ns.run(["iptables-legacy-save", "-t", "nat"]).stdout
    return "-j MASQUERADE" in rules and "dnat:tcp:%d=%s:80" % (
        base.HORIZON_PORT, CONTROLLER) in rules


def replies(log):
    """The times (Unix time) of the replies ping -D logged."""
    try:
        with open(log) as f:
            return [float(m.group(1)) for m in re.finditer(
                r"^\[(\d+\.\d+)\] \d+ bytes from", f.read(), re.M)]
    except OSError:
        return []


def main(args, interactive):
    lab = PoolLab(args)
    steps = [
        ("Set up the stand-ins: the outside world and two VM NICs", lab.prepare),
        ("Start the XAPI simulator as a pool of %d hosts, on Open vSwitch" % HOSTS,
         lab.start_simulator),
        ("Start xapi-gateway-agent on every host, for real", lab.start_daemons),
        ("Apply the pool lab: xgw apply examples/pool-lab.yaml", lab.apply),
        ("The VMs on their hosts", lab.vms),
        ("The spanning networks' tunnels: a star of VXLAN ports", lab.tunnels),
        ("One gateway host for private", lab.gateway),
        ("Plug the Controller's and Compute's NICs into 'private'", lab.plug),
        ("Real packets: Compute on host 3 out through host 1's NAT, Horizon", lab.traffic),
        ("Failover: host 1 shut down through XAPI", lab.failover),
        ("Destroy the lab: xgw destroy examples/pool-lab.yaml", lab.destroy),
    ]
    return base.run_steps(lab, steps, CHECKS, lab.traffic, interactive)
