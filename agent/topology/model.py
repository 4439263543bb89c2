"""A topology document, parsed and validated (pure, except ``load`` which reads a file).

The document (YAML or JSON)::

    name: lab                        # the topology's name: the mark on what it manages
    networks:                        # made first, in this order
      - name: private                # 1-64 letters, digits, '.', '_', '-'
        description: ...             # optional, default ""
        vlan: {tag: 100, pif: eth0}  # optional: a VLAN network (pif default eth0)
        link: {parent: lab, tag: 102}  # optional: a VLAN (1-4094) of another private
                                     # network: of this file, or the host's (name or uuid)
        span: pool                   # optional: host (default) or pool: across the pool's
                                     # hosts through VXLAN tunnels (MTU 1450)
        vni: 5001                    # optional, span pool: the VXLAN id (default: free)
        transport: eth1              # optional, span pool: the PIF carrying the tunnels
                                     # (default: each host's management PIF)
        gateway:                     # optional
          address: 172.16.0.1/24     # the gateway's address with prefix
          nat: true                  # optional, default true
          public: false              # optional: true allows a non-private subnet
          inbound: [192.0.2.0/24]    # optional: outside networks routed in, not NATed
          host: xcp-host-1           # optional: pool host (uuid or name) serving it
          forwards:                  # optional port forwards to hosts of the subnet
            - {proto: tcp, port: 8080, to: 172.16.0.3:80}   # to: ADDRESS[:PORT]
    vms:                             # made after the networks, in this order
      - name: Controller
        template: Other install media   # default
        memory_mib: 4096             # default 256, 128 to 1048576; or `memory: 4GiB`
        vcpus: 2                     # default 1, 1 to 64
        disks: [{size_gib: 50, sr: Local storage}]  # 1-2040 GiB; sr default: the pool's
        nics: [pxe, private, br100]  # required (may be []): networks in device order
        iso: ubuntu-22.04-server.iso # optional: in the CD drive
        boot: ncd                    # default dc: c disk, d CD, n network
        himn: false                  # the host internal management network, as the
                                     # XenCenter plug-in attaches it (device 9)
        start: false                 # start it when it is created, or when halted
        host: xcp-host-2             # optional: the pool host (uuid or name) it starts on

Defaults and limits are the service layer's (agent/service/vms.py, networks.py); a
gateway's values are agent.core.model's, as for the config file, xe and the API. A NIC
names a network of this file, or one that exists on the host (checked when planning).
Memory is ``memory_mib`` (a whole number of MiB) or ``memory`` with a binary unit,
``512MiB`` / ``4 GiB`` (not both; ``GB`` is refused as ambiguous).

Every error is an InvalidInput whose ``details['field']`` is the path of the bad value
(``vms[2].nics[1]``) and whose message says what to write instead. Unknown keys are
errors, with a suggestion for a likely typo, and so is a key given twice.
"""
import difflib
import io
import json
import os
import re
from collections import namedtuple

from agent.core import conflicts, model as core
from agent.errors import GatewayInvalid
from agent.service.errors import InvalidInput

# The service layer's defaults and limits (agent/service/vms.py, Vms.create); a test
# checks that both accept and refuse the same values.
DEFAULT_TEMPLATE = "Other install media"
DEFAULT_MEMORY_MIB = 256
MEMORY_MIB = (128, 1024 * 1024)
DEFAULT_VCPUS = 1
VCPUS = (1, 64)
DEFAULT_BOOT = "dc"
MAX_DISKS = 15
DISK_GIB = (1, 2040)
HIMN_DEVICE = 9               # the HIMN's VIF device: NICs may use 0..8 beside it
VLAN_TAG = (0, 4094)
DEFAULT_PIF = "eth0"

_BOOT = re.compile(r"^[cdn]{1,3}$")
_MEMORY = re.compile(r"^\s*(\d+)\s*(MiB|GiB)\s*$", re.I)
_MEMORY_DECIMAL = re.compile(r"^\s*\d+(\.\d+)?\s*(M|G|MB|GB)\s*$", re.I)

TOP_KEYS = ("name", "networks", "vms")
NETWORK_KEYS = ("name", "description", "vlan", "gateway", "link", "span", "vni",
                "transport")
