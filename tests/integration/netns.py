"""Namespaces, topologies and a daemon runner for the integration tests.

Everything here happens inside network namespaces the tests create (named ``xgwt-...``)
and removes afterwards. Nothing touches the host's own namespace, and traffic only flows
between namespaces made here.
"""
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from agent.xapisim import firewall
from agent.xapisim import netns as hostns
from agent.xapisim import ovs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")
_counter = itertools.count()

DOM0_FIREWALL = firewall.DOM0_FIREWALL  # Dom0's stock filter table


run = hostns.run


class Netns(hostns.Netns):
    """A namespace of the tests, named ``xgwt-<pid>-<n>-<role>``, created at once."""

    def __init__(self, role):
        super(Netns, self).__init__("xgwt-%d-%d-%s" % (os.getpid(), next(_counter), role))
        self.create()

    def ipt(self, *args, **kw):
        return self.run(["iptables-legacy", "-w"] + list(args), **kw)

    def dom0_firewall(self, forward_chain=False):
        """Dom0's stock filter table; with ``forward_chain``, also the daemon's
        XGW-FORWARD chain, empty, jumped to first from FORWARD."""
        self.run(["iptables-legacy-restore"], input=DOM0_FIREWALL)
        if forward_chain:
            self.ipt("-N", "XGW-FORWARD")
            self.ipt("-I", "FORWARD", "1", "-j", "XGW-FORWARD")

    def save(self, table):
        return self.run(["iptables-legacy-save", "-t", table]).stdout

    def rules(self, table):
        """The ``-A`` lines of ``iptables-save -t table`` (counters and comments kept)."""
        return [l for l in self.save(table).splitlines() if l.startswith("-A ")]

    def addresses(self, dev):
        out = self.run(["ip", "-4", "-o", "addr", "show", "dev", dev], check=False).stdout
        return [line.split()[3] for line in out.splitlines()]

    def routes(self):
        return self.run(["ip", "-4", "route", "show", "table", "main"]).stdout.splitlines()

    def ip_forward(self):
        return self.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()

    def set_ip_forward(self, value):
        self.run(["sh", "-c", "echo %d > /proc/sys/net/ipv4/ip_forward" % value])

    def link_exists(self, dev):
        return self.run(["ip", "link", "show", dev], check=False).returncode == 0


LINUX_BRIDGE, OPENVSWITCH = "linux-bridge", "openvswitch"
BACKENDS = (LINUX_BRIDGE, OPENVSWITCH)  # Dom0's two network backends
# the test's stand-ins for what XAPI records about the network, the VM and its VIF
NETWORK_UUID = "5e1c7e55-0000-4000-8000-00000000000a"
VM_UUID = "5e1c7e55-0000-4000-8000-00000000000b"
VIF_UUID = "5e1c7e55-0000-4000-8000-00000000000c"


