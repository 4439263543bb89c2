"""The xapi-gateway demo: the blog's OpenStack lab on a simulated XenServer host.

Run by ``demo/run`` (which first installs what is missing) as root on any Linux machine.
Three network namespaces stand in for the world:

    PREFIX-dom0  the XenServer host: Open vSwitch (a private ovsdb-server and ovs-vswitchd,
                 userspace datapath) as on XenServer 8 / XCP-ng 8.3, or Linux bridges with
                 --network-backend bridge; the XAPI simulator (with lazy xapi<N> bridges),
                 Dom0's stock firewall, and xapi-gateway-agent running for real
    PREFIX-ctl   the "Controller" VM's NIC on the 'private' network (172.16.0.3)
    PREFIX-out   the world outside the host, 198.51.100.2 (TEST-NET-2), with a web server
    PREFIX-inst, PREFIX-v102  (Open vSwitch) an instance's NIC on 'br100', and a port of
                 'private' on VLAN 102

The demo applies examples/blog-lab.yaml with ``xgw``, starts the VMs, shows the gateway the
daemon made, then proves it with real packets: a ping and a TCP connection from the VM
out through NAT, and Horizon in the VM reached from outside through the host's port 8080.
On Open vSwitch it then shows br100 as VLAN 102 of 'private' (the example declares it): the
daemon joined the two bridges with a patch-port pair, and an instance with its one NIC on
br100 reaches a port of 'private' on VLAN 102. It then destroys the lab, stops everything, removes the
namespaces and prints a summary, one line per check (exit status 0 when every check
passed).

With ``--hosts 3`` it runs the multi-host lab instead (demo/pool_lab.py): examples/
pool-lab.yaml on a simulated pool of three hosts, one daemon per host.

Nothing outside these namespaces and a directory in /tmp is touched; no traffic leaves
them.
"""
from __future__ import print_function

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from agent.xapisim import firewall  # noqa: E402  (after the path above)
from agent.xapisim import ovs  # noqa: E402
from agent.xapisim.netns import Netns, stop, wait_for  # noqa: E402

EXAMPLE = os.path.join(REPO, "examples", "blog-lab.yaml")
DOM0_UPLINK, OUTSIDE = "198.51.100.1", "198.51.100.2"   # TEST-NET-2, between our namespaces
CONTROLLER, GATEWAY = "172.16.0.3", "172.16.0.1"       # as in examples/blog-lab.yaml
HORIZON_PORT = 8080
HORIZON_PAGE = "OpenStack Dashboard (Horizon) on the Controller\n"
VMS = ("Fuel", "Controller", "Compute")
# The VLAN link (Open vSwitch): br100 carried as VLAN 102 of 'private'
LINK_TAG = 102
INSTANCE, TAGGED = "10.0.102.10", "10.0.102.20"   # on br100, and on private's VLAN 102
OPENVSWITCH, BRIDGE = "openvswitch", "bridge"


def checks_of(backend):
    """What the summary reports, in order: one line each, PASS or FAIL (or not reached)."""
    return (("simulator", "daemon", "apply", "vms", "gateway", "ping", "tcp", "horizon")
            + (("link",) if backend == OPENVSWITCH else ()) + ("destroy", "cleanup"))


# ---------------------------------------------------------------- output
class Out(object):
    def __init__(self):
        self.color = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None

    def _c(self, code, text):
        return "\033[%sm%s\033[0m" % (code, text) if self.color else text

    def step(self, n, total, text):
        print("\n" + self._c("1", "[%d/%d] %s" % (n, total, text)), flush=True)

    def cmd(self, text):
        print("  " + self._c("36", "$ " + text), flush=True)

    def show(self, text):
        for line in text.rstrip("\n").splitlines():
            print("    " + line)
        sys.stdout.flush()

    def note(self, text):
        print("  " + text, flush=True)

    def ok(self, text):
        return self._c("32", text)

    def bad(self, text):
        return self._c("31", text)


OUT = Out()


