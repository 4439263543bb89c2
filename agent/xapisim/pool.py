"""A pool of hosts: members, their liveness, and each host's Dom0 for real.

The pool's one database is the engine's; every host has its host record (``address``:
its management IP), host_metrics, control domain, eth0 PIF on the pool-wide eth0
network (xenbr0) and its own bridges (``engine.dom0[host]``, an
agent.xapisim.bridges.Bridges). ``pool.master`` is the first host. ``Pool`` builds it all:
``Pool(engine, hosts=3, backend="openvswitch", real=True)`` gives each host its own network
namespace with its own private Open vSwitch and joins the hosts' eth0 through an
underlay (agent.xapisim.underlay); ``add_host`` adds a member to a seeded engine.

As xapi does: ``host.disable`` marks the host disabled (maintenance) until
``host.enable`` (HOST_OFFLINE while it is dead); ``host.shutdown`` needs the host disabled
first (HOST_NOT_DISABLED) and no running guest on it (HOST_IN_USE; evacuate first), and
marks its host_metrics dead at once, as xapi does for a host shut down through the API.
A host that is shut down loses what a powered-off host loses: its bridges go, and it is
off the wire (its eth0 down). ``Pool.power_on`` (no XenAPI call: host.power_on needs a
power-on mode) brings it back live and enabled, its plugged networks' bridges remade.
"""
import datetime
import os

from agent.xapisim.engine import XapiFailure
from agent.xapisim.seed import DOM0_MEMORY, HOST_MEMORY, software_version


def install(engine):
    engine.handlers["host.disable"] = host_disable
    engine.handlers["host.enable"] = host_enable
    engine.handlers["host.shutdown"] = host_shutdown
    engine.power = None  # callable(host, on): the Dom0 side of a host's power


def add_host(engine, name, backend, bridges=None, address="127.0.0.1"):
    """A new member of the pool: its host record and live host_metrics, its control
    domain, its eth0 PIF (management, with ``address`` unless 127.0.0.1), the shared
    SRs plugged, and ``bridges`` (record-only by default) for its Dom0. Returns its
    ref."""
    from agent.xapisim import vms
    from agent.xapisim.bridges import Bridges
    from agent.xapisim.seed import API_VERSION
    metrics = engine.create("host_metrics", live=True, memory_total=HOST_MEMORY,
                            memory_free=HOST_MEMORY - DOM0_MEMORY,
                            last_updated=datetime.datetime.utcnow().replace(microsecond=0))
    host = engine.create("host", name_label=name, hostname=name, enabled=True,
                         address=address, API_version_major=API_VERSION[0],
                         API_version_minor=API_VERSION[1], API_version_vendor="XenServer",
                         software_version=software_version(name, backend),
                         metrics=metrics, edition="xcp-ng", name_description="Pool member")
    engine.dom0[host] = bridges if bridges is not None else Bridges()
    vms.control_domain(engine, host)
    eth0 = [ref for ref, net in engine.objects["network"].items() if net["bridge"] == "xenbr0"]
    if eth0:
        n = len(engine.objects["host"])
        engine.create("PIF", device="eth0", network=eth0[0], host=host,
                      MAC="02:00:00:00:%02x:01" % (n % 256), MTU=1500, VLAN=-1, physical=True,
                      currently_attached=True, management=True,
                      ip_configuration_mode="DHCP", managed=True)
        if address != "127.0.0.1":
            configure_management(engine, host, address, "255.255.255.0")
    for sr in {pbd["SR"] for pbd in engine.objects["PBD"].values()}:
        engine.create("PBD", host=host, SR=sr, currently_attached=True, device_config={})
        engine.set_field("SR", sr, "shared", True)
    return host


def configure_management(engine, host, address, netmask):
    """The host's management PIF with a static address, and host.address, as after
    ``PIF.reconfigure_ip`` at install time."""
    engine.set_field("host", host, "address", address)
    for ref, pif in engine.objects["PIF"].items():
        if pif["host"] == host and pif["management"]:
            for field, value in (("ip_configuration_mode", "Static"), ("IP", address),
                                 ("netmask", netmask)):
                engine.set_field("PIF", ref, field, value)


