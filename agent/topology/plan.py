"""Compare a topology with what XAPI has: an ordered list of actions.

Each action has a ``kind``, the ``object`` ("network" or "vm"), its ``name`` and a
``detail`` line for people, which starts with the kind's sign:

    +  create    the object does not exist: apply creates it (marked with the topology)
    ~  update    a network's gateway differs: apply sets it in place
    >  start     a VM that should run is halted: apply starts it
    -  delete    destroy and ``apply(prune=True)`` remove a marked object
    =  noop      as the file says
    ?  drift     differs in a way apply does not change (see below): reported only
    !  conflict  an object of that name exists that this topology does not manage (no
                 mark, or another topology's), or its change cannot be made: apply
                 refuses before changing anything

Order: deletes (prune only), then the networks, then the VMs, each in the file's order,
but for a network linked to a parent of the file: the parent comes first.

Links are checked here with the host's (agent.core.links), before anything changes: the
state apply leaves, and each step of the way (apply sets them one network at a time, as
the API would): a bad value or a parent that is no network is an InvalidInput naming the
field (``networks[1].link.parent``); a link that cannot be made (tag taken, a cycle, a
chain, a network with a PIF), or a change that would break a link of the host, is a
conflict.

What apply changes in place: only a network's gateway (address, NAT, forwards) and its
link (a VLAN of another private network). A VM
whose memory, vCPUs, boot order, NICs, disks, ISO or HIMN differ from the file is drift:
changing them means a shutdown and, for disks and NICs, data decisions apply should not
take alone, so it says what differs and leaves the VM as it is (destroy the VM and
re-apply to change it). Its template is not compared (a VM does not remember it). A
network's description, VLAN, span or VNI that differs is drift too. ``start: true``
starts a halted VM; ``start: false`` leaves the power state alone (it never stops a VM).

Names of networks the file does not define (a VM's NIC on the host's own network, the
template, the ISO, the SRs) are checked here, before anything changes: a name that does
not resolve is an InvalidInput naming the field (``vms[0].nics[1]``).
"""
from collections import namedtuple

from agent.core import conflicts, desired, links, tunnels
from agent.core import model as core
from agent.errors import GatewayInvalid
from agent.service.errors import InvalidInput, NotFound
from agent.service.vms import find_host
from agent.topology import model

MARK = desired.TOPOLOGY_MARK
MIB = 1024 * 1024
GIB = 1024 * MIB
NULL = "OpaqueRef:NULL"

CREATE, UPDATE, START, DELETE = "create", "update", "start", "delete"
NOOP, DRIFT, CONFLICT = "noop", "drift", "conflict"
SIGNS = {CREATE: "+", UPDATE: "~", START: ">", DELETE: "-", NOOP: "=", DRIFT: "?",
         CONFLICT: "!"}
CHANGES = (CREATE, UPDATE, START, DELETE)


class Action(namedtuple("Action", "kind object name detail spec uuid")):
    """``spec``: the NetworkSpec / VmSpec it carries out (None for a delete); ``uuid``:
    the existing object's, where there is one."""
    __slots__ = ()

    def changes(self):
        return self.kind in CHANGES

    def to_dict(self):
        return {"kind": self.kind, "object": self.object, "name": self.name,
                "detail": self.detail}

    def __str__(self):
        return self.detail


def _action(kind, obj, name, text, spec=None, uuid=None):
    return Action(kind, obj, name, "%s %s %s%s" % (SIGNS[kind], obj, name, text), spec, uuid)


def summary(actions):
    """"2 to create, 1 to update, 3 unchanged" (kinds with none left out)."""
    words = ((CREATE, "to create"), (UPDATE, "to update"), (START, "to start"),
             (DELETE, "to delete"), (NOOP, "unchanged"), (DRIFT, "drifted"),
             (CONFLICT, "in conflict"))
    parts = ["%d %s" % (n, w) for n, w in
             ((sum(1 for a in actions if a.kind == k), w) for k, w in words) if n]
    return ", ".join(parts) or "nothing"