# ---------------------------------------------------------------- the checks
class Checks(object):
    """What the summary reports: each check passed or failed with what was seen."""

    def __init__(self):
        self.results = []   # (name, passed, detail)

    def record(self, name, passed, detail):
        self.results.append((name, bool(passed), detail))
        mark = OUT.ok("ok  ") if passed else OUT.bad("FAIL")
        OUT.note("%s %s: %s" % (mark, name, detail))
        if not passed:
            raise DemoFailed("%s: %s" % (name, detail))

    def passed(self):
        return sum(1 for _n, p, _d in self.results if p)


class DemoFailed(Exception):
    pass


# ---------------------------------------------------------------- small servers
# Run with `python demo/lab.py _serve ...` inside a namespace.
def serve(kind, address, port, directory=None):
    """'whoami': answers each HTTP request with the client address it sees;
    'horizon': serves ``directory`` (the Controller's dashboard)."""
    from http.server import HTTPServer, SimpleHTTPRequestHandler, BaseHTTPRequestHandler
    if kind == "whoami":
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = ("you are %s\n" % self.client_address[0]).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass
    else:
        os.chdir(directory)

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass
    server = HTTPServer((address, int(port)), Handler)
    print("serving", flush=True)
    server.serve_forever()


def fetch(url):
    """What `python demo/lab.py _fetch URL` prints: the body, or the error."""
    try:
        from urllib.request import urlopen
        print(urlopen(url, timeout=3).read().decode(), end="")
        return 0
    except Exception as exc:  # shown to the person running the demo
        print("error: %s" % exc)
        return 1


def ovs_show_ours(text):
    """The lines of ``ovs-vsctl show`` for the bridges and the daemon's ports (xgw...)."""
    lines, keep = [], False
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["Bridge"]:
            lines.append(line)
            keep = False
        elif words[:1] == ["Port"]:
            keep = words[1].startswith("xgw")
            if keep:
                lines.append(line)
        elif keep and line.startswith("            "):
            lines.append(line)
    return lines