class Topology(object):
    """dom0 (the gateway host) with bridge xapi1 and an uplink to 'outside'; a 'vm'
    namespace plugged into xapi1 through a veth; 'outside' has no route to the private
    subnet, so only NAT can bring replies back.

    ``backend``: xapi1 is a Linux bridge, or an Open vSwitch bridge (userspace datapath)
    of a private OVS running in dom0, with the external_ids xcp-networkd sets."""

    PRIVATE = "172.16.1.1/24"
    VM_ADDR = "172.16.1.10/24"
    DOM0_UPLINK = "10.200.0.1/24"
    OUTSIDE = "10.200.0.2"

    def __init__(self, bridge="xapi1", firewall=True, backend=LINUX_BRIDGE):
        if backend not in BACKENDS:
            raise ValueError("backend %r is not one of %s" % (backend, BACKENDS))
        self.bridge = bridge
        self.backend = backend
        self.vm_port = "vif1.0"
        self.ovs = None
        self.dom0 = Netns("dom0")
        self.vm = Netns("vm")
        self.outside = Netns("out")
        self.namespaces = [self.dom0, self.vm, self.outside]
        if backend == OPENVSWITCH:
            try:
                self.ovs = ovs.Ovs.start(self.dom0.name)
            except BaseException:
                self.close()
                raise
        # uplink dom0 <-> outside
        self.dom0.run(["ip", "link", "add", "uplink", "type", "veth", "peer", "name", "eth0",
                       "netns", self.outside.name])
        self.dom0.run(["ip", "addr", "add", self.DOM0_UPLINK, "dev", "uplink"])
        self.dom0.run(["ip", "link", "set", "uplink", "up"])
        self.outside.run(["ip", "addr", "add", self.OUTSIDE + "/24", "dev", "eth0"])
        self.outside.run(["ip", "link", "set", "eth0", "up"])
        if firewall:
            self.dom0.run(["iptables-legacy-restore"], input=DOM0_FIREWALL)

    def create_bridge(self):
        """What XAPI does when the first VM on the network starts: the bridge, up, with the
        VM's vif in it."""
        self.add_bridge(self.bridge)
        self.plug_vm()

    def add_bridge(self, name, network_uuid=NETWORK_UUID):
        """A bridge in dom0, up, on this topology's backend."""
        if self.ovs is not None:
            self.ovs.add_bridge(name, {"xs-network-uuids": network_uuid})
        else:
            self.dom0.run(["ip", "link", "add", name, "type", "bridge"])
            self.dom0.run(["ip", "link", "set", name, "up"])

    def plug_vm(self, port="vif1.0"):
        """The VM's vif into the (existing) bridge, as XAPI plugs a started VM's VIF;
        ``port`` names its Dom0 end."""
        self.vm_port = port
        if self.ovs is not None:
            self.ovs.plug_veth(self.bridge, port, self.vm.name, "eth0", ids={
                "xs-vif-uuid": VIF_UUID, "xs-vm-uuid": VM_UUID,
                "xs-network-uuid": NETWORK_UUID})
        else:
            self.dom0.bridge_veth(self.bridge, port, self.vm, "eth0")
        self.vm.run(["ip", "addr", "add", self.VM_ADDR, "dev", "eth0"])
        self.vm.run(["ip", "route", "add", "default", "via", self.PRIVATE.split("/")[0]])

    def delete_bridge(self):
        if self.ovs is not None:
            self.ovs.del_bridge(self.bridge)
        self.dom0.run(["ip", "link", "del", self.vm_port], check=False)
        self.dom0.run(["ip", "link", "del", self.bridge], check=False)

    def close(self):
        try:
            if self.ovs is not None:
                self.ovs.stop()
        finally:
            for ns in self.namespaces:
                ns.delete()