# ---- what the host has -------------------------------------------------------------------
class Host(object):
    """The records a plan needs, read once."""

    def __init__(self, x):
        self.networks = x.network.get_all_records()
        self.pifs = x.PIF.get_all_records()
        self.hosts = x.host.get_all_records()
        everything = x.VM.get_all_records()
        self.templates = set(rec["name_label"] for rec in everything.values()
                             if rec["is_a_template"])
        self.vms = {ref: rec for ref, rec in everything.items()
                    if not rec["is_a_template"] and not rec.get("is_control_domain")}
        self.vifs = x.VIF.get_all_records()
        self.vbds = x.VBD.get_all_records()
        self.vdis = x.VDI.get_all_records()
        self.srs = x.SR.get_all_records()
        pools = x.pool.get_all_records()
        self.default_sr = next((p["default_SR"] for p in pools.values()), NULL)

    def named(self, records, name):
        return sorted(((ref, rec) for ref, rec in records.items()
                       if rec["name_label"] == name), key=lambda item: item[1]["uuid"])

    def marked(self, records, topology):
        return sorted(((ref, rec) for ref, rec in records.items()
                       if rec["other_config"].get(MARK) == topology),
                      key=lambda item: (item[1]["name_label"], item[1]["uuid"]))

    def is_himn(self, ref):
        rec = self.networks.get(ref)
        return rec is not None and \
            rec["other_config"].get("is_host_internal_management_network") == "true"

    def vm_nics(self, rec):
        """[(device, network record)] of a VM's VIFs other than the HIMN's, in order."""
        nics = []
        for vif in rec["VIFs"]:
            v = self.vifs.get(vif)
            if v is None or self.is_himn(v["network"]):
                continue
            nics.append((int(v["device"]), self.networks.get(v["network"], {})))
        return sorted(nics, key=lambda n: n[0])

    def vm_has_himn(self, rec):
        return any(vif in self.vifs and self.is_himn(self.vifs[vif]["network"])
                   for vif in rec["VIFs"])

    def vm_disks(self, rec):
        """[(size in GiB, SR record)] of a VM's disks in device order."""
        disks = []
        for vbd in rec["VBDs"]:
            b = self.vbds.get(vbd)
            if b is None or b["type"] != "Disk" or b["empty"] or b["VDI"] not in self.vdis:
                continue
            d = self.vdis[b["VDI"]]
            disks.append((int(b["userdevice"]), int(d["virtual_size"]) // GIB,
                          self.srs.get(d["SR"], {})))
        return [(size, sr) for _dev, size, sr in sorted(disks, key=lambda d: d[0])]

    def vm_iso(self, rec):
        """The VDI record in the VM's CD drive, or None."""
        for vbd in rec["VBDs"]:
            b = self.vbds.get(vbd)
            if b is not None and b["type"] == "CD" and not b["empty"]:
                return self.vdis.get(b["VDI"])
        return None

    def vlan(self, rec):
        """VlanSpec of a network on a VLAN, or None."""
        for pif in rec["PIFs"]:
            p = self.pifs.get(pif)
            if p is not None and int(p["VLAN"]) >= 0:
                return model.VlanSpec(int(p["VLAN"]), p["device"])
        return None


def _matches(rec, key):
    return key in (rec.get("uuid"), rec.get("name_label"))


def _owner(rec):
    owner = rec["other_config"].get(MARK)
    return "it has no topology mark" if owner is None else \
        "it belongs to topology %s" % owner


# ---- gateways ----------------------------------------------------------------------------
def current_gateway(ref, rec):
    """The gateway a network record has, as a GatewaySpec; None without one; the text
    of the values when they are invalid (a set_gateway replaces them)."""
    try:
        gw = desired.read_gateway(rec)
    except GatewayInvalid:
        return "invalid (%s)" % rec["other_config"].get(desired.ADDRESS, "no address")
    if gw is None:
        return None
    return model.GatewaySpec(gw.address, gw.nat, gw.forwards, gw.public, gw.inbound, gw.host)