class Pool(object):
    """The simulator's pool: ``hosts`` hosts in ``engine`` (seeded here), the first one
    the master. With ``real``, each host's bridges are made on ``backend`` for real:
    one host in the namespace this runs in (as before pools: ``ovsdb`` may name a
    running OVS); several hosts each in a namespace of their own (``prefix``-h<n>),
    each with its own private OVS on that backend, joined by an underlay on ``subnet``.
    ``close()`` removes all of it."""

    def __init__(self, engine, hosts=1, backend="openvswitch", real=False, ovsdb=None,
                 prefix=None, subnet=None, isos=None):
        from agent.xapisim import bridges as dom0, underlay as wire, vms
        from agent.xapisim.seed import seed
        if hosts < 1:
            raise ValueError("a pool has at least one host, not %d" % hosts)
        if hosts > 1 and ovsdb:
            raise ValueError("--ovsdb names one OVS; a pool of %d hosts runs one per host"
                             % hosts)
        self.engine = engine
        self.backend = backend
        self.underlay = None
        self.hosts = []
        self._bridges = []
        try:
            if real and hosts > 1:
                self.underlay = wire.Underlay(prefix or "xgwsim-%d" % os.getpid(), hosts,
                                              subnet or wire.DEFAULT_SUBNET)
            for n in range(1, hosts + 1):
                netns = self.underlay.namespace(n) if self.underlay else None
                bridges = dom0.make(backend, real, ovsdb, netns)
                self._bridges.append(bridges)
                if self.underlay:
                    self.underlay.plug(n, getattr(bridges, "ovs", None))
                    bridges.uplinks = frozenset([wire.MANAGEMENT_BRIDGE])
                name = "xgw-sim" if n == 1 else "xgw-sim-%d" % n
                if n == 1:
                    host, _pool = seed(engine, hostname=name, bridges=bridges, isos=isos)
                    if self.underlay:
                        configure_management(engine, host, self.underlay.address(1),
                                             self.underlay.netmask)
                else:
                    host = add_host(engine, name, backend, bridges,
                                    self.underlay.address(n) if self.underlay else "127.0.0.1")
                self.hosts.append(host)
            engine.power = self._power
            vms.sync_bridges(engine)
        except BaseException:
            self.close()
            raise

    def namespace(self, host):
        """The network namespace of ``host`` (a ref or a number from 1); None when it is
        the one this runs in."""
        n = self._number(host)
        return self.underlay.namespace(n) if self.underlay else None

    def ovsdb(self, host):
        """The OVSDB remote (unix:PATH) of the host's Open vSwitch; None without one."""
        ovs = getattr(self._bridges[self._number(host) - 1], "ovs", None)
        return ovs.remote if ovs is not None else None

    def bridges(self, host):
        return self._bridges[self._number(host) - 1]

    def power_on(self, host):
        """The host boots again: live, enabled, back on the wire, its bridges remade."""
        from agent.xapisim import vms
        ref = self.hosts[self._number(host) - 1]
        engine = self.engine
        with engine.lock:
            metrics = engine.record("host", ref)["metrics"]
            engine.set_field("host_metrics", metrics, "live", True)
            engine.set_field("host", ref, "enabled", True)
            self._power(ref, True)
            vms.sync_bridges(engine)

    def host_lines(self):
        """One line per host of a pool in namespaces (number, name, namespace, management
        address, OVSDB remote or -), then the underlay's (namespace, address), for
        whoever drives the hosts (tests, the demo)."""
        if not self.underlay:
            return []
        return ["host %d %s netns %s address %s ovsdb %s" % (
            n, self.engine.record("host", ref)["name_label"], self.namespace(n),
            self.underlay.address(n), self.ovsdb(n) or "-")
            for n, ref in enumerate(self.hosts, 1)] + [
            "underlay netns %s address %s" % (self.underlay.wire.name, self.underlay.outside)]

    def describe(self):
        if self.underlay:
            return "%d hosts in namespaces %s-h1..h%d, %s bridges, underlay %s" % (
                len(self.hosts), self.underlay.prefix, len(self.hosts), self.backend,
                self.underlay.subnet)
        bridges = self._bridges[0]
        return bridges.describe() if bridges.backend else ""

    def close(self):
        """Remove what was made: each host's bridges, its OVS, the namespaces."""
        try:
            for bridges in self._bridges:
                try:
                    bridges.close()
                except Exception:  # the namespaces go below anyway
                    pass
        finally:
            self._bridges = []
            if self.underlay is not None:
                self.underlay.close()
                self.underlay = None

    def _number(self, host):
        return host if isinstance(host, int) else self.hosts.index(host) + 1

    def _power(self, host, on):
        if self.underlay is not None and host in self.hosts:
            self.underlay.set_link(self.hosts.index(host) + 1, on)


def host_disable(engine, session, host):
    engine.set_field("host", host, "enabled", False)
    return ""  # a void call's answer on the wire


def host_enable(engine, session, host):
    record = engine.record("host", host)
    metrics = engine.objects["host_metrics"].get(record["metrics"])
    if metrics is not None and not metrics["live"]:
        raise XapiFailure("HOST_OFFLINE", host)
    engine.set_field("host", host, "enabled", True)
    return ""


def host_shutdown(engine, session, host):
    record = engine.record("host", host)
    if record["enabled"]:
        raise XapiFailure("HOST_NOT_DISABLED")
    guests = [vm for vm in record["resident_VMs"]
              if not engine.record("VM", vm)["is_control_domain"]]
    if guests:
        raise XapiFailure("HOST_IN_USE", host, "VM", guests[0])
    if record["metrics"] in engine.objects["host_metrics"]:
        engine.set_field("host_metrics", record["metrics"], "live", False)
    from agent.xapisim.vms import sync_bridges
    sync_bridges(engine)  # a host that is off has no bridges
    if engine.power is not None:
        engine.power(host, False)  # and is off the wire
    return ""
