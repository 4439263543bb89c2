"""Private networks that span the pool: their VNIs and the shape of their VXLAN tunnels
(pure, no I/O).

XAPI provides the frame, not the tunnels: ``network.create``, then ``tunnel.create(
transport_PIF, network, "vxlan")`` on each host makes an access PIF there, and plugging it
makes networkd create the network's Open vSwitch bridge on that host. No tunnel port is
made by XAPI: each host's daemon completes the network with its own VXLAN ports, and this
module says which.

A spanning network is one whose other_config holds ``xapi-gateway.vni`` (what ``span:
pool`` writes; ``xe network-param-set other-config:xapi-gateway.vni=5001`` plus ``xe
tunnel-create`` on each host does the same by hand):

- **VNI**: the VXLAN key of every port of the network, 1 to 16777215, unique in the pool.
  Two networks with one VNI would be one segment on the wire: the network with the lowest
  uuid keeps it (every host computes the same from the pool database alone), every other
  one is ``invalid`` and gets no port anywhere until it is given a free VNI. A VNI that Xen
  Orchestra's SDN controller recorded for a VXLAN network of its own
  (``xo:sdn-controller:vni``) is taken as well. New networks get the lowest free VNI
  (``allocate``).
- **Members**: the live hosts with the network's tunnel, its access PIF plugged, an IPv4
  address on the transport PIF and the Open vSwitch backend (XAPI's tunnels need it:
  ``OPENVSWITCH_NOT_ACTIVE``). A live host that falls short is left out of the shape and
  the network's ``problems`` say why and what to do; the others stay connected. Linux
  bridges are refused, not served by a kernel vxlan device with per-peer FDB entries:
  XAPI makes no tunnel, access PIF or bridge there, so such a device would be outside
  its model (VM placement, networkd's rebuilds), and entry points refuse the span.
- **Shape**: a star around the center, which is the host placement chose to serve the
  network's gateway (agent.core.placement.place_network: the ``xapi-gateway.host`` pin,
  else the lowest uuid among the live, enabled hosts with the network attached), so the
  gateway's traffic crosses one tunnel. When that host is no member, the lowest uuid of
  the enabled members (then of all members) is the center. The hub has one port per
  spoke, each spoke one port to the hub: a tree, so OVS's flooding between a bridge's
  tunnel ports makes no loop, and a spoke's broadcast reaches every other spoke through
  the hub. The shape is recomputed from the pool database, so it follows hosts joining,
  leaving, dying and the center moving on failover.
- **Port**: ``type=vxlan``, ``options:remote_ip`` = the peer's transport-PIF address,
  ``options:key`` = the VNI, named ``v<VNI, 6 hex><peer address, 8 hex>`` (15
  characters, a kernel device name's limit, unique per host since a port's VNI and
  peer are).
- **MTU**: VXLAN over IPv4 adds 50 bytes (outer Ethernet 14, IPv4 20, UDP 8, VXLAN 8), so
  on a 1500-byte underlay the network's MTU must be 1450. The network is created with
  ``MTU=1450`` through XAPI (networkd sets it on the bridge and the VIFs' backends on
  every host: XAPI's own mechanism, which survives reboots and every networkd rebuild,
  unlike an ``mtu_request`` the daemon would write behind networkd's back); a network
  whose MTU does not fit a member's transport MTU is reported in ``warnings`` (frames
  above the difference are dropped silently; measured on real OVS).
"""
import functools
import ipaddress
from collections import namedtuple

from agent.core import desired, model, placement, ports as portsmod
from agent.errors import GatewayInvalid

VNI = desired.VNI
XO_VNI = "xo:sdn-controller:vni"
XO_ENCAPSULATION = "xo:sdn-controller:encapsulation"
OVERHEAD = 50                       # outer Ethernet + IPv4 + UDP + VXLAN header
UNDERLAY_MTU = 1500
MTU = UNDERLAY_MTU - OVERHEAD       # what a spanning network is created with
OPENVSWITCH = "openvswitch"
PROTOCOL = "vxlan"
KIND = "tunnel"                     # the daemon's OVS ports of this concern (core.ports)
PEER_KEY = "xapi-gateway-peer"      # external_ids of a tunnel port: the peer host's uuid
VNI_KEY = "xapi-gateway-vni"