class Daemon(object):
    """xapi-gateway-agent running for real inside a namespace, readiness by sd_notify."""

    def __init__(self, ns, workdir, gateways=None, agent_opts=None, extra="", env=None,
                 xapi_url="none", launcher=None, prefix=(), xapi_host=None, xapi_opts=None):
        self.ns = ns
        # argv that runs the daemon, followed by "-c CONFIG" (a helper may wrap it)
        self.launcher = launcher or [sys.executable, "-m", "agent.daemon.main"]
        self.prefix = list(prefix)  # a command that runs the daemon's `ip netns exec ...`
        self.xapi_url = xapi_url
        self.xapi_host = xapi_host  # [xapi] host: this host in a simulated pool
        self.xapi_opts = dict(xapi_opts or {})  # more [xapi] keys (heartbeats)
        self.env = dict(env or {})
        self.workdir = workdir
        self.config_path = os.path.join(workdir, "agent.conf")
        self.state_dir = os.path.join(workdir, "state")
        self.runtime_dir = os.path.join(workdir, "run")
        self.log_path = os.path.join(workdir, "agent.log")
        self.proc = None
        self.notify_path = os.path.join(workdir, "notify.sock")
        self.write_config(gateways if gateways is not None else {}, agent_opts, extra)

    def write_config(self, gateways, agent_opts=None, extra=""):
        # OVSDB: a socket of this test's own (none unless the test starts an OVS there),
        # never the host's /var/run/openvswitch
        opts = {"check_interval": "0.5", "state_dir": self.state_dir,
                "runtime_dir": self.runtime_dir,
                "ovsdb": "unix:" + os.path.join(self.workdir, "ovsdb.sock"),
                "xtables_lock": os.path.join(self.workdir, "xtables.lock"), "udev": "off",
                "log_level": "debug"}
        opts.update(agent_opts or {})
        lines = ["[agent]"] + ["%s = %s" % kv for kv in sorted(opts.items())] + [""]
        lines += ["[xapi]", "url = %s" % self.xapi_url]
        lines += ["host = %s" % self.xapi_host] if self.xapi_host else []
        lines += ["%s = %s" % kv for kv in sorted(self.xapi_opts.items())]
        lines += [""]
        for name, gw in gateways.items():
            lines.append("[gateway:%s]" % name)
            lines.extend("%s = %s" % kv for kv in sorted(gw.items()))
            lines.append("")
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + extra)

    def start(self, wait_ready=True, timeout=20):
        if os.path.exists(self.notify_path):
            os.unlink(self.notify_path)
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(self.notify_path)
        self._notify.settimeout(0.2)
        self._messages = []
        self._draining = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read_notify, args=(self._notify,))
        self._reader.daemon = True
        self._reader.start()
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path, PYTHONPATH=REPO,
                   PYTHONUNBUFFERED="1")
        env.update(self.env)
        log = open(self.log_path, "a")
        command = list(self.launcher) + ["-c", self.config_path]
        if self.prefix:
            self.proc = subprocess.Popen(
                self.prefix + ["ip", "netns", "exec", self.ns.name] + command,
                stdout=log, stderr=log, env=env)
        else:  # ns may be a stand-in with its own popen (the journal's)
            self.proc = self.ns.popen(command, stdout=log, stderr=log, env=env)
        log.close()
        if wait_ready:
            self.wait_notify("READY=1", timeout)
        return self

    def _read_notify(self, sock):
        """Like systemd, keep reading the notify socket for as long as the daemon runs."""
        while True:
            try:
                message = sock.recv(4096).decode()
            except socket.timeout:
                if self._draining:
                    return  # the daemon has exited and its queue is empty
                continue
            except OSError:
                return
            with self._cond:
                self._messages.append((time.monotonic(), message))
                self._cond.notify_all()

    def notifications(self):
        with self._cond:
            return [message for _t, message in self._messages]

    def wait_notify(self, what, timeout=20):
        """The first notification with a line ``what``; waits for it."""
        return self.wait_notify_at(what, timeout)[1]

    def wait_notify_at(self, what, timeout=20):
        """(monotonic arrival time, message) of the first notification with line ``what``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for arrived, message in self._messages:
                    if what in message.split("\n"):
                        return arrived, message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no %s from the daemon within %ss; log:\n%s"
                                         % (what, timeout, self.log()))
                if self.proc.poll() is not None:
                    raise AssertionError("daemon exited with %s; log:\n%s"
                                         % (self.proc.returncode, self.log()))
                self._cond.wait(min(remaining, 0.2))

    def status(self):
        try:
            with open(os.path.join(self.runtime_dir, "status.json")) as f:
                return json.load(f)
        except (IOError, OSError, ValueError):
            return None

    def gateway_state(self, name):
        status = self.status() or {}
        for gw in status.get("gateways", []):
            if gw["name"] == name:
                return gw
        return None

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=10):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code, self.proc = self.proc.returncode, None
        self._draining = True  # read what the daemon sent before it exited, then close
        self._reader.join(5)
        self._notify.close()
        return code

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def settled_fd_count(self, seconds=1.0):
        """The fewest descriptors the daemon held, sampled every 20 ms for ``seconds``:
        what it keeps, without what a round holds for a while (libiptc's handles, one
        socket a table, are freed IDLE_RELEASE = 0.25 s after the last round; the xtables
        lock during a round). A leak raises this; a round in flight does not."""
        deadline = time.monotonic() + seconds
        fewest = self.fd_count()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            fewest = min(fewest, self.fd_count())
        return fewest

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-6000:]
        except IOError:
            return ""


def pings(ns, target, count=1, wait=1):
    """Whether ``ns`` gets an answer from ``target`` (``count`` pings, ``wait`` s each)."""
    return ns.run(["ping", "-c", str(count), "-W", str(wait), target],
                  check=False).returncode == 0


def ovs_endpoint(switch, host, bridge, port, ns, address, tag=None):
    """Namespace ``ns`` as a machine on OVS bridge ``bridge`` of ``switch`` (running in
    namespace ``host``): a veth whose ``host`` end is port ``port`` (an access port of VLAN
    ``tag`` when given; kernel VLAN devices are not available here) and whose other end,
    eth0 in ``ns``, has ``address``."""
    assert switch.netns == host.name, (switch.netns, host.name)
    switch.plug_veth(bridge, port, ns.name, "eth0", tag=tag)
    ns.run(["ip", "addr", "add", address, "dev", "eth0"])


def stop(proc, timeout=10.0):
    """hostns.stop, and a test failure when the child ignored SIGTERM."""
    if not hostns.stop(proc, timeout):
        raise AssertionError("%s ignored SIGTERM for %ss" % (proc.args, timeout))


wait_for = hostns.wait_for  # the tests' only way to wait


def make_workdir():
    return tempfile.mkdtemp(prefix="xgwt-")


def remove_workdir(path):
    shutil.rmtree(path, ignore_errors=True)
