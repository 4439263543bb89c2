"""A simulated pool for the integration tests: the XAPI simulator as a pool of hosts, each
host a network namespace with its own Open vSwitch (or Linux bridges), their eth0 joined
by an underlay, and one xapi-gateway daemon per host namespace, each talking to the
pool's XAPI (the master's simulator endpoint, a Unix socket every namespace reaches).

    lab = Lab(hosts=3)                 # python -m agent.xapisim --hosts 3 --bridges
    lab.start_daemon(2)                # the daemon of host 2, in host 2's namespace
    vm = lab.plug_vm(3, "xapi1", "172.16.1.10/24", "172.16.1.1")
    lab.shutdown_host(1)               # host.disable + host.shutdown; its daemon stops
    lab.close()                        # daemons, simulator, namespaces: nothing left

Namespaces are named ``xgwt-<pid>-<n>-pool-...`` (the simulator makes and removes the
hosts' and the underlay's; the lab makes and removes the VMs'), so parallel runs never
collide. ``close`` checks that nothing is left behind and says what was.
"""
import os
import shutil
import signal
import subprocess
import sys

import XenAPI

from agent.xapisim import ovs
from agent.xapisim import netns as hostns
from tests.integration import netns as N


class HostNs(N.Netns):
    """A namespace someone else made (the simulator's host): used, never deleted here."""

    def __init__(self, name):  # noqa: super().__init__ would create it
        hostns.Netns.__init__(self, name)


class Host(object):
    """One host of the lab: ``number`` (from 1), ``ref``, ``name``, ``uuid``, ``ns``,
    ``address`` (management, on xenbr0), ``ovsdb`` (unix:PATH or None), ``daemon``."""

    def __init__(self, number, ref, name, uuid, ns, address, ovsdb):
        self.number, self.ref, self.name, self.uuid = number, ref, name, uuid
        self.ns, self.address, self.ovsdb = ns, address, ovsdb
        self.daemon = None
        self.ovs = ovs.Ovs(ovsdb, ns.name) if ovsdb else None