INVALID = "invalid"       # bad or duplicate VNI: no port on any host
IDLE = "idle"             # fewer than two members: nothing to connect
READY = "ready"           # every live host of the pool is a member
PARTIAL = "partial"       # some live hosts are left out (problems say why)


class Member(namedtuple("Member", "host address mtu attached device")):
    """One host's tunnel of a network: ``host`` (uuid), ``address`` (the transport PIF's
    IP as XAPI holds it, "" when none), ``mtu`` (the transport PIF's MTU, int),
    ``attached`` (the access PIF is plugged), ``device`` (the transport PIF's device)."""
    __slots__ = ()


class Spanning(namedtuple("Spanning", "uuid name bridge vni mtu members error")):
    """A network with ``xapi-gateway.vni``: ``vni`` an int (None when it is not one),
    ``mtu`` the network's MTU (int), ``members`` {host uuid: Member}, ``error`` why it is
    invalid ("" when it is not)."""
    __slots__ = ()


class Port(namedtuple("Port", "network bridge name remote_ip key peer")):
    """A VXLAN port that should exist on one host: on ``bridge`` (the network's bridge),
    to ``remote_ip`` (text) with ``key`` (the VNI, int); ``peer``: the peer host's uuid;
    ``network``: the network's uuid (what marks the port the daemon's own)."""
    __slots__ = ()

    @property
    def options(self):
        """The Interface's options column."""
        return {"remote_ip": self.remote_ip, "key": str(self.key)}

    def spec(self):
        """The agent.core.ports.PortSpec the OVSDB writer makes: a vxlan Interface, marked
        as the daemon's tunnel port of the network (the group: all of a network's ports on
        this host are on its one bridge)."""
        return portsmod.PortSpec(self.name, self.bridge, KIND, self.network, PROTOCOL,
                                 self.options, None, {PEER_KEY: self.peer,
                                                      VNI_KEY: str(self.key)})


class Shape(namedtuple("Shape", "network name bridge vni state center reason ports "
                                "problems warnings")):
    """The tunnels of one spanning network across the pool.

    ``state``: INVALID, IDLE, READY or PARTIAL; ``center``: the hub's placement.Host (None
    without members); ``reason``: why it is the center, or why the network is invalid;
    ``ports``: {host uuid: tuple of Port} for every member (the hub: one per spoke, a
    spoke: one); ``problems``: ((host uuid, what keeps it out and how to fix it), ...);
    ``warnings``: ((host uuid, text), ...) of things that work but not fully (the MTU)."""
    __slots__ = ()

    def counts(self, hosts):
        """{host uuid: number of ports} for every host of ``hosts`` (0 when none)."""
        return {h.uuid: len(self.ports.get(h.uuid, ())) for h in hosts}

    def as_dict(self, hosts):
        """What status and the API show."""
        names = {h.uuid: h.name for h in hosts}
        return {"vni": self.vni, "state": self.state,
                "center": self.center.uuid if self.center else None,
                "center_name": self.center.name if self.center else None,
                "reason": self.reason,
                "ports": [{"host": h.uuid, "host_name": h.name,
                           "ports": len(self.ports.get(h.uuid, ()))} for h in hosts],
                "problems": [{"host": u, "host_name": names.get(u), "problem": t}
                             for u, t in self.problems],
                "warnings": [{"host": u, "host_name": names.get(u), "warning": t}
                             for u, t in self.warnings]}


# ---- from XAPI's records ---------------------------------------------------------------------
def read(networks, pifs, tunnels):
    """{network uuid: Spanning} of the networks of ``networks`` ({ref: record}) that hold
    ``xapi-gateway.vni``, with their tunnels (``tunnels``: tunnel records, ``pifs``: PIF
    records, each {ref: record}). VNIs are checked for syntax here, for uniqueness by
    ``unique``."""
    pifs, tunnels = pifs or {}, tunnels or {}
    members = {}
    for rec in tunnels.values():
        access, transport = pifs.get(rec.get("access_PIF")), pifs.get(rec.get("transport_PIF"))
        if access is None:
            continue
        transport = transport or {}
        member = Member(access.get("host"), (transport.get("IP") or "").strip(),
                        _int(transport.get("MTU"), UNDERLAY_MTU),
                        bool(access.get("currently_attached")), transport.get("device", ""))
        members.setdefault(access.get("network"), []).append(member)
    found = {}
    for ref, rec in networks.items():
        config = rec.get("other_config", {})
        if VNI not in config:
            continue
        uuid = rec.get("uuid", ref)
        vni, error = None, ""
        try:
            vni = model.parse_vni(config[VNI], VNI)
        except GatewayInvalid as exc:
            error = str(exc)
        found[uuid] = Spanning(uuid, rec.get("name_label", ""), rec.get("bridge", ""), vni,
                               _int(rec.get("MTU"), UNDERLAY_MTU),
                               tuple(sorted(members.get(ref, ()), key=lambda m: m.host or "")),
                               error)
    return found