def _gateway_change(current, wanted):
    """The detail of a gateway change, or None when equal."""
    if current == wanted:
        return None
    before = "none" if current is None else str(current)
    after = "none" if wanted is None else str(wanted)
    old = current.forwards if isinstance(current, model.GatewaySpec) else ()
    new = wanted.forwards if wanted is not None else ()
    old_keys = {f.key(): f for f in old}
    new_keys = {f.key(): f for f in new}
    changes = sorted([(f[:2], "-", f) for k, f in old_keys.items() if k not in new_keys] +
                     [(f[:2], "+", f) for k, f in new_keys.items() if k not in old_keys] +
                     [(f[:2], "~", f) for k, f in new_keys.items()
                      if k in old_keys and old_keys[k] != f])  # by protocol and port
    changes = [sign + str(f) for _key, sign, f in changes]
    text = "gateway %s" % after if before == after else "gateway %s -> %s" % (before, after)
    if changes and wanted is not None:
        text += ", forwards %s" % " ".join(changes)
    return text


def _create_text(spec):
    parts = []
    if spec.vlan is not None:
        parts.append(str(spec.vlan))
    if spec.link is not None:
        parts.append("link %s" % (spec.link,))
    if spec.span == "pool":
        parts.append("spans the pool (VNI %s)" % ("free" if spec.vni is None else spec.vni))
    if spec.gateway is not None:
        text = "gateway %s" % (spec.gateway,)
        if spec.gateway.forwards:
            text += ", forwards %s" % " ".join(str(f) for f in spec.gateway.forwards)
        parts.append(text)
    return ": " + "; ".join(parts) if parts else ""


def _overlap(spec, others):
    """The conflict sentence if ``spec``'s gateway clashes with one of ``others`` (its
    subnet, or a host port it forwards), else None."""
    if spec.gateway is None:
        return None
    claims = conflicts.Claims((name, gw.address.network, gw.forwards) for name, gw in others)
    clash = claims.conflict(spec.gateway.address.network, spec.gateway.forwards)
    return None if clash is None else clash.reason


def _other_gateways(host, topology, deleted):
    """[(network name, GatewaySpec)] of the gateways that stay on the host beside the
    file's: every network's but this topology's networks of the file's names and those
    deleted."""
    result = []
    for ref, rec in sorted(host.networks.items(), key=lambda item: item[1]["uuid"]):
        ours = rec["other_config"].get(MARK) == topology.name
        if ref in deleted or (ours and topology.network(rec["name_label"]) is not None):
            continue
        gateway = current_gateway(ref, rec)
        if isinstance(gateway, model.GatewaySpec):
            result.append((rec["name_label"], gateway))
    return result


# ---- links -------------------------------------------------------------------------------
NEW = "new:"   # the uuid a network of the file has in the checks until it is created


def current_link(host, rec):
    """A network record's link as the plan writes it ("VLAN 102 of private"), None
    without one."""
    text = rec["other_config"].get(desired.LINK)
    if text is None:
        return None
    try:
        parent, tag = core.parse_link(text, desired.LINK)
    except GatewayInvalid:
        return "invalid (%s)" % text
    named = [r["name_label"] for r in host.networks.values() if r["uuid"] == parent]
    return str(model.LinkSpec(named[0] if named else parent, tag))


def _file_uuid(host, name):
    same = host.named(host.networks, name)
    return same[0][1]["uuid"] if len(same) == 1 else NEW + name


def _parent_uuid(host, topology, index, spec):
    """The uuid of the network ``spec.link.parent`` names: a network of the file (its
    host uuid, or NEW + name until it is created), else one of the host's by uuid or by
    name; InvalidInput naming the field when it names none, or several."""
    key, field = spec.link.parent, "networks[%d].link.parent" % index
    if topology.network(key) is not None:
        return _file_uuid(host, key)
    found = [rec for rec in host.networks.values() if rec["uuid"] == key] or \
        [rec for rec in host.networks.values() if rec["name_label"] == key]
    if not found:
        raise InvalidInput("%s: %s; define it under networks, or name one of the host's: %s"
                           % (field, links.unknown_parent(key), ", ".join(sorted(
                               rec["name_label"] for rec in host.networks.values()))),
                           field=field)
    if len(found) > 1:
        raise InvalidInput("%s: %d networks on the host are named %s; give its uuid"
                           % (field, len(found), key), field=field)
    return found[0]["uuid"]