VLAN_KEYS = ("tag", "pif")
LINK_KEYS = ("parent", "tag")
GATEWAY_KEYS = ("address", "nat", "forwards", "public", "inbound", "host")
FORWARD_KEYS = ("proto", "port", "to")
VM_KEYS = ("name", "template", "memory_mib", "memory", "vcpus", "disks", "nics", "iso",
           "boot", "himn", "start", "host")
DISK_KEYS = ("size_gib", "sr")


# A forward is agent.core.model's: this file and the other entry points accept the same.
Forward = core.Forward


class GatewaySpec(namedtuple("GatewaySpec", "address nat forwards public inbound host")):
    """``address``: an IPv4Interface; ``forwards``: a tuple of core.model.Forward, sorted;
    ``public``: a subnet outside the private and shared ranges is meant; ``inbound``: a
    sorted tuple of IPv4Network (core.model.parse_inbound); ``host``: the pool host pinned
    to serve it ("" when not pinned)."""
    __slots__ = ()

    def __str__(self):
        return "%s%s%s%s%s" % (self.address, " nat" if self.nat else "",
                               " public" if self.public else "",
                               " inbound %s" % core.format_inbound(self.inbound)
                               if self.inbound else "",
                               " host %s" % self.host if self.host else "")

    def to_service(self):
        """The ``gateway`` argument of Networks.create / set_gateway. ``forwards`` and
        ``public`` only when set, so a plain gateway needs no support for them."""
        gateway = {"address": str(self.address), "nat": self.nat}
        if self.forwards:
            gateway["forwards"] = [f.as_dict() for f in self.forwards]
        if self.public:
            gateway["public"] = True
        if self.inbound:
            gateway["inbound"] = [core.format_inbound((n,)) for n in self.inbound]
        if self.host:
            gateway["host"] = self.host
        return gateway


GatewaySpec.__new__.__defaults__ = (False, (), "")


class VlanSpec(namedtuple("VlanSpec", "tag pif")):
    __slots__ = ()

    def __str__(self):
        return "VLAN %d on %s" % (self.tag, self.pif)

    def to_service(self):
        return {"tag": self.tag, "pif": self.pif}


class LinkSpec(namedtuple("LinkSpec", "parent tag")):
    """``parent``: a network of the file, or of the host (name or uuid), as written;
    ``tag``: 1-4094 (agent.core.model.parse_tag)."""
    __slots__ = ()

    def __str__(self):
        return "VLAN %d of %s" % (self.tag, self.parent)

    def to_service(self):
        return {"parent": self.parent, "tag": self.tag}


class NetworkSpec(namedtuple("NetworkSpec", "name description vlan gateway link span vni "
                                          "transport")):
    """``link``: a LinkSpec, or None (not a VLAN of another private network); ``span``:
    "host" or "pool"; ``vni``: the VNI asked for (None: a free one); ``transport``: the
    PIF device carrying the tunnels (None: the management PIF)."""
    __slots__ = ()

    def to_service(self):
        """The span arguments of Networks.create (none for a host-local network)."""
        if self.span != "pool":
            return {}
        extra = {"span": "pool"}
        if self.vni is not None:
            extra["vni"] = self.vni
        if self.transport is not None:
            extra["transport"] = self.transport
        return extra


NetworkSpec.__new__.__defaults__ = (None, "host", None, None)


class DiskSpec(namedtuple("DiskSpec", "size_gib sr")):
    """``sr``: an SR's name or uuid, or None for the pool's default SR."""
    __slots__ = ()

    def __str__(self):
        return "%d GiB%s" % (self.size_gib, "" if self.sr is None else " on %s" % self.sr)

    def to_service(self):
        disk = {"size_gib": self.size_gib}
        if self.sr is not None:
            disk["sr"] = self.sr
        return disk


class VmSpec(namedtuple("VmSpec", "name template memory_mib vcpus disks nics iso boot "
                                  "himn start host")):
    """``host``: the pool host it starts on (core.model.parse_host's syntax), "" for
    any."""
    __slots__ = ()


class Topology(namedtuple("Topology", "name networks vms")):
    """``networks``: a tuple of NetworkSpec, ``vms`` of VmSpec, in the file's order."""
    __slots__ = ()

    def network(self, name):
        for spec in self.networks:
            if spec.name == name:
                return spec
        return None