def host_uuids(hosts):
    """{host ref: uuid} of XAPI host records (a Member's ``host`` is a ref until mapped)."""
    return {ref: rec.get("uuid", ref) for ref, rec in (hosts or {}).items()}


def backends(hosts):
    """{host uuid: network backend} from the hosts' software_version (xapi writes
    ``network_backend``; a host without it counts as Open vSwitch, XAPI's default)."""
    return {rec.get("uuid", ref): rec.get("software_version", {}).get("network_backend",
                                                                      OPENVSWITCH)
            for ref, rec in (hosts or {}).items()}


def foreign_vnis(networks):
    """{VNI: network uuid} that Xen Orchestra's SDN controller holds for VXLAN networks
    of its own (a GRE key is another name space on the wire)."""
    taken = {}
    for ref, rec in networks.items():
        config = rec.get("other_config", {})
        if VNI in config or XO_VNI not in config:
            continue
        if config.get(XO_ENCAPSULATION, "gre") != PROTOCOL:
            continue
        try:
            taken.setdefault(model.parse_vni(config[XO_VNI]), rec.get("uuid", ref))
        except GatewayInvalid:
            continue
    return taken


def unique(spanning, foreign=None):
    """``spanning`` with a duplicate VNI made an error: the lowest uuid keeps a VNI, the
    others are told which network has it. ``foreign``: {VNI: network uuid} held by others
    (foreign_vnis), which always keep theirs."""
    foreign = foreign or {}
    owner = {}
    out = {}
    for uuid in sorted(spanning):
        net = spanning[uuid]
        if net.error:
            out[uuid] = net
            continue
        if net.vni in foreign:
            out[uuid] = net._replace(error="%s %d is already used by network %s (Xen "
                                     "Orchestra's SDN controller); give this network a free "
                                     "VNI" % (VNI, net.vni, foreign[net.vni]))
        elif net.vni in owner:
            holder = spanning[owner[net.vni]]
            out[uuid] = net._replace(error="%s %d is already used by network %s (%s), which "
                                     "keeps it (the lowest uuid does); give this network a "
                                     "free VNI" % (VNI, net.vni, holder.name, holder.uuid))
        else:
            owner[net.vni] = uuid
            out[uuid] = net
    return out


def used(networks):
    """The VNIs in use in ``networks`` ({ref: record}): every parsable ``xapi-gateway.vni``
    (duplicates included) and the foreign ones."""
    taken = set(foreign_vnis(networks))
    for rec in networks.values():
        value = rec.get("other_config", {}).get(VNI)
        if value is None:
            continue
        try:
            taken.add(model.parse_vni(value))
        except GatewayInvalid:
            continue
    return taken


def allocate(networks):
    """The lowest VNI not used in ``networks`` ({ref: record}); GatewayInvalid when every
    one is taken."""
    taken = used(networks)
    low, high = model.VNI_RANGE
    vni = low
    while vni in taken:
        vni += 1
    if vni > high:
        raise GatewayInvalid("every VNI from %d to %d is in use" % (low, high), field="vni")
    return vni


def conflict(networks, vni, exclude=None):
    """Why ``vni`` cannot be given to a network (None when it can): the network of
    ``networks`` ({ref: record}, the one of ref ``exclude`` left out) that holds it."""
    others = {r: rec for r, rec in networks.items() if r != exclude}
    foreign = foreign_vnis(others)
    if vni in foreign:
        return "VNI %d is already used by network %s (Xen Orchestra's SDN controller)" \
            % (vni, foreign[vni])
    for rec in sorted(others.values(), key=lambda r: r.get("uuid", "")):
        try:
            theirs = model.parse_vni(rec.get("other_config", {}).get(VNI, ""))
        except GatewayInvalid:
            continue
        if theirs == vni:
            return "VNI %d is already used by network %s (%s)" % (
                vni, rec.get("name_label", ""), rec.get("uuid", ""))
    return None