def _order(topology, host):
    """Indexes of the file's networks in the order apply makes them: the file's, but a
    parent of the file before the networks linked to it (a cycle keeps the file's order:
    it is refused anyway)."""
    pending = list(range(len(topology.networks)))
    done, order = set(), []
    while pending:
        for i in pending:
            link = topology.networks[i].link
            parent = None if link is None else topology.network(link.parent)
            if parent is None or parent.name in done or parent.name == \
                    topology.networks[i].name:
                break
        else:
            i = pending[0]   # a cycle among the rest
        pending.remove(i)
        order.append(i)
        done.add(topology.networks[i].name)
    return order


def _links(host, topology, deleted, order):
    """The file's links checked with the host's (agent.core.links): {index: conflict
    sentence} for the file's networks, [(name, uuid, sentence)] for links of the host
    the change would break, and the set of indexes whose link changes. Raises InvalidInput for a bad value (a network its own
    parent) or a parent that names no network."""
    before = dict(host.networks)
    after = {ref: rec for ref, rec in before.items() if ref not in deleted}
    steps_, where = [], {}
    for i in order:
        spec = topology.networks[i]
        same = host.named(host.networks, spec.name)
        if len(same) > 1:
            continue  # a conflict already
        wanted = None if spec.link is None else core.format_link(
            _parent_uuid(host, topology, i, spec), spec.link.tag)
        if same:
            ref, rec = same[0]
            if rec["other_config"].get(MARK) != topology.name:
                continue  # a conflict already
            try:
                current = core.format_link(*core.parse_link(
                    rec["other_config"][desired.LINK], desired.LINK))
            except (KeyError, GatewayInvalid):
                current = rec["other_config"].get(desired.LINK)
            if current == wanted:
                continue
            config = {k: v for k, v in rec["other_config"].items() if k != desired.LINK}
        else:
            ref, rec = NEW + spec.name, {"uuid": NEW + spec.name, "name_label": spec.name,
                                         "bridge": "(new)", "other_config": {},
                                         "PIFs": ["(its VLAN)"] if spec.vlan else []}
            config = {}
        if wanted is not None:
            config[desired.LINK] = wanted
        after[ref] = dict(rec, other_config=config)
        steps_.append(ref)
        where[rec["uuid"]] = i
    conflicts_, broken = {}, []
    for uuid, state, reason in links.problems(before, after, where):
        if uuid not in where:
            rec = [r for r in before.values() if r["uuid"] == uuid][0]
            broken.append((rec["name_label"], uuid, reason))
        elif state == links.INVALID:
            field = "networks[%d].link" % where[uuid]
            raise InvalidInput("%s: %s" % (field, reason), field=field)
        else:
            conflicts_[where[uuid]] = reason
    changed = set(where.values())
    if conflicts_ or broken:
        return conflicts_, broken, changed
    # the state apply leaves is good; and each step of the way? (a swap of two tags is not)
    state = {ref: rec for ref, rec in before.items() if ref not in deleted}
    for ref in steps_:
        nxt = dict(state)
        nxt[ref] = after[ref]
        uuid = after[ref]["uuid"]
        found = links.problems(state, nxt, [uuid])
        if found:
            conflicts_[where[uuid]] = ("%s (apply sets the links one network at a time, in "
                                       "order; make this change in a second apply)"
                                       % found[0][2])
        state = nxt
    return conflicts_, broken, changed