# ---------------------------------------------------------------- the daemon
class Agent(object):
    """xapi-gateway-agent in namespace ``ns`` as on a host, except the paths: its files
    in ``directory`` (network.conf saying ``backend``, agent.conf, agent.log), OVSDB at
    ``ovsdb``, XAPI on the Unix socket ``xapi``; ``host``: its name in a pool,
    ``pool_secret``: the pool secret's file (the heartbeats' key)."""

    def __init__(self, ns, directory, backend, ovsdb, xapi, python, env, host=None,
                 pool_secret=None):
        self.ns, self.directory, self.python, self.env = ns, directory, python, env
        self.proc = None
        self.notify = []
        # what /etc/xensource/network.conf says on this 'Dom0'
        with open(os.path.join(directory, "network.conf"), "w") as f:
            f.write(backend + "\n")
        with open(self.path("agent.conf"), "w") as f:
            f.write("""# xapi-gateway-agent for the demo: as on a host, except the paths
[agent]
check_interval = 2
state_dir = {w}/state
runtime_dir = {w}/run
xtables_lock = {w}/xtables.lock
# the raw kernel uevents of this namespace (a host's udevd does not see them here)
udev = kernel
network_conf = {w}/network.conf
ovsdb = {ovsdb}

[xapi]
url = unix:{xapi}
{host}
[api]
socket = {w}/api.sock
""".format(w=directory, ovsdb=ovsdb, xapi=xapi,
           host="".join("%s = %s\n" % (key, value) for key, value in
                        (("host", host), ("pool_secret", pool_secret)) if value)))

    def path(self, name):
        return os.path.join(self.directory, name)

    def start(self):
        """Starts it (sd_notify to a socket of ours); returns its process."""
        notify_path = self.path("notify.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        listener.bind(notify_path)
        listener.settimeout(0.5)

        def read_notify():
            while True:
                try:
                    self.notify.append(listener.recv(4096).decode())
                except socket.timeout:
                    if self.proc is not None and self.proc.poll() is not None:
                        return
                except OSError:
                    return
        threading.Thread(target=read_notify, daemon=True).start()
        OUT.cmd("xapi-gateway-agent -c %s" % self.path("agent.conf"))
        log = open(self.path("agent.log"), "w")
        self.proc = self.ns.popen(
            [self.python, "-m", "agent.daemon.main", "-c", self.path("agent.conf")],
            stdout=log, stderr=log, env=dict(self.env, NOTIFY_SOCKET=notify_path))
        log.close()
        return self.proc

    def ready(self):
        """Whether it said READY=1; DemoFailed when it exited."""
        if self.proc.poll() is not None:
            raise DemoFailed("the daemon in %s exited with %s:\n%s"
                             % (self.ns.name, self.proc.returncode, self.log()))
        return any("READY=1" in m.split("\n") for m in self.notify)

    def status(self):
        """Its last sd_notify STATUS=."""
        status = [line[7:] for m in self.notify for line in m.split("\n")
                  if line.startswith("STATUS=")]
        return status[-1] if status else "?"

    def log(self):
        try:
            with open(self.path("agent.log")) as f:
                return f.read()
        except OSError:
            return ""


# ---------------------------------------------------------------- the lab
class Stage(object):
    """What a lab runs in its namespaces beside the daemons: small servers and fetches
    (``python`` and ``env`` run them; ``servers`` are stopped by the lab's close)."""

    def server(self, ns, kind, address, port, directory=""):
        proc = ns.popen([self.python, os.path.abspath(__file__), "_serve", kind, address,
                         str(port), directory], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, universal_newlines=True, env=self.env)
        self.servers.append(proc)
        line = proc.stdout.readline()
        if not line.startswith("serving"):
            raise DemoFailed("the %s server did not start: %s%s"
                             % (kind, line, proc.stdout.read()))
        return proc

    def fetch(self, ns, url):
        return ns.run([self.python, os.path.abspath(__file__), "_fetch", url], check=False,
                      env=self.env, timeout=30)


class Lab(Stage):
    def __init__(self, args):
        self.args = args
        self.python = sys.executable
        self.dom0 = Netns(args.prefix + "-dom0")
        self.ctl = Netns(args.prefix + "-ctl")
        self.out = Netns(args.prefix + "-out")
        self.namespaces = [self.dom0, self.ctl, self.out]
        self.backend = args.network_backend
        self.switch = None   # the private Open vSwitch of 'Dom0'
        if self.backend == OPENVSWITCH:
            self.inst = Netns(args.prefix + "-inst")
            self.v102 = Netns(args.prefix + "-v102")
            self.namespaces += [self.inst, self.v102]
        # no '_' in the path: XenAPI's Unix-socket URLs
        self.work = "/tmp/%s-%d" % (args.prefix, os.getpid())
        self.sim = self.daemon = self.agent = None
        self.servers = []
        self.checks = Checks()
        self.env = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1")

    # -- helpers
    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def xgw(self, *argv, **kw):
        """Runs xgw in Dom0 against the daemon's API socket; shows it like a shell."""
        quiet = kw.pop("quiet", False)
        brief = kw.pop("brief", False)
        if not quiet:
            OUT.cmd("xgw " + " ".join(a if a != EXAMPLE else "examples/blog-lab.yaml"
                                      for a in argv))
        proc = self.dom0.run([self.python, "-m", "agent.cli", "-c", self.path("agent.conf")]
                             + list(argv), check=False, timeout=180, env=self.env)
        if not quiet and not brief:
            OUT.show(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise DemoFailed("xgw %s exited with %d: %s%s" % (" ".join(argv), proc.returncode,
                                                               proc.stdout, proc.stderr))
        return proc.stdout

    def xgw_json(self, *argv):
        return json.loads(self.xgw(*(argv[:1] + ("--json",) + argv[1:]), quiet=True) or "null")

    def daemon_tail(self):
        if self.daemon is not None:
            print("\n  --- the daemon's log (last 30 lines) ---")
            OUT.show("\n".join(self.daemon_log().splitlines()[-30:]) or "(empty)")

    def daemon_log(self):
        return self.agent.log() if self.agent is not None else ""

    # -- the steps
    def prepare(self):
        stale = [ns for ns in self.namespaces if ns.exists()]
        for ns in stale:
            OUT.note("removing %s, left over by an interrupted demo" % ns.name)
            ns.delete()
        for name in os.listdir("/tmp"):
            match = re.match(r"^%s-(\d+)$" % re.escape(self.args.prefix), name)
            if match and not os.path.exists("/proc/%s" % match.group(1)):
                shutil.rmtree(os.path.join("/tmp", name), ignore_errors=True)
        os.makedirs(self.work)
        for ns in self.namespaces:
            ns.create()
        # Dom0's uplink to the outside world
        self.dom0.run(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                       "netns", self.out.name])
        self.dom0.run(["ip", "addr", "add", DOM0_UPLINK + "/24", "dev", "eth0"])
        self.dom0.run(["ip", "link", "set", "eth0", "up"])
        self.out.run(["ip", "addr", "add", OUTSIDE + "/24", "dev", "eth0"])
        self.out.run(["ip", "link", "set", "eth0", "up"])
        if self.backend == OPENVSWITCH:   # Dom0's switch, as XenServer 8 / XCP-ng 8.3 run it
            self.switch = ovs.Ovs.start(self.dom0.name)
            OUT.note("Open vSwitch in %s: a private ovsdb-server and ovs-vswitchd (userspace "
                     "datapath), OVSDB at %s" % (self.dom0.name, self.switch.remote))
        # Dom0's stock firewall: forwarded TCP meets REJECT unless the gateway accepts it
        self.dom0.run(["iptables-legacy-restore"], input=firewall.DOM0_FIREWALL)
        self.dom0.run(["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"])
        OUT.note("namespaces %s (the host), %s (a VM's NIC), %s (the outside, %s)"
                 % (self.dom0.name, self.ctl.name, self.out.name, OUTSIDE))
        OUT.note("Dom0's stock firewall loaded; forwarding off, as on a fresh host")

    def start_simulator(self):
        sock = self.path("xapi")
        network = ["--network-backend", self.backend] + (
            ["--ovsdb", self.switch.remote] if self.switch is not None else [])
        OUT.cmd("python -m agent.xapisim --unix %s --bridges %s" % (sock, " ".join(network)))
        self.sim = self.dom0.popen([self.python, "-m", "agent.xapisim", "--unix", sock,
                                    "--bridges"] + network,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, universal_newlines=True,
                                   env=self.env, cwd=REPO)
        line = self.sim.stdout.readline()
        OUT.show(line)
        self.checks.record("simulator", line.startswith("xapisim: serving"),
                           "XAPI simulator serving on %s in %s" % (sock, self.dom0.name))
        # drain its output so that it never blocks on a full pipe
        threading.Thread(target=self.sim.stdout.read, daemon=True).start()

    def start_daemon(self):
        agent = self.agent = Agent(
            self.dom0, self.work, self.backend, self.switch.remote
            if self.switch is not None else "unix:/var/run/openvswitch/db.sock",
            self.path("xapi"), self.python, self.env)
        self.daemon = agent.start()
        wait_for(agent.ready, timeout=60, interval=0.1, message="the daemon's READY=1")
        OUT.show("sd_notify: READY=1, STATUS=%s" % agent.status())
        self.checks.record("daemon", True, "xapi-gateway-agent ready (sd_notify READY=1), "
                           "following XAPI's events")

    def apply(self):
        self.xgw("plan", EXAMPLE)
        self.xgw("apply", EXAMPLE)
        again = json.loads(self.xgw("plan", "--json", EXAMPLE, quiet=True))
        changes = [a for a in again.get("actions", []) if a.get("kind") != "noop"]
        mine = lambda items: [i for i in items if i.get("topology") == "blog-lab"]  # noqa
        self.checks.record("apply", not changes and again.get("changes") is False,
                           "blog-lab applied: %d networks, %d VMs; a second plan shows no "
                           "change" % (len(mine(self.xgw_json("networks"))),
                                       len(mine(self.xgw_json("vms")))))

    def start_vms(self):
        OUT.note("Fuel started with the apply; the example leaves the nodes for after it:")
        for vm in ("Controller", "Compute"):
            self.xgw("vms", "start", vm, brief=True)
        self.xgw("vms")
        states = {v["name"]: v["power_state"] for v in self.xgw_json("vms")}
        compute = self.xgw_json("vms", "show", "Compute")
        himn = [n["device"] for n in compute["nics"] if n["himn"]]
        self.checks.record("vms", all(states.get(v) == "Running" for v in VMS) and himn,
                           ", ".join("%s %s" % (v, states.get(v)) for v in VMS)
                           + "; Compute has the HIMN on VIF %s" % (himn or ["none"])[0])

    def gateway(self):
        private = self.xgw_json("networks", "show", "private")
        self.bridge = bridge = private["bridge"]
        OUT.note("starting the VMs made XAPI create the networks' bridges; the daemon "
                 "saw %s appear:" % bridge)

        def applied():
            gws = self.xgw_json("gateways")
            return [g for g in gws if g["name"] == "private" and g["state"] == "applied"]
        wait_for(applied, timeout=30, interval=0.1, message="the private gateway applied")
        OUT.note("the daemon's log (%s):" % self.path("agent.log"))
        OUT.show("\n".join(l for l in self.daemon_log().splitlines()
                           if "agent.daemon" in l and bridge in l))
        self.xgw("gateways")
        OUT.cmd("ip -4 -br addr show dev %s   # in %s" % (bridge, self.dom0.name))
        addr = self.dom0.run(["ip", "-4", "-br", "addr", "show", "dev", bridge]).stdout
        OUT.show(addr)
        OUT.cmd("iptables-save   # the daemon's chains, in %s" % self.dom0.name)
        rules = []
        for table in ("nat", "filter"):
            rules.append("*" + table)
            rules.extend(l for l in self.dom0.run(["iptables-legacy-save", "-t", table])
                         .stdout.splitlines() if l.startswith("-A") and "XGW" in l
                         or l.startswith("-A FORWARD"))
        OUT.show("\n".join(rules))
        forward = self.dom0.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
        has = lambda text: any(text in r for r in rules)  # noqa: E731
        ok = (GATEWAY + "/24" in addr and has("-j MASQUERADE") and has("forward-out")
              and has("dnat:tcp:%d=%s:80" % (HORIZON_PORT, CONTROLLER)) and forward == "1")
        self.checks.record("gateway", ok, "private on %s: %s/24, NAT, FORWARD accepts, "
                           "forward tcp:%d -> %s:80, ip_forward=%s"
                           % (bridge, GATEWAY, HORIZON_PORT, CONTROLLER, forward))

    def nic(self, ns, bridge, port, dev, address, tag=None):
        """Namespace ``ns`` as a guest NIC ``dev`` with ``address`` on ``bridge``: a veth
        whose Dom0 end ``port`` is in the bridge (on Open vSwitch an OVS port, an access
        port of VLAN ``tag`` when given)."""
        if self.switch is not None:
            self.switch.plug_veth(bridge, port, ns.name, dev, tag=tag)
        else:
            self.dom0.bridge_veth(bridge, port, ns, dev)
        ns.run(["ip", "addr", "add", address, "dev", dev])

    def plug_controller(self):
        """The Controller's NIC on 'private' (its device 1), as a namespace in the bridge."""
        OUT.note("the Controller's NIC on 'private' becomes namespace %s, %s, default "
                 "route via the gateway %s" % (self.ctl.name, CONTROLLER, GATEWAY))
        # on OVS the simulator's own port for the VIF is vif<domid>.1: the guest's
        # emulated NIC (tap) goes beside it, as on a real host
        port = "tap1.1" if self.switch is not None else "vif1.1"
        self.nic(self.ctl, self.bridge, port, "eth1", CONTROLLER + "/24")
        self.ctl.run(["ip", "route", "add", "default", "via", GATEWAY])

    def traffic(self):
        OUT.cmd("ping -c 3 %s   # from the Controller" % OUTSIDE)
        ping = self.ctl.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", OUTSIDE], check=False)
        OUT.show(ping.stdout.strip().splitlines()[-2] if ping.stdout.strip() else ping.stderr)
        received = re.search(r"(\d+) received", ping.stdout)
        self.checks.record("ping", ping.returncode == 0,
                           "Controller %s -> %s: %s of 3 replies" % (
                               CONTROLLER, OUTSIDE, received.group(1) if received else 0))

        self.server(self.out, "whoami", OUTSIDE, 80)
        OUT.cmd("curl http://%s/   # from the Controller; the server says who it sees"
                % OUTSIDE)
        seen = self.fetch(self.ctl, "http://%s/" % OUTSIDE)
        OUT.show(seen.stdout + seen.stderr)
        tcp_ok = seen.stdout.strip() == "you are %s" % DOM0_UPLINK
        if not tcp_ok:   # what a reader needs to tell a firewall from a neighbour problem
            OUT.note("TCP failed; the packet counters and the Controller's neighbours:")
            for table in ("filter", "nat"):
                OUT.show(self.dom0.run(["iptables-legacy-save", "-c", "-t", table],
                                       check=False).stdout)
            OUT.show(self.ctl.run(["ip", "neigh"], check=False).stdout)
            OUT.show(self.dom0.run(["ip", "-br", "link"], check=False).stdout)
            OUT.show(self.dom0.run(["ip", "-4", "-br", "addr"], check=False).stdout)
            if self.switch is not None:
                OUT.show(self.switch.vsctl("show"))
        self.checks.record("tcp", tcp_ok,
                           "TCP through Dom0's firewall; the outside saw %s (NAT)"
                           % seen.stdout.strip().replace("you are ", ""))

        www = self.path("horizon")
        os.makedirs(www)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write(HORIZON_PAGE)
        self.server(self.ctl, "horizon", CONTROLLER, 80, www)
        url = "http://%s:%d/" % (DOM0_UPLINK, HORIZON_PORT)
        OUT.cmd("curl %s   # from outside: the host's port %d" % (url, HORIZON_PORT))
        page = self.fetch(self.out, url)
        OUT.show(page.stdout + page.stderr)
        self.checks.record("horizon", page.stdout == HORIZON_PAGE,
                           "outside -> %s:%d -> Controller %s:80 answered %r"
                           % (DOM0_UPLINK, HORIZON_PORT, CONTROLLER, page.stdout.strip()))

    def look_around(self):
        print("""
  The lab is up. In another shell, as root, you can look around:
    ip netns exec {d} {py} -m agent.cli -c {w}/agent.conf gateways
    ip netns exec {d} {py} -m agent.cli -c {w}/agent.conf diagram
    ip netns exec {d} iptables-legacy-save
    ip netns exec {c} ping {o}
    less {w}/agent.log
  (from {repo}, where the demo runs)""".format(d=self.dom0.name, c=self.ctl.name,
                                              o=OUTSIDE, w=self.work, py=self.python,
                                              repo=REPO))
        try:
            input("\n  Press Enter to destroy the lab and clean up. ")
        except EOFError:
            pass

    def link(self):
        """br100 as VLAN 102 of 'private': examples/blog-lab.yaml declares it, xgw apply
        put it in br100's other_config; the daemon made the patch ports once both bridges
        existed. An instance with its one NIC on br100 reaches a VLAN-102 port of
        'private'."""
        networks = {n["name"]: n for n in self.xgw_json("networks")}
        child, parent = networks["br100"], networks["private"]
        OUT.note("examples/blog-lab.yaml says of br100 `link: {parent: private, tag: %d}`; "
                 "xgw apply wrote it where xe would:" % LINK_TAG)
        OUT.show("xe network-param-set uuid=%s other-config:xapi-gateway.link=%s:%d"
                 % (child["uuid"], parent["uuid"], LINK_TAG))

        def applied():   # the daemon's status.json, as `xgw status` reads it
            try:
                with open(self.path("run", "status.json")) as f:
                    links = json.load(f).get("links") or []
            except (OSError, ValueError):
                return None
            return [l for l in links if l.get("network") == child["uuid"]
                    and l.get("state") == "applied"]
        wait_for(applied, timeout=30, interval=0.05, message="the link applied")
        OUT.note("the daemon made it when the nodes' start brought both bridges up:")
        OUT.show("\n".join(l for l in self.daemon_log().splitlines()
                           if "OVS: " in l or "link of network" in l))
        self.xgw("links")
        OUT.cmd("ovs-vsctl show   # in %s: the patch-port pair, the tag on private's side"
                % self.dom0.name)
        OUT.show("\n".join(ovs_show_ours(self.switch.vsctl("show"))))
        OUT.note("an instance's NIC on br100 (%s, namespace %s), and a port of 'private' on "
                 "VLAN %d (%s, namespace %s)" % (INSTANCE, self.inst.name, LINK_TAG, TAGGED,
                                                 self.v102.name))
        self.nic(self.inst, child["bridge"], "tap2.2", "eth2", INSTANCE + "/24")
        self.nic(self.v102, parent["bridge"], "vlan102", "eth0", TAGGED + "/24", tag=LINK_TAG)
        OUT.cmd("ping -c 3 %s   # from the instance on br100" % TAGGED)
        ping = self.inst.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", TAGGED], check=False)
        OUT.show(ping.stdout.strip().splitlines()[-2] if ping.stdout.strip() else ping.stderr)
        received = re.search(r"(\d+) received", ping.stdout)
        self.checks.record("link", ping.returncode == 0,
                           "br100 (%s) is VLAN %d of private (%s): instance %s -> %s: %s of "
                           "3 replies" % (child["bridge"], LINK_TAG, parent["bridge"],
                                          INSTANCE, TAGGED,
                                          received.group(1) if received else 0))

    def destroy(self):
        for port in ("vif1.1", "tap1.1", "tap2.2", "vlan102"):
            self.dom0.run(["ip", "link", "del", port], check=False)
        self.xgw("destroy", EXAMPLE)

        def gone():
            return not self.dom0.run(["ip", "link", "show", self.bridge],
                                     check=False).returncode == 0
        wait_for(gone, timeout=30, interval=0.1, message="the private bridge removed")
        left = [l for t in ("nat", "filter")
                for l in self.dom0.run(["iptables-legacy-save", "-t", t]).stdout.splitlines()
                if "xgw:%s:" % self.bridge in l or l.startswith(":XGW-PREROUTING")]
        vms = self.xgw_json("vms")
        ours = []
        if self.switch is not None:   # nothing of the daemon's may stay in OVSDB
            ours = [p for b in self.switch.list_bridges() for p in self.switch.list_ports(b)
                    if p.startswith("xgw")]
        self.checks.record("destroy", not vms and not left and not ours,
                           "VMs and networks removed; bridge %s gone and its rules with it%s"
                           % (self.bridge, "; no port of the daemon's left in OVS"
                              if self.switch is not None else ""))

    def close(self):
        """Stops everything and removes the namespaces and the work directory; returns
        what is left over (nothing, normally)."""
        for proc in self.servers:
            stop(proc)
        stop(self.daemon)
        stop(self.sim)
        if self.switch is not None:
            self.switch.stop()
        for ns in self.namespaces:
            ns.delete()
        shutil.rmtree(self.work, ignore_errors=True)
        return [ns.name for ns in self.namespaces if ns.exists()] + (
            [self.work] if os.path.exists(self.work) else [])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        return serve(*argv[1:])
    if argv[:1] == ["_fetch"]:
        return fetch(argv[1])
    parser = argparse.ArgumentParser(
        prog="demo/run", description="The blog's OpenStack lab on a simulated XenServer "
        "host, with xapi-gateway running for real, proved with real packets.")
    parser.add_argument("--non-interactive", action="store_true",
                        help="do not pause before cleaning up (the default without a "
                             "terminal)")
    parser.add_argument("--network-backend", choices=(OPENVSWITCH, BRIDGE),
                        default=OPENVSWITCH,
                        help="Dom0's network backend: Open vSwitch (default, as XenServer 8 "
                             "and XCP-ng 8.3; the demo then shows a VLAN link too) or Linux "
                             "bridges")
    parser.add_argument("--hosts", type=int, choices=(1, 3), default=1, metavar="N",
                        help="1 (default): the blog's lab on one host; 3: the multi-host "
                             "lab (examples/pool-lab.yaml) on a simulated pool of three "
                             "hosts, one daemon each, private networks spanning them, and a "
                             "failover (Open vSwitch only)")
    parser.add_argument("--prefix", default="xgwdemo", metavar="NAME",
                        help="prefix of the namespaces and the /tmp directory "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)
    if not re.match(r"^[a-z][a-z0-9-]{0,24}$", args.prefix):
        parser.error("--prefix: lower-case letters, digits and '-', at most 25")
    if args.hosts > 1 and args.network_backend != OPENVSWITCH:
        parser.error("--hosts %d: private networks span a pool through XAPI's VXLAN "
                     "tunnels, which need Open vSwitch" % args.hosts)
    if os.geteuid() != 0:
        parser.error("run it as root (sudo demo/run): it creates network namespaces")
    interactive = not args.non_interactive and sys.stdin.isatty()
    from agent.xapisim import datamodel
    if not os.path.exists(os.path.join(datamodel.default_directory(), "datamodel.json")):
        parser.error("the XenAPI datamodel is not at %s: XGW_XAPI_DATAMODEL names a "
                     "directory without datamodel.json (unset it to use the packaged copy)"
                     % datamodel.default_directory())

    def interrupted(*_):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, interrupted)  # as Ctrl-C: clean up, then the summary
    if args.hosts > 1:
        import pool_lab   # demo/pool_lab.py: the multi-host lab
        return pool_lab.main(args, interactive)
    lab = Lab(args)
    steps = [
        ("Set up the stand-ins: a 'Dom0', a VM NIC and the outside world", lab.prepare),
        ("Start the XAPI simulator in Dom0", lab.start_simulator),
        ("Start xapi-gateway-agent in Dom0, for real", lab.start_daemon),
        ("Apply the blog's lab: xgw apply examples/blog-lab.yaml", lab.apply),
        ("Start the OpenStack nodes", lab.start_vms),
        ("The gateway the daemon applied", lab.gateway),
        ("Plug the Controller's NIC into the private network", lab.plug_controller),
        ("Real packets: ping, TCP through NAT, Horizon through the forward", lab.traffic),
    ] + ([("A VLAN link: br100 carried as VLAN %d of 'private' (Open vSwitch patch ports)"
           % LINK_TAG, lab.link)] if lab.backend == OPENVSWITCH else []) + [
        ("Destroy the lab: xgw destroy examples/blog-lab.yaml", lab.destroy),
    ]
    look_after = steps[-2][1]   # the last step with packets: then the lab is complete
    return run_steps(lab, steps, checks_of(lab.backend), look_after, interactive)