# ---- the shape -------------------------------------------------------------------------------
def shape(pool, net, center, uuids=None, backend=None):
    """The Shape of the Spanning ``net`` in the placement.Pool ``pool``. ``center``: the
    placement.Decision for the network (place_network); ``uuids``: {host ref: uuid} when
    members name hosts by ref; ``backend``: {host uuid: network backend}."""
    uuids, backend = uuids or {}, backend or {}
    if net.error:
        return Shape(net.uuid, net.name, net.bridge, net.vni, INVALID, None, net.error, {},
                     (), ())
    by_host = {}
    for m in net.members:
        by_host.setdefault(uuids.get(m.host, m.host), []).append(m)
    members, problems, warnings, addresses = [], [], [], {}
    for host in pool.hosts:
        if not host.up:   # dead in XAPI, or silent to this host's heartbeats
            continue
        trouble, found = _member(host, by_host.get(host.uuid, ()),
                                 backend.get(host.uuid, OPENVSWITCH))
        if trouble is None:
            address = found.address
            if address in addresses:
                trouble = ("its transport PIF %s has address %s, as host %s's does; give "
                           "each host its own transport address" % (found.device, address,
                                                                    addresses[address].name))
        if trouble is not None:
            problems.append((host.uuid, trouble))
            continue
        addresses[found.address] = host
        members.append((host, found))
        if net.mtu + OVERHEAD > found.mtu:
            warnings.append((host.uuid, "network MTU %d + %d bytes of VXLAN exceed the MTU %d "
                             "of transport PIF %s: larger frames are dropped; set the "
                             "network's MTU to %d" % (net.mtu, OVERHEAD, found.mtu,
                                                      found.device, found.mtu - OVERHEAD)))
    hub, reason = _center(members, center)
    ports = {}
    if hub is not None and len(members) > 1:
        hub_address = dict((h.uuid, m.address) for h, m in members)[hub.uuid]
        spokes = [(h, m) for h, m in members if h.uuid != hub.uuid]
        ports[hub.uuid] = tuple(_port(net, m.address, h.uuid) for h, m in spokes)
        for h, _m in spokes:
            ports[h.uuid] = (_port(net, hub_address, hub.uuid),)
    elif hub is not None:
        ports[hub.uuid] = ()
    state = IDLE if len(members) < 2 else PARTIAL if problems else READY
    return Shape(net.uuid, net.name, net.bridge, net.vni, state, hub, reason, ports,
                 tuple(problems), tuple(warnings))


def _member(host, members, backend):
    """(None, Member) when ``host`` can carry the network, else (what is wrong, None)."""
    if backend_problem(backend):
        return "it " + backend_problem(backend), None
    if not members:
        return ("it has no tunnel of this network: run tunnel.create(<transport PIF>, "
                "<network>, \"vxlan\") for it (xe tunnel-create)"), None
    m = members[0]
    if len(members) > 1:
        return "it has %d tunnels of this network; keep one (xe tunnel-destroy)" % \
            len(members), None
    trouble = transport_problem(m.device, m.address)
    if trouble:
        return "its " + trouble, None
    if not m.attached:
        return "the tunnel's access PIF is not plugged (xe pif-plug)", None
    return None, m


def backend_problem(backend):
    """Why a host on network ``backend`` cannot carry tunnels, "" when it can."""
    if backend == OPENVSWITCH:
        return ""
    return ("runs the %s network backend; XAPI's tunnels need Open vSwitch (set it with "
            "xe-switch-network-backend openvswitch and reboot)" % backend)


def transport_problem(device, address):
    """What keeps a transport PIF (``device``, its IP ``address`` as XAPI holds it) from
    carrying tunnels, "" when nothing does: it needs an IPv4 address."""
    if not address:
        return ("transport PIF %s has no IP address: configure one (xe pif-reconfigure-ip)"
                % (device or "?"))
    if _v4(address) is None:
        return "transport PIF %s has address %r, not an IPv4 address" % (device or "?",
                                                                        address)
    return ""


@functools.lru_cache(maxsize=4096)
def _v4(address):
    """The IPv4 address ``address`` (text) as an int, None when it is not one. Cached: a
    pool's few transport addresses are parsed once, not once per network and port
    (bench/tunnels_shape.py: 2 to 4 times faster)."""
    try:
        return int(ipaddress.IPv4Address(address))
    except ValueError:
        return None