# ---- planning ----------------------------------------------------------------------------
def plan(xenapi, topology, prune=False):
    """The actions that make the host match ``topology`` (a model.Topology). With
    ``prune``, objects marked with the topology's name that the file no longer has are
    deleted (VMs with their disks); without it they are reported as drift."""
    host = Host(xenapi)
    name = topology.name
    vm_names = set(v.name for v in topology.vms)
    orphan_vms = [(r, rec) for r, rec in host.marked(host.vms, name)
                  if rec["name_label"] not in vm_names]
    orphan_nets = [(r, rec) for r, rec in host.marked(host.networks, name)
                   if topology.network(rec["name_label"]) is None]
    first, last = [], []
    if prune:
        needed = set(nic for vm in topology.vms for nic in vm.nics)
        first = _deletes(host, name, orphan_vms, orphan_nets, needed)
    else:
        for obj, orphans in (("vm", orphan_vms), ("network", orphan_nets)):
            for _ref, rec in orphans:
                last.append(_action(DRIFT, obj, rec["name_label"],
                                    ": marked with topology %s but not in the file: left "
                                    "as it is (destroy, or apply with prune, removes it)"
                                    % name, uuid=rec["uuid"]))
    deleted = set(r for r, _rec in orphan_nets) if prune else set()
    others = _other_gateways(host, topology, deleted)
    order = _order(topology, host)
    link_conflicts, broken, relinked = _links(host, topology, deleted, order)
    actions = list(first)
    for i in order:
        actions.extend(_network(host, topology, i, topology.networks[i], others,
                                link_conflicts.get(i), i in relinked))
    for name_, uuid, reason in broken:
        actions.append(_action(CONFLICT, "network", name_, ": %s" % reason, uuid=uuid))
    for i, spec in enumerate(topology.vms):
        actions.extend(_vm(host, topology, i, spec))
    return actions + last


def _network(host, topology, index, spec, others, link_conflict=None, relinked=False):
    path = "networks[%d]" % index
    same = host.named(host.networks, spec.name)
    if len(same) > 1:
        return [_action(CONFLICT, "network", spec.name,
                        ": %d networks of that name exist (%s); rename the network in "
                        "the file, or the existing ones"
                        % (len(same), ", ".join(r["uuid"] for _ref, r in same)))]
    overlap = _overlap(spec, others)
    if not same:
        if spec.vlan is not None:
            conflict = _vlan_check(host, spec, path)
            if conflict:
                return [_action(CONFLICT, "network", spec.name, ": " + conflict, spec)]
        if spec.span == "pool":
            conflict = _span_check(host, spec, path)
            if conflict:
                return [_action(CONFLICT, "network", spec.name, ": " + conflict, spec)]
        if overlap or link_conflict:
            return [_action(CONFLICT, "network", spec.name, ": " + (overlap or
                                                                     "link: " + link_conflict),
                            spec)]
        return [_action(CREATE, "network", spec.name, _create_text(spec), spec)]
    ref, rec = same[0]
    if rec["other_config"].get(MARK) != topology.name:
        return [_action(CONFLICT, "network", spec.name,
                        ": a network of that name exists that topology %s does not "
                        "manage (%s); rename the network in the file, or rename or "
                        "delete the existing one" % (topology.name, _owner(rec)),
                        spec, rec["uuid"])]
    actions = []
    differs = []
    if rec["name_description"] != spec.description:
        differs.append("description (file %r, host %r)"
                       % (spec.description, rec["name_description"]))
    vlan = host.vlan(rec)
    if vlan != spec.vlan:
        differs.append("VLAN (file %s, host %s)" % (spec.vlan or "none", vlan or "none"))
    vni = rec["other_config"].get(desired.VNI)
    span = "host" if vni is None else "pool"
    if span != spec.span:
        differs.append("span (file %s, host %s)" % (spec.span, span))
    elif spec.vni is not None and vni != str(spec.vni):
        differs.append("VNI (file %d, host %s)" % (spec.vni, vni))
    if differs:
        actions.append(_action(DRIFT, "network", spec.name, " differs: %s; apply does not "
                               "change these: delete the network and re-apply to change "
                               "them" % ", ".join(differs), spec, rec["uuid"]))
    change = _gateway_change(current_gateway(ref, rec), spec.gateway)
    if relinked:
        text = "link %s -> %s" % (current_link(host, rec) or "none", spec.link or "none")
        change = text if change is None else "%s; %s" % (change, text)
    if change is not None:
        problem = (overlap if overlap and _gateway_change(current_gateway(ref, rec),
                                                          spec.gateway) else None) or \
            (link_conflict and "link: " + link_conflict)
        if problem:
            actions.append(_action(CONFLICT, "network", spec.name, ": " + problem, spec,
                                   rec["uuid"]))
        else:
            actions.append(_action(UPDATE, "network", spec.name, ": " + change, spec,
                                   rec["uuid"]))
    if not actions:
        actions.append(_action(NOOP, "network", spec.name, "", spec, rec["uuid"]))
    return actions