# ---- reading files -----------------------------------------------------------------------
def load(path):
    """Read a topology file: JSON for ``.json``, YAML for ``.yaml`` / ``.yml``, otherwise
    guessed from the content (see ``loads``). Errors name the file (and the line
    where the parser gives one)."""
    try:
        with io.open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise InvalidInput("%s is not UTF-8 text (byte %d); save it as UTF-8"
                           % (path, exc.start), field="file", file=path)
    except (IOError, OSError) as exc:
        raise InvalidInput("cannot read the topology file %s: %s"
                           % (path, exc.strerror or exc), field="file", file=path)
    ext = os.path.splitext(path)[1].lower()
    fmt = "json" if ext == ".json" else "yaml" if ext in (".yaml", ".yml") else None
    document = loads(text, source=path, fmt=fmt)
    try:
        return parse(document)
    except InvalidInput as exc:
        raise InvalidInput("%s: %s" % (path, exc.message), **dict(exc.details, file=path))


def loads(text, source="<topology>", fmt=None):
    """The document (plain dicts and lists) in ``text``; ``fmt`` "json", "yaml" or None
    (guess: JSON if it starts with ``{`` and parses as JSON, YAML otherwise)."""
    if fmt is None and text.lstrip().startswith("{"):
        try:
            document = _json(text, source)
        except InvalidInput as error:  # maybe YAML's {key: value} form; else JSON's error
            try:
                document = _yaml(text, source)
            except InvalidInput:
                raise error
    else:
        document = _json(text, source) if fmt == "json" else _yaml(text, source)
    if document is None:
        raise InvalidInput("%s is empty; a topology needs at least a name" % source,
                           field="file", file=source)
    return document


def _json(text, source):
    def pairs(items):
        seen = {}
        for key, value in items:
            if key in seen:
                raise _Duplicate(key)
            seen[key] = value
        return seen
    try:
        return json.loads(text, object_pairs_hook=pairs)
    except _Duplicate as exc:
        raise InvalidInput("%s: key %r appears twice in one object; keep one"
                           % (source, exc.key), field="file", file=source)
    except ValueError as exc:  # json.JSONDecodeError, with the line and column
        line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        where = "" if line is None else " line %d, column %d" % (line, column)
        raise InvalidInput("%s%s: not valid JSON: %s" % (source, where,
                                                         getattr(exc, "msg", exc)),
                           field="file", file=source, line=line, column=column)


class _Duplicate(Exception):
    def __init__(self, key, line=None):
        super(_Duplicate, self).__init__(key)
        self.key, self.line = key, line


def _yaml(text, source):
    try:
        import yaml
    except ImportError:
        raise InvalidInput("%s is YAML and PyYAML is not installed: install it (pip "
                           "install PyYAML) or write the topology as JSON" % source,
                           field="file", file=source)
    try:
        return yaml.load(text, Loader=_loader(yaml))  # a SafeLoader: plain data only
    except _Duplicate as exc:
        raise InvalidInput("%s line %d: key %r appears twice in one mapping; keep one"
                           % (source, exc.line, exc.key), field="file", file=source,
                           line=exc.line)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if context:
            problem = "%s (%s)" % (problem, context)
        if mark is None:
            raise InvalidInput("%s: not valid YAML: %s" % (source, problem), field="file",
                               file=source)
        raise InvalidInput("%s line %d, column %d: not valid YAML: %s"
                           % (source, mark.line + 1, mark.column + 1, problem),
                           field="file", file=source, line=mark.line + 1,
                           column=mark.column + 1)


_LOADER = []