def transports(hosts, pifs, device=None):
    """[(host name, PIF ref)]: the transport PIF of every host of the pool for a new
    spanning network, by host name: the PIF ``device`` (not a VLAN one), default each
    host's management PIF. ``hosts``, ``pifs``: XAPI's records ({ref: record}). Raises
    GatewayInvalid (``field`` span or transport, ``host`` its name) for the first host
    that cannot carry tunnels: another backend, no such PIF, no IPv4 address on it; what
    XAPI would refuse half way (OPENVSWITCH_NOT_ACTIVE, TRANSPORT_PIF_NOT_CONFIGURED),
    said before anything is made."""
    by_host = {}
    for ref, pif in sorted(pifs.items()):
        if pif.get("management") if device is None else \
                (pif.get("device") == device and int(pif.get("VLAN", -1)) == -1):
            by_host.setdefault(pif.get("host"), (ref, pif))
    field = "transport" if device else "span"
    found = []
    for ref, host in sorted(hosts.items(), key=lambda i: i[1].get("name_label", "")):
        name = host.get("name_label", ref)
        trouble = backend_problem(host.get("software_version", {}).get("network_backend",
                                                                       OPENVSWITCH))
        if trouble:
            raise GatewayInvalid("host %s %s" % (name, trouble), field="span", host=name)
        if ref not in by_host:
            raise GatewayInvalid("host %s has no %s to carry the tunnels" % (
                name, "PIF %s" % device if device else "management PIF"), field=field,
                host=name)
        pif_ref, pif = by_host[ref]
        trouble = transport_problem(pif.get("device"), pif.get("IP"))
        if trouble:
            raise GatewayInvalid("host %s: %s" % (name, trouble), field=field, host=name)
        found.append((name, pif_ref))
    return found


def _center(members, decision):
    """(hub Host, why) among ``members`` [(Host, Member)]."""
    if not members:
        return None, "no host can carry the network"
    chosen = decision.host if decision is not None else None
    hosts = [h for h, _m in members]
    if chosen is not None and any(h.uuid == chosen.uuid for h in hosts):
        return chosen, "the network's gateway host (%s)" % decision.reason
    why = ""
    if decision is not None and decision.state == placement.INVALID:
        why = "the gateway's host pin is invalid (%s); " % decision.reason
    elif chosen is not None:
        why = "the gateway host %s cannot carry the tunnels; " % chosen.name
    enabled = sorted((h for h in hosts if h.enabled), key=lambda h: h.uuid)
    if enabled:
        return enabled[0], why + "lowest uuid among the enabled hosts that carry the network"
    return sorted(hosts, key=lambda h: h.uuid)[0], why + \
        "no enabled host carries the network; lowest uuid among those that do"


def _port(net, remote, peer):
    name = "v%06x%08x" % (net.vni, _v4(remote))
    return Port(net.uuid, net.bridge, name, remote, net.vni, peer)


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


# ---- everything at once ----------------------------------------------------------------------
def shapes(records, pool=None):
    """{network uuid: Shape} of every spanning network, from XAPI's records: {"network",
    "PIF", "tunnel", "host", "host_metrics"} (each {ref: record}; the lower-case "pif"
    too). ``pool``: the placement.Pool of these records when the caller has it."""
    networks = records.get("network") or {}
    pifs = records.get("PIF") or records.get("pif") or {}
    hosts = records.get("host") or {}
    if pool is None:
        pool = placement.snapshot(hosts, records.get("host_metrics"), networks, pifs)
    spanning = unique(read(networks, pifs, records.get("tunnel")), foreign_vnis(networks))
    pins = {rec.get("uuid", ref): rec.get("other_config", {}).get(desired.HOST, "")
            for ref, rec in networks.items()}
    uuids, kinds = host_uuids(hosts), backends(hosts)
    out = {}
    for uuid, net in spanning.items():
        decision = placement.place_network(pool, "", uuid, _pin(pins.get(uuid, "")))
        out[uuid] = shape(pool, net, decision, uuids, kinds)
    return out


def ports_on(shapes_, host):
    """The Ports that host ``host`` (uuid) should have, sorted by name."""
    return tuple(sorted((p for s in shapes_.values() for p in s.ports.get(host, ())),
                        key=lambda p: p.name))


def _pin(value):
    try:
        return model.parse_host(value, desired.HOST)
    except GatewayInvalid:
        return ""