def run_steps(lab, steps, checks, look_after, interactive):
    """Runs ``steps`` [(title, callable)] of ``lab``, pausing after ``look_after`` when
    ``interactive``; whatever happens (a failed check, Ctrl-C, a bug), cleans up with
    ``lab.close()`` (what is left over) and prints the summary of ``checks`` (names, in
    order). ``lab`` has ``checks``, ``namespaces``, ``work``, ``daemon_tail()`` and
    ``look_around()``. Returns the exit status: 0 when every check passed."""
    failure = None
    started = time.monotonic()
    try:
        for n, (title, step) in enumerate(steps, 1):
            OUT.step(n, len(steps) + 1, title)
            step()
            if step == look_after and interactive:
                lab.look_around()
    except (DemoFailed, AssertionError) as exc:  # a check, a command, a wait
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    except Exception as exc:  # a bug: still clean up, and say what happened
        failure = "%s: %s" % (type(exc).__name__, exc)
    finally:
        try:
            if failure:
                lab.daemon_tail()
            OUT.step(len(steps) + 1, len(steps) + 1, "Clean up")
        finally:  # even when the output is gone (a closed pipe)
            left = lab.close()
        lab.checks.results.append(("cleanup", not left, "namespaces %s and %s removed"
                                   % (", ".join(ns.name for ns in lab.namespaces), lab.work)
                                   if not left else "left over: %s" % ", ".join(left)))
    total = len(checks)
    print("\n" + "=" * 78)
    print("xapi-gateway demo: summary")
    for name, passed, detail in lab.checks.results:
        print("  %s  %-9s %s" % (OUT.ok("PASS") if passed else OUT.bad("FAIL"), name, detail))
    reached = [r[0] for r in lab.checks.results]
    for name in checks:
        if name not in reached:
            print("  %s  %-9s not reached" % (OUT.bad("----"), name))
    passed = lab.checks.passed()
    ok = failure is None and passed == len(lab.checks.results) == total
    print("%s: %d/%d checks passed in %.0f s%s" % (
        "DEMO PASSED" if ok else "DEMO FAILED", passed, total, time.monotonic() - started,
        "" if ok else " (%s)" % (failure or "see above")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
