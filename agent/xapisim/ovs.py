"""A real Open vSwitch for the simulator, the tests, the demo and the benchmark.

``Ovs.start(netns)`` runs a private ovsdb-server and ovs-vswitchd inside a network
namespace, with their database, sockets, pid files and logs in a directory of their own
(never the host's /run/openvswitch): the host's own namespace and any OVS it runs are
never touched. ``Ovs(remote)`` drives a running one instead (``unix:PATH``). Bridges use
the userspace datapath (``datapath_type=netdev``), which works without the openvswitch
kernel module; their device is a tap that comes up DOWN, so ``add_bridge`` sets it up,
as xcp-networkd does. Everything goes through ``ovs-vsctl``, the tool networkd itself
uses, so what lands in OVSDB is what a Dom0 has.

``stop()`` ends both daemons (``exit --cleanup`` removes the datapath's devices, then
SIGKILL by pid for whatever did not go) and deletes the directory; it is safe to call
twice and after a failed start. Deleting the namespace also kills both daemons, since both
run inside it.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
DAEMONS = ("ovs-vswitchd", "ovsdb-server")


class OvsError(RuntimeError):
    """An OVS command failed, or OVS is not installed (the message says which)."""


def installed():
    """None when the OVS tools are there; otherwise why not, as a sentence."""
    missing = [tool for tool in ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl",
                                 "ovs-appctl") if shutil.which(tool) is None]
    if not os.path.exists(SCHEMA):
        missing.append(SCHEMA)
    if missing:
        return ("Open vSwitch is not installed (missing %s; apt-get install "
                "openvswitch-switch)" % ", ".join(missing))
    return None


def external_ids(values):
    """``external_ids:key="value"`` arguments of ovs-vsctl ``set`` for a dict."""
    return ['external_ids:%s="%s"' % (k, v) for k, v in sorted(values.items())]


class Ovs(object):
    """An OVS reached at ``remote`` (``unix:PATH``); devices are set up in network
    namespace ``netns`` (None: the one this process runs in)."""

    def __init__(self, remote, netns=None):
        self.remote = remote
        self.netns = netns
        self.directory = None  # set when this object started the daemons (owns them)
        self.bridges = set()   # bridges made through this object (for the device clean-up)

    # ------------------------------------------------------------ private instance
    @classmethod
    def start(cls, netns=None, directory=None, timeout=10.0):
        """A private ovsdb-server + ovs-vswitchd in ``netns``; their files in
        ``directory`` (a fresh temporary one by default, removed by ``stop``)."""
        reason = installed()
        if reason:
            raise OvsError(reason)
        directory = directory or tempfile.mkdtemp(prefix="xgw-ovs-")
        self = cls("unix:" + os.path.join(directory, "db.sock"), netns)
        self.directory = directory
        try:
            self._run(["ovsdb-tool", "create", self._path("conf.db"), SCHEMA])
            self._start_ovsdb(timeout)
            self.vsctl("--no-wait", "init")
            self._run(self._in_ns(["ovs-vswitchd", self.remote,
                                   "--pidfile=" + self._path("ovs-vswitchd.pid"),
                                   "--log-file=" + self._path("ovs-vswitchd.log"),
                                   "--detach"]), timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_ovsdb(self, timeout=10.0):
        self._run(self._in_ns(["ovsdb-server", self._path("conf.db"),
                               "--remote=p" + self.remote,
                               "--pidfile=" + self._path("ovsdb-server.pid"),
                               "--log-file=" + self._path("ovsdb-server.log"),
                               "--detach"]), timeout=timeout)

    def restart_ovsdb(self, timeout=5.0):
        """Stop ovsdb-server and start it again on the same database, as a package
        upgrade or ``systemctl restart openvswitch`` does (clients must reconnect)."""
        if self.directory is None:
            raise OvsError("restart_ovsdb: this object did not start OVS")
        pid = self._pid("ovsdb-server")
        if pid is not None:
            ctl = self._path("ovsdb-server.%d.ctl" % pid)
            if os.path.exists(ctl):
                subprocess.run(["ovs-appctl", "-t", ctl, "exit"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=timeout)
            _kill(pid, timeout)
        self._start_ovsdb()

    def stop(self, timeout=5.0):
        """End the daemons this object started and remove their directory; the devices
        of the bridges made through it go with them."""
        if self.directory is None:
            return
        for daemon in DAEMONS:
            pid = self._pid(daemon)
            if pid is None:
                continue
            ctl = self._path("%s.%d.ctl" % (daemon, pid))
            args = ["exit", "--cleanup"] if daemon == "ovs-vswitchd" else ["exit"]
            if os.path.exists(ctl):
                try:
                    subprocess.run(["ovs-appctl", "-t", ctl] + args, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
            _kill(pid, timeout)
        # a killed ovs-vswitchd leaves its devices behind: remove those this object made
        for name in sorted(self.bridges) + ["ovs-netdev"]:
            if self.device_exists(name):
                subprocess.run(self._in_ns(["ip", "link", "del", name]),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.bridges.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def pids(self):
        """The pids of the daemons this object started that are still running."""
        if self.directory is None:
            return []
        return [pid for pid in (self._pid(d) for d in DAEMONS)
                if pid is not None and alive(pid)]

    def log(self, daemon="ovs-vswitchd"):
        try:
            with open(self._path(daemon + ".log")) as f:
                return f.read()[-4000:]
        except (IOError, OSError, TypeError):
            return ""

    # ------------------------------------------------------------ OVSDB, as networkd
    def vsctl(self, *args, **kw):
        """Run ``ovs-vsctl --db=REMOTE ARGS``; its output, or OvsError."""
        return self._run(["ovs-vsctl", "--db=" + self.remote, "--timeout=%d" % kw.get(
            "timeout", 10)] + list(args)).stdout

    def add_bridge(self, name, ids=None):
        """``--may-exist add-br NAME`` on the userspace datapath, ``ids`` in the Bridge's
        external_ids, and the device set up (it comes up DOWN)."""
        self.bridges.add(name)
        self.vsctl("--may-exist", "add-br", name, "--", "set", "Bridge", name,
                   "datapath_type=netdev", *external_ids(ids or {}))
        up = self._in_ns(["ip", "link", "set", "dev", name, "up"])
        try:  # add-br returns once ovs-vswitchd made the device, unless it timed out
            self._run(up)
        except OvsError:
            self.wait_device(name)
            self._run(up)

    def add_fake_bridge(self, name, parent, tag, ids=None):
        """A VLAN bridge as networkd makes one on Open vSwitch: ``--may-exist add-br
        NAME PARENT TAG`` (a fake bridge: an internal port of ``parent`` with the tag),
        ``ids`` as its external ids, its device set up."""
        self.bridges.add(name)
        self.vsctl("--may-exist", "add-br", name, parent, str(tag))
        for key, value in sorted((ids or {}).items()):
            self.vsctl("br-set-external-id", name, key, value)
        self.wait_device(name)
        self._run(self._in_ns(["ip", "link", "set", "dev", name, "up"]))

    def del_bridge(self, name):
        self.vsctl("--if-exists", "del-br", name)
        self.bridges.discard(name)

    def add_port(self, bridge, port, ids=None, internal=False):
        """``--may-exist add-port BRIDGE PORT`` with ``ids`` in the Interface's external_ids
        (where networkd puts a VIF's); ``internal``: OVS makes the device itself."""
        sets = external_ids(ids or {}) + (["type=internal"] if internal else [])
        args = ["--may-exist", "add-port", bridge, port]
        if sets:
            args += ["--", "set", "Interface", port] + sets
        self.vsctl(*args)

    def plug_veth(self, bridge, port, netns, dev, tag=None, ids=None, mtu=None):
        """A machine's NIC on ``bridge``: a veth whose end ``port`` (in this OVS's
        namespace) becomes an OVS port (an access port of VLAN ``tag`` when given; ``ids``
        in its Interface's external_ids, with ``attached-mac``, ``dev``'s MAC, as XAPI
        sets it for a vif) and whose other end ``dev`` goes to namespace
        ``netns``, both set up (``mtu`` on both when given); the caller addresses ``dev``.

        Unlike a vif on a real host (netback, under the kernel datapath), a veth under
        the userspace datapath is still a device of the host's IP stack: left alone, the
        host answers the machine's ARP for the gateway address from ``port`` with
        ``port``'s own MAC, racing the answer through the bridge. When it wins, the
        machine's packets enter the host through ``port``, not the bridge's device, and
        match no rule written for the bridge (measured: the demo's TCP rejected about one
        run in six). So ``port`` answers no ARP (arp_ignore 8) and has no IPv6 (where the
        kernel has it). The machine's end sends no TCP checksum offloaded: nobody on the
        userspace datapath would fill it in (ICMP would still pass, TCP would not)."""
        self._run(self._in_ns(["ip", "link", "add", port, "type", "veth", "peer", "name",
                               dev, "netns", netns]))
        args = ["--may-exist", "add-port", bridge, port]
        if tag is not None:
            args.append("tag=%d" % tag)
        if ids:
            mac = self._run(["ip", "netns", "exec", netns, "cat",
                             "/sys/class/net/%s/address" % dev]).stdout.strip()
            ids = dict(ids, **{"attached-mac": mac})
            args += ["--", "set", "Interface", port] + external_ids(ids)
        self.vsctl(*args)
        conf = "net/ipv%s/conf/" + port + "/%s"
        self._run(self._in_ns(["sysctl", "-q", "-e", "-w", conf % (4, "arp_ignore=8"),
                               "-w", conf % (6, "disable_ipv6=1")]))
        self._run(["ip", "netns", "exec", netns, "ethtool", "-K", dev, "tx", "off"])
        for ns_cmd, name in ((self._in_ns, port),
                             (lambda cmd: ["ip", "netns", "exec", netns] + cmd, dev)):
            self._run(ns_cmd(["ip", "link", "set", "dev", name, "up"] +
                             (["mtu", str(mtu)] if mtu else [])))

    def del_port(self, bridge, port):
        self.vsctl("--if-exists", "del-port", bridge, port)

    def list_bridges(self):
        return sorted(self.vsctl("list-br").split())

    def list_ports(self, bridge):
        return sorted(self.vsctl("list-ports", bridge).split())

    def get(self, table, record, column):
        """A column as ovs-vsctl prints it (maps as ``{k="v", ...}``)."""
        return self.vsctl("get", table, record, column).strip()

    def external_ids_of(self, table, record):
        """The row's external_ids as a dict."""
        out = self.vsctl("--format=json", "--columns=external_ids", "list", table, record)
        rows = json.loads(out)["data"]
        return dict((k, v) for k, v in rows[0][0][1]) if rows else {}

    def device_exists(self, name):
        return subprocess.run(self._in_ns(["ip", "link", "show", "dev", name]),
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    def wait_device(self, name, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.device_exists(name):
            if time.monotonic() > deadline:
                raise OvsError("device %s did not appear within %ss" % (name, timeout))
            time.sleep(0.01)

    # ------------------------------------------------------------ plumbing
    def _path(self, name):
        return os.path.join(self.directory, name)

    def _pid(self, daemon):
        try:
            with open(self._path(daemon + ".pid")) as f:
                return int(f.read().strip())
        except (IOError, OSError, ValueError):
            return None

    def _in_ns(self, cmd):
        return (["ip", "netns", "exec", self.netns] if self.netns else []) + list(cmd)

    def _run(self, cmd, timeout=20.0):
        env = dict(os.environ)
        if self.directory:  # the daemons' default paths: never the host's /run/openvswitch
            env.update(OVS_RUNDIR=self.directory, OVS_DBDIR=self.directory,
                       OVS_LOGDIR=self.directory)
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, timeout=timeout, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OvsError("%s: %s" % (" ".join(cmd), exc))
        if proc.returncode != 0:
            raise OvsError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode,
                                                   (proc.stderr or proc.stdout).strip()))
        return proc


def alive(pid):
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped by whoever adopted it) is not running
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (IOError, OSError, IndexError):
        return False


def _kill(pid, timeout):
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        while alive(pid) and time.monotonic() < deadline + 2:
            time.sleep(0.02)