def _span_check(host, spec, path):
    """Why ``spec`` (span pool) cannot be made on this pool, or None: the VNI it asks for
    is another network's, or a host cannot carry tunnels (agent.core.tunnels)."""
    if spec.vni is not None:
        conflict = tunnels.conflict(host.networks, spec.vni)
        if conflict:
            return "%s.vni: %s; choose another or leave vni out" % (path, conflict)
    try:
        tunnels.transports(host.hosts, host.pifs, spec.transport)
    except GatewayInvalid as exc:
        return "%s.%s: %s" % (path, exc.details["field"], exc)
    return None


def _vlan_check(host, spec, path):
    physical = [p for p in host.pifs.values() if p["device"] == spec.vlan.pif and
                p["physical"]]
    if not physical:
        devices = sorted(set(p["device"] for p in host.pifs.values() if p["physical"]))
        raise InvalidInput("%s.vlan.pif: this host has no physical interface %s; use one "
                           "of %s" % (path, spec.vlan.pif, ", ".join(devices) or "none"),
                           field=path + ".vlan.pif")
    for p in host.pifs.values():
        if p["device"] == spec.vlan.pif and int(p["VLAN"]) == spec.vlan.tag:
            net = host.networks.get(p["network"], {})
            return ("VLAN %d on %s is network %s's already; choose another tag"
                    % (spec.vlan.tag, spec.vlan.pif, net.get("name_label", p["network"])))
    return None


def _vm(host, topology, index, spec):
    path = "vms[%d]" % index
    _check_nics(host, topology, path, spec)
    if spec.host:
        try:
            find_host(host.hosts, spec.host, path + ".host")
        except NotFound as exc:
            raise InvalidInput(str(exc), field=path + ".host")
    same = host.named(host.vms, spec.name)
    if len(same) > 1:
        return [_action(CONFLICT, "vm", spec.name,
                        ": %d VMs of that name exist (%s); rename the VM in the file, or "
                        "the existing ones" % (len(same), ", ".join(r["uuid"]
                                                                     for _r, r in same)))]
    if not same:
        _check_create(host, path, spec)
        return [_action(CREATE, "vm", spec.name, ": " + _vm_text(spec), spec)]
    _ref, rec = same[0]
    if rec["other_config"].get(MARK) != topology.name:
        return [_action(CONFLICT, "vm", spec.name,
                        ": a VM of that name exists that topology %s does not manage (%s); "
                        "rename the VM in the file, or rename or destroy the existing one"
                        % (topology.name, _owner(rec)), spec, rec["uuid"])]
    actions = []
    differs = _vm_differences(host, spec, rec)
    if differs:
        actions.append(_action(DRIFT, "vm", spec.name, " differs: %s; apply does not change "
                               "an existing VM: destroy it and re-apply to change it"
                               % ", ".join(differs), spec, rec["uuid"]))
    state = rec["power_state"]
    if spec.start and state == "Halted":
        actions.append(_action(START, "vm", spec.name, ": start it (it is halted)%s"
                               % (" on host %s" % spec.host if spec.host else ""), spec,
                               rec["uuid"]))
    elif spec.start and state != "Running":
        actions.append(_action(DRIFT, "vm", spec.name, ": is %s, not running; apply starts "
                               "only halted VMs: resume or shut it down first"
                               % state.lower(), spec, rec["uuid"]))
    if not actions:
        actions.append(_action(NOOP, "vm", spec.name, "", spec, rec["uuid"]))
    return actions