class Lab(object):
    """The simulator as a pool of ``hosts`` hosts on ``backend``, started at once;
    ``prefix`` names its namespaces and directory (the tests' xgwt-<pid>-<n>-pool by
    default)."""

    def __init__(self, hosts=3, backend="openvswitch", timeout=60, prefix=None):
        self.backend = backend
        self.prefix = prefix or "xgwt-%d-%d-pool" % (os.getpid(), next(N._counter))
        # no '_' in the socket's path: the SDK's Unix transport turns '_' into '/'
        self.directory = "/tmp/%s" % self.prefix
        os.makedirs(self.directory)
        self.socket = os.path.join(self.directory, "xapi")
        self.hosts = []
        self.vms = []
        self.sim = None
        try:
            self._start(hosts, timeout)
        except BaseException:
            self.close(check=False)
            raise

    def _start(self, count, timeout):
        log = open(os.path.join(self.directory, "xapisim.log"), "w")
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "agent.xapisim", "--unix", self.socket, "--bridges",
             "--hosts", str(count), "--netns-prefix", self.prefix, "--network-backend",
             self.backend], stdout=subprocess.PIPE, stderr=log, universal_newlines=True,
            env=dict(os.environ, PYTHONPATH=N.REPO))
        log.close()
        line = self.sim.stdout.readline()
        if not line.startswith("xapisim: serving"):
            raise AssertionError("the simulator did not start: %s%s" % (line, self.sim_log()))
        api = self.api()
        refs = api.host.get_all()
        for n in range(1, count + 1):
            fields = self.sim.stdout.readline().split()
            # xapisim: host N NAME netns NS address IP ovsdb REMOTE
            assert fields[1:3] == ["host", str(n)], fields
            name, ns, address, remote = fields[3], fields[5], fields[7], fields[9]
            ref = refs[n - 1]
            assert api.host.get_name_label(ref) == name
            self.hosts.append(Host(n, ref, name, api.host.get_uuid(ref), HostNs(ns), address,
                                   None if remote == "-" else remote))
        for host in self.hosts:  # the rest of a Dom0 that matters to a gateway
            host.ns.run(["iptables-legacy-restore"], input=N.DOM0_FIREWALL)
        # xapisim: underlay netns NS address IP: the wire, and the world outside
        fields = self.sim.stdout.readline().split()
        assert fields[1:3] == ["underlay", "netns"], fields
        self.wire = HostNs(fields[3])
        self.outside = fields[5]

    # ------------------------------------------------------------ XAPI
    def api(self):
        """A fresh XenAPI session's proxy on the pool's XAPI (over its Unix socket)."""
        session = XenAPI.Session("http://%s/" % self.socket.replace("/", "_"),
                                 transport=XenAPI.UDSTransport())
        session.xenapi.login_with_password("root", "", "1.0", "xgw-tests")
        return session.xenapi

    def host(self, n):
        return self.hosts[n - 1]

    def shutdown_host(self, n, api=None):
        """What `xe host-disable; xe host-shutdown` does to host n: it goes dead and off
        the wire, and, as on a real host, its daemon is gone with it."""
        api = api or self.api()
        host = self.host(n)
        api.host.disable(host.ref)
        api.host.shutdown(host.ref)
        if host.daemon is not None:
            host.daemon.stop()

    # ------------------------------------------------------------ daemons
    def start_daemon(self, n, gateways=None, agent_opts=None, wait_ready=True, **kw):
        """The daemon of host n in its namespace, with [xapi] url the pool's socket and
        [xapi] host its name; its files in a directory of its own."""
        host = self.host(n)
        workdir = os.path.join(self.directory, "daemon-%d" % n)
        os.makedirs(workdir, exist_ok=True)
        network_conf = os.path.join(workdir, "network.conf")
        with open(network_conf, "w") as f:
            f.write(("openvswitch" if self.backend == "openvswitch" else "bridge") + "\n")
        opts = {"network_conf": network_conf}
        if host.ovsdb:
            opts["ovsdb"] = host.ovsdb
        opts.update(agent_opts or {})
        host.daemon = N.Daemon(host.ns, workdir, gateways or {}, agent_opts=opts,
                               xapi_url="unix:" + self.socket, xapi_host=host.name, **kw)
        return host.daemon.start(wait_ready=wait_ready)

    def daemons(self):
        return [h.daemon for h in self.hosts if h.daemon is not None and h.daemon.proc]

    # ------------------------------------------------------------ VMs and the wire
    def plug_vm(self, n, bridge, address, gateway=None, tag=None):
        """A namespace standing for a VM on host n, its eth0 a port of ``bridge`` there
        (an OVS port, ``tag`` as its VLAN, or a Linux bridge port), ``address`` on it and
        a default route via ``gateway``. Removed by close()."""
        host = self.host(n)
        vm = N.Netns("poolvm")
        self.vms.append(vm)
        port = "vm%d-%d" % (n, len(self.vms))
        if host.ovs is not None:
            host.ovs.plug_veth(bridge, port, vm.name, "eth0", tag=tag)
        else:
            host.ns.bridge_veth(bridge, port, vm, "eth0")
        vm.run(["ip", "addr", "add", address, "dev", "eth0"])
        if gateway:
            vm.run(["ip", "route", "add", "default", "via", gateway])
        return vm

    def pings(self, ns, address, wait=1):
        return ns.run(["ping", "-c", "1", "-W", str(wait), address],
                      check=False).returncode == 0

    # ------------------------------------------------------------ the end
    def leftovers(self):
        """Namespaces of this lab that still exist."""
        return [name for name in hostns.names() if name.startswith(self.prefix + "-")]

    def sim_log(self):
        try:
            with open(os.path.join(self.directory, "xapisim.log")) as f:
                return f.read()[-4000:]
        except (IOError, OSError):
            return ""

    def close(self, check=True):
        """Stop every daemon and the simulator (which removes the hosts, their OVS and
        the underlay), delete the VMs' namespaces; with ``check``, fail when anything
        was left behind (namespaces, OVS directories), after removing it."""
        problems = []
        try:
            for host in self.hosts:
                if host.daemon is not None and host.daemon.proc is not None:
                    host.daemon.stop()
            if self.sim is not None and self.sim.poll() is None:
                self.sim.send_signal(signal.SIGTERM)
                try:
                    self.sim.wait(30)
                except subprocess.TimeoutExpired:
                    self.sim.kill()
                    self.sim.wait()
                    problems.append("the simulator ignored SIGTERM")
                if self.sim.returncode not in (0, -signal.SIGKILL):
                    problems.append("the simulator exited with %s: %s"
                                    % (self.sim.returncode, self.sim_log()))
            if self.sim is not None:
                self.sim.stdout.close()
                if "Traceback" in self.sim_log():  # a call that failed inside the simulator
                    problems.append("the simulator logged errors: %s" % self.sim_log())
        finally:
            for vm in self.vms:
                vm.delete()
            left = self.leftovers()
            for name in left:
                hostns.Netns(name).delete()
            if left:
                problems.append("namespaces left behind: %s" % ", ".join(left))
            # each host's private OVS keeps its files in a directory of its own
            dirs = [os.path.dirname(h.ovsdb[len("unix:"):]) for h in self.hosts if h.ovsdb]
            kept = [d for d in dirs if os.path.exists(d)]
            for directory in kept:
                shutil.rmtree(directory, ignore_errors=True)
            if kept:
                problems.append("OVS directories left behind: %s" % ", ".join(kept))
            shutil.rmtree(self.directory, ignore_errors=True)
        if check and problems:
            raise AssertionError("; ".join(problems))