def _loader(yaml):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the
    last one silently)."""
    if not _LOADER:
        class Loader(yaml.SafeLoader):
            def construct_mapping(self, node, deep=False):
                seen = set()
                for key_node, _value in node.value:
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        duplicate = key in seen
                        seen.add(key)
                    except TypeError:  # an unhashable key: SafeLoader reports it
                        duplicate = False
                    if duplicate:
                        raise _Duplicate(key, key_node.start_mark.line + 1)
                return yaml.SafeLoader.construct_mapping(self, node, deep=deep)
        _LOADER.append(Loader)
    return _LOADER[0]


# ---- validation --------------------------------------------------------------------------
def parse(document):
    """A Topology from a document (dicts and lists, as YAML or JSON give them)."""
    doc = _mapping(document, "", TOP_KEYS, required=("name",), what="a topology")
    name = _name(doc["name"], "name", "the topology")
    networks = []
    claims = conflicts.Claims()  # subnets and ports of the file's gateways so far
    for i, item in enumerate(_list(doc.get("networks", []), "networks", "networks")):
        path = "networks[%d]" % i
        spec = _network(item, path)
        for j, other in enumerate(networks):
            if other.name == spec.name:
                _fail(path + ".name", "network %s is also networks[%d]"
                      % (spec.name, j), "give each network its own name")
        if spec.gateway is not None:
            clash = claims.conflict(spec.gateway.address.network, spec.gateway.forwards)
            if clash is not None:
                _fail(path + ".gateway." + ("address" if clash.index is None else
                                            "forwards[%d].port" % clash.index),
                      clash.reason, "give each gateway a subnet of its own" if
                      clash.index is None else "a port of the host can be forwarded once "
                      "(on every address): choose another")
            claims.add(spec.name, spec.gateway.address.network, spec.gateway.forwards)
        networks.append(spec)
    vms = []
    for i, item in enumerate(_list(doc.get("vms", []), "vms", "VMs")):
        spec = _vm(item, "vms[%d]" % i)
        for j, other in enumerate(vms):
            if other.name == spec.name:
                _fail("vms[%d].name" % i, "VM %s is also vms[%d]" % (spec.name, j),
                      "give each VM its own name")
        vms.append(spec)
    return Topology(name, tuple(networks), tuple(vms))


def _network(item, path):
    item = _mapping(item, path, NETWORK_KEYS, required=("name",), what="a network")
    name = _name(item["name"], path + ".name", "the network")
    description = item.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        _fail(path + ".description", "must be text, not %s" % _kind(description),
              "quote it")
    vlan = None if item.get("vlan") is None else _vlan(item["vlan"], path + ".vlan")
    gateway = None
    if item.get("gateway") is not None:
        gateway = _gateway(item["gateway"], path + ".gateway")
    span, vni, transport = "host", None, None
    try:
        if item.get("span") is not None:
            span = core.parse_span(item["span"], path + ".span")
        if item.get("vni") is not None:
            vni = core.parse_vni(item["vni"], path + ".vni")
        if item.get("transport") is not None:
            transport = core.parse_bridge(item["transport"], path + ".transport")
    except GatewayInvalid as exc:  # its sentence says what to do
        raise InvalidInput(str(exc), field=exc.details.get("field", path))
    if span == "pool" and vlan is not None:
        _fail(path + ".span", "a VLAN network spans the hosts that have its PIF already",
              "give span pool or vlan, not both")
    for key, value in (("vni", vni), ("transport", transport)):
        if span != "pool" and value is not None:
            _fail(path + "." + key, "%s is for a network that spans the pool (span pool)"
                  % key, "add span: pool, or remove %s" % key)
    link = None if item.get("link") is None else _link(item["link"], path + ".link")
    return NetworkSpec(name, description, vlan, gateway, link, span, vni, transport)


def _link(item, path):
    """A link's values, as the API's (agent.core.model's checks and sentences); whether
    the parent exists and the link fits with the others is the plan's question
    (agent.core.links, with the host's networks)."""
    item = _mapping(item, path, LINK_KEYS, required=LINK_KEYS, what="a link")
    if isinstance(item["tag"], bool) or not isinstance(item["tag"], int):
        _fail(path + ".tag", "%r is not a whole number" % (item["tag"],),
              "write a VLAN tag from 1 to 4094 without quotes")
    try:
        return LinkSpec(core.parse_parent(item["parent"], path + ".parent"),
                        core.parse_tag(item["tag"], path + ".tag"))
    except GatewayInvalid as exc:  # its sentence says what to do
        raise InvalidInput(str(exc), field=exc.details.get("field", path))


def _vlan(item, path):
    item = _mapping(item, path, VLAN_KEYS, required=("tag",), what="a VLAN")
    tag = _whole(item["tag"], path + ".tag", VLAN_TAG, "")
    pif = item.get("pif", DEFAULT_PIF)
    if not isinstance(pif, str) or not pif.strip():
        _fail(path + ".pif", "must name a physical interface, not %r" % (pif,),
              "write e.g. pif: eth0")
    return VlanSpec(tag, pif.strip())


def _gateway(item, path):
    item = _mapping(item, path, GATEWAY_KEYS, required=("address",), what="a gateway")
    try:
        address = core.parse_address(item["address"], path + ".address")
    except GatewayInvalid as exc:
        _fail(path + ".address", _core(exc, path + ".address"), "write the gateway's own "
              "address with the subnet's prefix, e.g. 172.16.0.1/24")
    nat = _core_bool(item.get("nat", True), path + ".nat")
    public = _core_bool(item.get("public", False), path + ".public")
    forwards = [_forward(f, "%s.forwards[%d]" % (path, i)) for i, f in
                enumerate(_list(item.get("forwards", []), path + ".forwards", "forwards"))]
    try:
        inbound = core.parse_inbound(item.get("inbound", []), path + ".inbound")
        host = core.parse_host(item["host"], path + ".host") if "host" in item else ""
        forwards = core.check_gateway(address, forwards, public, prefix=path + ".",
                                      item_field=path + ".forwards[%d]", inbound=inbound)
    except GatewayInvalid as exc:  # its sentence says what to do
        raise InvalidInput(str(exc), field=exc.details.get("field", path))
    return GatewaySpec(address, nat, forwards, public, inbound, host)


def _core_bool(value, path):
    try:
        return core.parse_bool(value, path)
    except GatewayInvalid as exc:
        _fail(path, _core(exc, path), "write true or false")


def _forward(item, path):
    """A forward from its YAML/JSON mapping: the same values as the API's."""
    item = _mapping(item, path, FORWARD_KEYS, required=FORWARD_KEYS, what="a forward")
    if isinstance(item["port"], bool) or not isinstance(item["port"], int):
        _fail(path + ".port", "%r is not a whole number" % (item["port"],),
              "write a port from 1 to 65535 without quotes")
    try:
        return core.parse_forward(item["proto"], item["port"], item["to"], path)
    except GatewayInvalid as exc:
        field = exc.details.get("field", path)
        _fail(field, _core(exc, field), {
            path + ".proto": "write tcp or udp",
            path + ".port": "choose a port from 1 to 65535",
        }.get(field, "write the address (and port) of a host on this network, e.g. "
                     "172.16.0.3:80"))


def _vm(item, path):
    item = _mapping(item, path, VM_KEYS, required=("name",), what="a VM")
    name = _name(item["name"], path + ".name", "the VM")
    if item.get("nics") is None:
        _fail(path + ".nics", "is required in a VM: its networks in device order",
              "add nics: [network, ...] (nics: [] for a VM without network)")
    template = item.get("template", DEFAULT_TEMPLATE)
    if not isinstance(template, str) or not template.strip():
        _fail(path + ".template", "must name a template, not %r" % (template,),
              "leave it out for %r" % DEFAULT_TEMPLATE)
    if "memory" in item and "memory_mib" in item:
        _fail(path + ".memory", "memory and memory_mib are both given", "keep one")
    if "memory" in item:
        memory = _memory(item["memory"], path + ".memory")
    else:
        memory = _whole(item.get("memory_mib", DEFAULT_MEMORY_MIB), path + ".memory_mib",
                        MEMORY_MIB, " (MiB)")
    vcpus = _whole(item.get("vcpus", DEFAULT_VCPUS), path + ".vcpus", VCPUS, "")
    disks = _list(item.get("disks", []), path + ".disks", "disks")
    if len(disks) > MAX_DISKS:
        _fail(path + ".disks", "%d disks are given" % len(disks),
              "give at most %d (device 3 is the CD drive)" % MAX_DISKS)
    disks = tuple(_disk(d, "%s.disks[%d]" % (path, i)) for i, d in enumerate(disks))
    nics = _list(item["nics"], path + ".nics", "network names")
    for i, nic in enumerate(nics):
        if not isinstance(nic, str) or not nic.strip():
            _fail("%s.nics[%d]" % (path, i), "must be a network's name, not %r" % (nic,),
                  "write the name of a network of this file or of the host")
    nics = tuple(n.strip() for n in nics)
    iso = item.get("iso")
    if iso is not None and (not isinstance(iso, str) or not iso.strip()):
        _fail(path + ".iso", "must name an ISO, not %r" % (iso,),
              "write the ISO's file name as the ISO library lists it")
    boot = item.get("boot", DEFAULT_BOOT)
    if not isinstance(boot, str) or not _BOOT.match(boot) or len(set(boot)) != len(boot):
        _fail(path + ".boot", "%r is not a boot order" % (boot,),
              "give boot devices in order as letters c (disk), d (CD) and n (network), "
              "each at most once, e.g. ncd")
    himn = _bool(item.get("himn", False), path + ".himn")
    if himn and len(nics) > HIMN_DEVICE:
        _fail(path + ".nics", "%d NICs take devices 0-%d, and the host internal "
              "management network takes device %d" % (len(nics), len(nics) - 1,
                                                       HIMN_DEVICE),
              "give at most %d NICs with himn: true" % HIMN_DEVICE)
    start = _bool(item.get("start", False), path + ".start")
    try:
        host = core.parse_host(item["host"], path + ".host") if "host" in item else ""
    except GatewayInvalid as exc:
        raise InvalidInput(str(exc), field=path + ".host")
    return VmSpec(name, template.strip(), memory, vcpus, disks, nics,
                  None if iso is None else iso.strip(), boot, himn, start, host)


def _disk(item, path):
    item = _mapping(item, path, DISK_KEYS, required=("size_gib",), what="a disk")
    size = _whole(item["size_gib"], path + ".size_gib", DISK_GIB, " (GiB)")
    sr = item.get("sr")
    if sr is not None and (not isinstance(sr, str) or not sr.strip()):
        _fail(path + ".sr", "must name an SR, not %r" % (sr,),
              "write an SR's name or uuid, or leave it out for the pool's default SR")
    return DiskSpec(size, None if sr is None else sr.strip())


def _memory(value, path):
    text = value if isinstance(value, str) else None
    match = _MEMORY.match(text) if text is not None else None
    if match is None:
        hint = ("%r is ambiguous (decimal or binary?); " % value
                if text is not None and _MEMORY_DECIMAL.match(text) else
                "%r is not a size; " % (value,))
        _fail(path, hint + "sizes are whole MiB or GiB",
              "write e.g. memory: 512MiB or memory: 4GiB (or memory_mib: 4096)")
    mib = int(match.group(1)) * (1024 if match.group(2).lower() == "gib" else 1)
    if not MEMORY_MIB[0] <= mib <= MEMORY_MIB[1]:
        _fail(path, "%s is %d MiB, outside %d to %d MiB" % (text.strip(), mib, MEMORY_MIB[0],
                                                            MEMORY_MIB[1]),
              "give a size in that range")
    return mib


# ---- helpers -----------------------------------------------------------------------------
def _fail(path, problem, todo):
    raise InvalidInput("%s: %s; %s" % (path, problem, todo), field=path)


def _join(path, key):
    return "%s.%s" % (path, key) if path else key


def _mapping(value, path, known, required, what):
    if not isinstance(value, dict):
        _fail(path or "topology", "must be %s (a mapping of keys to values), not %s"
              % (what, _kind(value)), "write it as key: value lines (%s)"
              % ", ".join(known))
    for key in value:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            _fail(_join(path, key), "unknown key in %s" % what,
                  ("did you mean %s? " % close[0] if close else "") +
                  "the keys are %s" % ", ".join(known))
    for key in required:
        if key not in value or value[key] is None:
            _fail(_join(path, key), "is required in %s" % what,
                  "add %s: ..." % key)
    return value


def _list(value, path, what):
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(path, "must be a list of %s, not %s" % (what, _kind(value)),
              "write it as [a, b] or as lines starting with '- '")
    return value


def _name(value, path, what):
    try:
        return core.parse_name(value, path)
    except GatewayInvalid as exc:
        _fail(path, _core(exc, path), "rename %s" % what)


def _core(exc, path):
    """agent.core.model's message without the field name it starts with."""
    text = str(exc)
    for start in (path + ": ", path + " "):
        if text.startswith(start):
            return text[len(start):]
    return text


def _whole(value, path, limits, unit):
    low, high = limits
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, "%r is not a whole number" % (value,),
              "write a number from %d to %d%s without quotes" % (low, high, unit))
    if not low <= value <= high:
        _fail(path, "%d is outside %d to %d%s" % (value, low, high, unit),
              "give a number in that range")
    return value


def _bool(value, path):
    if not isinstance(value, bool):
        _fail(path, "%r is not true or false" % (value,), "write true or false")
    return value


def _kind(value):
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false",
            int: "a number", float: "a number", type(None): "empty"}.get(
                type(value), type(value).__name__)