def _check_nics(host, topology, path, spec):
    for i, nic in enumerate(spec.nics):
        if topology.network(nic) is not None:
            continue
        field = "%s.nics[%d]" % (path, i)
        by_uuid = [r for r, rec in host.networks.items() if rec["uuid"] == nic]
        found = by_uuid or [r for r, rec in host.networks.items()
                            if rec["name_label"] == nic]
        if not found:
            names = sorted(rec["name_label"] for rec in host.networks.values())
            raise InvalidInput("%s: no network %s in this file or on the host; define it "
                               "under networks, or name one of the host's: %s"
                               % (field, nic, ", ".join(names)), field=field)
        if len(found) > 1:
            raise InvalidInput("%s: %d networks on the host are named %s; give its uuid"
                               % (field, len(found), nic), field=field)
        if host.is_himn(found[0]):
            raise InvalidInput("%s: %s is the host internal management network; remove it "
                               "from nics and write himn: true" % (field, nic), field=field)


def _check_create(host, path, spec):
    """The template, ISO and SRs a new VM needs exist (Vms.create checks them again)."""
    if spec.template not in host.templates:
        raise InvalidInput("%s.template: no template named %s on the host; leave template "
                           "out for %r" % (path, spec.template, model.DEFAULT_TEMPLATE),
                           field=path + ".template")
    if spec.iso is not None:
        isos = [d for d in host.vdis.values()
                if host.srs.get(d["SR"], {}).get("content_type") == "iso"]
        if not any(_matches(d, spec.iso) for d in isos):
            raise InvalidInput("%s.iso: no ISO %s in the host's ISO libraries (it has %s); "
                               "copy it there or fix the name"
                               % (path, spec.iso, ", ".join(sorted(d["name_label"]
                                                                   for d in isos)) or
                                  "none"), field=path + ".iso")
    for i, disk in enumerate(spec.disks):
        field = "%s.disks[%d].sr" % (path, i)
        if disk.sr is None:
            if host.default_sr not in host.srs:
                raise InvalidInput("%s: no SR given and the pool has no default SR; name "
                                   "one (sr: ...) or set the pool's default SR" % field,
                                   field=field)
            continue
        found = [rec for rec in host.srs.values()
                 if _matches(rec, disk.sr) and rec["content_type"] != "iso"]
        if len(found) != 1:
            raise InvalidInput("%s: %s; name a disk SR by its uuid or name" % (
                field, "no disk SR %s on the host" % disk.sr if not found else
                "%d SRs are named %s" % (len(found), disk.sr)), field=field)


def _vm_text(spec):
    parts = ["%d MiB" % spec.memory_mib,
             "%d vCPU%s" % (spec.vcpus, "" if spec.vcpus == 1 else "s")]
    if spec.disks:
        parts.append("disk%s %s" % ("" if len(spec.disks) == 1 else "s",
                                    ", ".join(str(d) for d in spec.disks)))
    parts.append("nics %s" % (", ".join(spec.nics) or "none"))
    if spec.iso:
        parts.append("iso %s" % spec.iso)
    parts.append("boot %s" % spec.boot)
    if spec.himn:
        parts.append("himn")
    if spec.template != model.DEFAULT_TEMPLATE:
        parts.append("template %s" % spec.template)
    text = ", ".join(parts)
    return text + ("; then start it" if spec.start else "") + (
        " on host %s" % spec.host if spec.start and spec.host else "")


def _vm_differences(host, spec, rec):
    """What differs between a VM's record and its spec, as "what (file x, host y)"."""
    differs = []

    def differ(what, wanted, actual):
        differs.append("%s (file %s, host %s)" % (what, wanted, actual))
    memory = int(rec["memory_static_max"]) // MIB
    if memory != spec.memory_mib:
        differ("memory", "%d MiB" % spec.memory_mib, "%d MiB" % memory)
    vcpus = int(rec["VCPUs_at_startup"])
    if vcpus != spec.vcpus:
        differ("vcpus", spec.vcpus, vcpus)
    boot = rec["HVM_boot_params"].get("order", "")
    if boot != spec.boot:
        differ("boot", spec.boot, boot or "none")
    nics = [net for _device, net in host.vm_nics(rec)]
    if len(nics) != len(spec.nics) or not all(_matches(net, key)
                                              for net, key in zip(nics, spec.nics)):
        differ("nics", ", ".join(spec.nics) or "none",
               ", ".join(n.get("name_label", "?") for n in nics) or "none")
    himn = host.vm_has_himn(rec)
    if himn != spec.himn:
        differ("himn", str(spec.himn).lower(), str(himn).lower())
    disks = host.vm_disks(rec)
    if len(disks) != len(spec.disks) or not all(
            size == d.size_gib and (d.sr is None or _matches(sr, d.sr))
            for (size, sr), d in zip(disks, spec.disks)):
        differ("disks", ", ".join(str(d) for d in spec.disks) or "none",
               ", ".join("%d GiB on %s" % (size, sr.get("name_label", "?"))
                         for size, sr in disks) or "none")
    iso = host.vm_iso(rec)
    if (iso is None) != (spec.iso is None) or (iso is not None and
                                               not _matches(iso, spec.iso)):
        differ("iso", spec.iso or "none", "none" if iso is None else iso["name_label"])
    return differs


# ---- deleting ----------------------------------------------------------------------------
def _deletes(host, topology, vms, networks, needed=()):
    """Delete actions for ``vms`` then ``networks`` [(ref, record)]; a network that a VM
    staying on the host uses, or that a NIC of the file names (``needed``: names and
    uuids), is a conflict."""
    actions = []
    going = set(ref for ref, _rec in vms)
    for _ref, rec in vms:
        how = " (powered off first)" if rec["power_state"] != "Halted" else ""
        actions.append(_action(DELETE, "vm", rec["name_label"],
                               ": destroy it with its disks%s" % how, uuid=rec["uuid"]))
    for _ref, rec in networks:
        staying = sorted(set(host.vms[host.vifs[v]["VM"]]["name_label"]
                             for v in rec["VIFs"] if v in host.vifs and
                             host.vifs[v]["VM"] in host.vms and
                             host.vifs[v]["VM"] not in going))
        if rec["name_label"] in needed or rec["uuid"] in needed:
            actions.append(_action(CONFLICT, "network", rec["name_label"],
                                   ": a NIC in the file names it; add it back under "
                                   "networks, or change that NIC", uuid=rec["uuid"]))
            continue
        if staying:
            actions.append(_action(CONFLICT, "network", rec["name_label"],
                                   ": in use by %s, which topology %s does not remove; "
                                   "move or destroy %s first"
                                   % (", ".join(staying), topology,
                                      "it" if len(staying) == 1 else "them"),
                                   uuid=rec["uuid"]))
            continue
        gateway = " and its gateway" if desired.ADDRESS in rec["other_config"] else ""
        vlan = host.vlan(rec)
        extra = "%s%s" % (gateway, " and its VLAN" if vlan is not None else "")
        actions.append(_action(DELETE, "network", rec["name_label"],
                               ": delete it%s" % extra, uuid=rec["uuid"]))
    return actions


def plan_destroy(xenapi, topology):
    """What ``destroy`` does: delete every VM, then every network, marked with the
    topology's name; objects that have a name of the file but not the mark are left
    alone (noop). ``topology``: a model.Topology or just its name."""
    if isinstance(topology, model.Topology):
        name, vms, networks = topology.name, [v.name for v in topology.vms], \
            [n.name for n in topology.networks]
    else:
        try:
            name = core.parse_name(topology, "topology")
        except GatewayInvalid as exc:
            raise InvalidInput(str(exc), field="topology")
        vms, networks = [], []
    host = Host(xenapi)
    actions = _deletes(host, name, host.marked(host.vms, name),
                       host.marked(host.networks, name))
    for obj, names, records in (("vm", vms, host.vms), ("network", networks,
                                                         host.networks)):
        for key in names:
            for _ref, rec in host.named(records, key):
                if rec["other_config"].get(MARK) != name:
                    actions.append(_action(NOOP, obj, key, ": not managed by topology %s "
                                           "(%s): left alone" % (name, _owner(rec)),
                                           uuid=rec["uuid"]))
    return actions
