"""VMs: the "Other install media" template, the control domain, VM.clone and
VM.provision (the template's other_config:disks made into VDIs and VBDs, as
xapi_templates.ml does), VIFs (device numbers, generated MACs), the power cycle (start,
shutdown, suspend, resume, reboot, pause) with domid, resident_on and metrics, and the
lazy bridges of private networks that follow it. Each power operation is checked as
xapi checks it (agent/xapisim/lifecycle.py)."""
import datetime
import random
import xml.dom.minidom
from xml.parsers.expat import ExpatError

from agent.xapisim import lifecycle
from agent.xapisim.datamodel import NULL_REF
from agent.xapisim.bridges import spec as bridge_spec
from agent.xapisim.engine import XapiFailure, _copy

MIB = 1024 * 1024
TEMPLATE = "Other install media"
MAX_VIF_DEVICE = 15   # xapi_vm_helpers.ml allowed_VIF_devices_HVM/PV: 0..15
MAX_VBD_DEVICE = 254  # allowed_VBD_devices_HVM/PV: disk numbers 0..254
DISKS_KEY = "disks"   # xapi_templates.ml: the template's disks, as XML


def install(engine, bridges):
    engine.bridges = bridges  # the first host's (a pool's: engine.dom0, one per host)
    engine.dom0 = {}          # host ref -> its agent.xapisim.bridges.Bridges
    engine.attached = set()   # (network, host) pairs network.attach brought up
    engine.next_domid = 1
    lifecycle.install(engine)
    engine.handlers["VM.create"] = vm_create
    engine.handlers["VM.clone"] = vm_clone
    engine.handlers["VM.copy"] = lambda e, s, vm, name, sr: vm_clone(e, s, vm, name, "copy")
    engine.handlers["VM.provision"] = vm_provision
    engine.handlers["VM.start"] = vm_start
    engine.handlers["VM.start_on"] = vm_start_on
    engine.handlers["VM.assert_can_boot_here"] = vm_assert_can_boot_here
    for name in ("shutdown", "clean_shutdown", "hard_shutdown"):
        engine.handlers["VM." + name] = _shutdown(name)
    engine.handlers["VM.suspend"] = vm_suspend
    engine.handlers["VM.resume"] = vm_resume
    engine.handlers["VM.clean_reboot"] = _reboot("clean_reboot")
    engine.handlers["VM.hard_reboot"] = _reboot("hard_reboot")
    engine.handlers["VM.pause"] = vm_pause
    engine.handlers["VM.unpause"] = vm_unpause
    engine.handlers["VM.get_allowed_VBD_devices"] = vm_allowed_vbd_devices
    engine.handlers["VM.get_allowed_VIF_devices"] = vm_allowed_vif_devices
    engine.handlers["host.get_vms_which_prevent_evacuation"] = host_vms_preventing_evacuation
    engine.handlers["VM.destroy"] = vm_destroy
    engine.handlers["VIF.create"] = vif_create
    engine.handlers["VIF.destroy"] = vif_destroy
    engine.handlers["VM.set_memory_limits"] = vm_set_memory_limits
    engine.handlers["VM.set_VCPUs_max"] = vm_set_vcpus_max
    engine.handlers["VM.set_VCPUs_at_startup"] = vm_set_vcpus_at_startup
    engine.handlers["VIF.plug"] = vif_plug
    engine.handlers["network.attach"] = network_attach
    engine.hidden["network.attach"] = 2


def seed(engine, host):
    """The "Other install media" template and the host's control domain (running,
    domid 0, resident on the host, host.control_domain). Returns the template."""
    engine.dom0.setdefault(host, engine.bridges)
    template = new_vm(
        engine, name_label=TEMPLATE, is_a_template=True, power_state="Halted",
        HVM_boot_policy="BIOS order", HVM_boot_params={"order": "dc"},
        other_config={"install-methods": "cdrom"},
        memory_static_min=128 * MIB, memory_static_max=256 * MIB,
        memory_dynamic_min=256 * MIB, memory_dynamic_max=256 * MIB,
        VCPUs_max=1, VCPUs_at_startup=1)
    control_domain(engine, host)
    return template


def control_domain(engine, host):
    """The host's control domain: running, domid 0, resident on it, host.control_domain."""
    name = engine.record("host", host)["hostname"]
    dom0 = new_vm(
        engine, name_label="Control domain on host: %s" % name,
        name_description="The domain which manages physical devices and manages other "
                         "domains", is_control_domain=True, power_state="Running", domid=0,
        resident_on=host, memory_static_min=1024 * MIB, memory_static_max=1024 * MIB,
        memory_dynamic_min=1024 * MIB, memory_dynamic_max=1024 * MIB, VCPUs_max=2,
        VCPUs_at_startup=2)
    metrics = engine.record("VM", dom0)["metrics"]
    engine.set_field("VM_metrics", metrics, "start_time", _now())
    engine.set_field("VM_metrics", metrics, "state", ["running"])
    engine.set_field("host", host, "control_domain", dom0)
    return dom0


def new_vm(engine, **values):
    """A VM with its own VM_metrics (xapi gives every VM one), domid -1 unless given."""
    values.setdefault("domid", -1)
    values["metrics"] = engine.create(
        "VM_metrics", memory_actual=values.get("memory_dynamic_max", 0),
        VCPUs_number=values.get("VCPUs_at_startup", 0),
        current_domain_type="hvm" if values.get("HVM_boot_policy") else "pv")
    return engine.create("VM", **values)


def _now():
    return datetime.datetime.utcnow().replace(microsecond=0)


def _require(engine, vm, states, expected):
    """The VM's record, if its power state is one of ``states``, else VM_BAD_POWER_STATE
    [vm, expected, actual]."""
    record = engine.record("VM", vm)
    if record["power_state"] not in states:
        raise XapiFailure("VM_BAD_POWER_STATE", vm, expected, record["power_state"].lower())
    return record


def vm_create(engine, session, args):
    cls = engine.model.classes["VM"]
    message = cls.messages["create"]
    engine.check_constructor(message, args)
    ref = engine._construct(cls, message, args)
    record = engine.record("VM", ref)
    engine.set_field("VM", ref, "metrics", engine.create(
        "VM_metrics", memory_actual=record["memory_dynamic_max"],
        VCPUs_number=record["VCPUs_at_startup"]))
    engine.set_field("VM", ref, "domid", -1)
    return ref


def _power(engine, vm, record, state, host, new_domain=False):
    """Move a VM to ``state`` (see _set_power). When the Dom0 side fails (a bridge or
    port the backend could not make), the VM goes back to where it was and the call
    fails with INTERNAL_ERROR, as a xapi operation that fails half way leaves the VM
    as it found it."""
    before, where = record["power_state"], record["resident_on"]
    try:
        _set_power(engine, vm, record, state, host, new_domain)
    except XapiFailure:
        raise
    except Exception as exc:  # noqa: B902 - the backend's commands (OSError, OvsError)
        try:
            _set_power(engine, vm, record, before, where)
        except Exception:  # noqa: B902 - the Dom0 side is broken: the error says so
            pass
        raise XapiFailure("INTERNAL_ERROR", "%s: %s" % (type(exc).__name__, exc))


def _set_power(engine, vm, record, state, host, new_domain=False):
    """Move a VM to ``state``: a running or paused VM has a domain (a new one, with a
    fresh domid, unless it had one and not ``new_domain``), lives on ``host`` and has
    its devices attached; otherwise domid -1, no host, devices detached."""
    live = state in ("Running", "Paused")
    if live and (record["domid"] < 0 or new_domain):
        engine.set_field("VM", vm, "domid", engine.next_domid)
        engine.next_domid += 1
    elif not live:
        engine.set_field("VM", vm, "domid", -1)
    engine.set_field("VM", vm, "resident_on", host if live else NULL_REF)
    metrics = record["metrics"]
    if metrics in engine.objects["VM_metrics"]:
        engine.set_field("VM_metrics", metrics, "state", [state.lower()] if live else [])
        if live:
            engine.set_field("VM_metrics", metrics, "start_time", _now())
            engine.set_field("VM_metrics", metrics, "memory_actual",
                             record["memory_dynamic_max"])
            engine.set_field("VM_metrics", metrics, "VCPUs_number",
                             record["VCPUs_at_startup"])
    for kind in ("VIF", "VBD"):
        for device in record[kind + "s"]:
            engine.set_field(kind, device, "currently_attached", live)
    if live:  # xapi attaches the VM's networks on its host: their PIFs there come up
        for vif in record["VIFs"]:
            net = engine.record("network", engine.record("VIF", vif)["network"])
            for pif in net["PIFs"]:
                pif_record = engine.record("PIF", pif)
                if pif_record["host"] == host and not pif_record["currently_attached"]:
                    engine.set_field("PIF", pif, "currently_attached", True)
    engine.set_field("VM", vm, "power_state", state)
    sync_bridges(engine)


def host_is_live(engine, host):
    """host_metrics.live of the host (False without metrics, as xapi's is_host_live)."""
    metrics = engine.objects["host_metrics"].get(engine.record("host", host)["metrics"])
    return bool(metrics and metrics["live"])


def network_available(engine, network, host):
    """Whether ``network`` can be seen from ``host``, as xapi's
    assert_can_see_named_networks decides: a network with PIFs where one of them is on
    the host; a PIF-less one when other_config:assume_network_is_shared is "true", when
    it is unmanaged, or when no running VM uses it or one on this very host does (XAPI
    keeps a single-server private network's VMs on one host)."""
    net = engine.record("network", network)
    if net["PIFs"]:
        return any(engine.record("PIF", pif)["host"] == host for pif in net["PIFs"])
    if net["other_config"].get("assume_network_is_shared") == "true" or not net["managed"]:
        return True
    hosts = [engine.objects["VM"][engine.objects["VIF"][vif]["VM"]]["resident_on"]
             for vif in net["VIFs"]
             if engine.objects["VM"][engine.objects["VIF"][vif]["VM"]]["power_state"]
             == "Running"]
    return not hosts or host in hosts


def assert_can_boot_here(engine, vm, host):
    """What xapi_vm_helpers.assert_can_boot_here checks of the pool, in its order: the
    host is live (HOST_NOT_LIVE), enabled (HOST_DISABLED; a control domain may start on a
    disabled host), and sees every network of the VM's VIFs (VM_REQUIRES_NETWORK [vm,
    the first missing network]). Storage is taken as shared by every host, memory and
    CPUs as enough."""
    record = engine.record("VM", vm)
    if not host_is_live(engine, host):
        raise XapiFailure("HOST_NOT_LIVE")
    if not record["is_control_domain"] and not engine.record("host", host)["enabled"]:
        raise XapiFailure("HOST_DISABLED", host)
    for vif in record["VIFs"]:
        network = engine.record("VIF", vif)["network"]
        if not network_available(engine, network, host):
            raise XapiFailure("VM_REQUIRES_NETWORK", vm, network)


def choose_host(engine, vm):
    """Where VM.start puts a VM (xapi's choose_host_for_vm, without WLB): its affinity
    host if it can boot there, else the first host (in the pool's order, the master
    first) that passes assert_can_boot_here; none: NO_HOSTS_AVAILABLE. (xapi picks at
    random among equally good hosts; the simulator picks deterministically, as xapi
    does under its deterministic_host_selection switch.)"""
    affinity = engine.record("VM", vm)["affinity"]
    hosts = list(engine.objects["host"])
    if affinity in engine.objects["host"]:
        hosts.remove(affinity)
        hosts.insert(0, affinity)
    for host in hosts:
        try:
            assert_can_boot_here(engine, vm, host)
        except XapiFailure:
            continue
        return host
    raise XapiFailure("NO_HOSTS_AVAILABLE")


def vm_clone(engine, session, vm, new_name, op="clone"):
    lifecycle.assert_vm_operation(engine, vm, op)
    source = engine.record("VM", vm)
    # each map and set copied: the clone must not share them with its template; the
    # runtime state and the devices are the clone's own
    skip = ("uuid", "VIFs", "VBDs", "metrics", "resident_on", "domid", "allowed_operations",
            "current_operations", "snapshots", "children", "crash_dumps", "consoles",
            "VTPMs", "VGPUs", "VUSBs", "attached_PCIs", "suspend_VDI", "groups")
    copy = {k: _copy(v) for k, v in source.items() if k not in skip}
    copy["name_label"] = new_name
    return new_vm(engine, **copy)


def vm_provision(engine, session, vm):
    """xapi_vm.ml provision: no longer a template; the disks the template's
    other_config:disks describes made (a VDI on the SR named by uuid, its VBD at the
    device), then the key removed. A disk that cannot be made undoes the others."""
    lifecycle.assert_vm_operation(engine, vm, "provision")
    record = engine.record("VM", vm)
    engine.set_field("VM", vm, "is_a_template", False)
    disks = _provision_spec(record["other_config"].get(DISKS_KEY))
    made = []
    try:
        for disk in disks:
            made.append(_make_disk(engine, session, vm, record, disk))
    except XapiFailure:
        for vbd, vdi in reversed(made):
            engine.destroy("VBD", vbd)
            engine.handlers["VDI.destroy"](engine, session, vdi)
        raise
    if DISKS_KEY in record["other_config"]:
        other = dict(record["other_config"])
        del other[DISKS_KEY]
        engine.set_field("VM", vm, "other_config", other)
    return ""


def _provision_spec(text):
    """[{device, size, sr, bootable, type}] from xapi_templates.ml's XML:
    <provision><disk device="0" size="..." sr="uuid" bootable="true" type="system"/>
    </provision>; a malformed one fails, as xapi's parser does."""
    if not text:
        return []
    try:
        root = xml.dom.minidom.parseString(text).documentElement
    except ExpatError:
        raise XapiFailure("INTERNAL_ERROR", "Xml.Error: cannot parse other_config:disks")
    if root.tagName != "provision" or root.attributes.length:
        raise XapiFailure("INTERNAL_ERROR", "Xapi_templates.Parse_failure")
    disks = []
    for node in root.childNodes:
        if node.nodeType != node.ELEMENT_NODE:
            continue
        attrs = dict(node.attributes.items())
        if node.tagName != "disk" or not {"device", "size", "sr", "bootable"} <= set(attrs):
            raise XapiFailure("INTERNAL_ERROR", "Xapi_templates.Parse_failure")
        try:
            attrs["size"] = int(attrs["size"])
        except ValueError:
            raise XapiFailure("INTERNAL_ERROR", "Xapi_templates.Parse_failure")
        attrs["bootable"] = attrs["bootable"] == "true"
        attrs.setdefault("type", "system")
        disks.append(attrs)
    return disks


def _make_disk(engine, session, vm, record, disk):
    srs = [ref for ref, sr in engine.objects["SR"].items() if sr["uuid"] == disk["sr"]]
    if not srs:
        raise XapiFailure("UUID_INVALID", "sr", disk["sr"])
    vdi = engine.handlers["VDI.create"](engine, session, {
        "name_label": "", "name_description": "Created by template provisioner",
        "SR": srs[0], "virtual_size": disk["size"], "type": disk["type"], "sharable": False,
        "read_only": False, "other_config": {}, "xenstore_data": {},
        "sm_config": {"vmhint": record["uuid"]}, "tags": []})
    try:
        vbd = engine.handlers["VBD.create"](engine, session, {
            "VM": vm, "VDI": vdi, "userdevice": disk["device"], "bootable": disk["bootable"],
            "mode": "RW", "type": "Disk", "unpluggable": disk["type"] != "system",
            "empty": False, "qos_algorithm_type": "", "qos_algorithm_params": {},
            "other_config": {"owner": ""}})
    except XapiFailure:
        engine.handlers["VDI.destroy"](engine, session, vdi)
        raise
    engine.set_field("VDI", vdi, "name_label", engine.record("VBD", vbd)["userdevice"])
    return vbd, vdi


def vm_start(engine, session, vm, start_paused, force):
    lifecycle.assert_vm_operation(engine, vm, "start")
    _power(engine, vm, engine.record("VM", vm), "Paused" if start_paused else "Running",
           choose_host(engine, vm))
    return ""


def vm_start_on(engine, session, vm, host, start_paused, force):
    lifecycle.assert_vm_operation(engine, vm, "start_on")
    assert_can_boot_here(engine, vm, host)
    _power(engine, vm, engine.record("VM", vm), "Paused" if start_paused else "Running",
           host)
    return ""


def vm_assert_can_boot_here(engine, session, vm, host):
    assert_can_boot_here(engine, vm, host)
    return ""


def _shutdown(op):
    def shutdown(engine, session, vm):
        lifecycle.assert_vm_operation(engine, vm, op)
        record = engine.record("VM", vm)
        if record["power_state"] == "Suspended":  # the suspend image is thrown away
            _drop_suspend_image(engine, session, vm, record)
        _power(engine, vm, record, "Halted", NULL_REF)
        return ""
    return shutdown


def _reboot(op):
    def reboot(engine, session, vm):
        """The domain is replaced by a new one (a new domid), on the same host."""
        lifecycle.assert_vm_operation(engine, vm, op)
        record = engine.record("VM", vm)
        _power(engine, vm, record, "Running", record["resident_on"], new_domain=True)
        return ""
    return reboot


def vm_suspend(engine, session, vm):
    """The memory image goes to a VDI of type suspend on the pool's default SR
    (VM.suspend_VDI); the domain goes away."""
    lifecycle.assert_vm_operation(engine, vm, "suspend")
    record = engine.record("VM", vm)
    pool = next(iter(engine.objects["pool"].values()), None)
    sr = pool["default_SR"] if pool else NULL_REF
    if sr in engine.objects["SR"]:
        image = engine.handlers["VDI.create"](engine, session, {
            "name_label": "Suspend image", "name_description": "", "SR": sr,
            "virtual_size": max(record["memory_static_max"], 1), "type": "suspend",
            "sharable": False, "read_only": False, "other_config": {},
            "xenstore_data": {}, "sm_config": {}, "tags": []})
        engine.set_field("VM", vm, "suspend_VDI", image)
    _power(engine, vm, record, "Suspended", NULL_REF)
    return ""


def vm_resume(engine, session, vm, start_paused, force):
    lifecycle.assert_vm_operation(engine, vm, "resume")
    record = engine.record("VM", vm)
    _drop_suspend_image(engine, session, vm, record)
    _power(engine, vm, record, "Paused" if start_paused else "Running",
           choose_host(engine, vm))
    return ""


def _drop_suspend_image(engine, session, vm, record):
    image = record["suspend_VDI"]
    engine.set_field("VM", vm, "suspend_VDI", NULL_REF)
    if image in engine.objects["VDI"]:
        engine.handlers["VDI.destroy"](engine, session, image)


def vm_pause(engine, session, vm):
    lifecycle.assert_vm_operation(engine, vm, "pause")
    engine.set_field("VM", vm, "power_state", "Paused")
    return ""


def vm_unpause(engine, session, vm):
    lifecycle.assert_vm_operation(engine, vm, "unpause")
    engine.set_field("VM", vm, "power_state", "Running")
    return ""


def vm_destroy(engine, session, vm):
    lifecycle.assert_vm_operation(engine, vm, "destroy")
    record = engine.record("VM", vm)
    for kind in ("VIF", "VBD"):  # xapi keeps the VDIs: disks outlive their VM
        for device in list(record[kind + "s"]):
            engine.destroy(kind, device)
    if record["metrics"] in engine.objects["VM_metrics"]:
        engine.destroy("VM_metrics", record["metrics"])
    engine.destroy("VM", vm)
    return ""


def vm_allowed_vbd_devices(engine, session, vm):
    """The disk numbers (userdevice) no VBD of the VM uses, as decimal strings."""
    used = {engine.record("VBD", v)["userdevice"] for v in engine.record("VM", vm)["VBDs"]}
    return [str(n) for n in range(MAX_VBD_DEVICE + 1) if str(n) not in used]


def vm_allowed_vif_devices(engine, session, vm):
    used = {engine.record("VIF", v)["device"] for v in engine.record("VM", vm)["VIFs"]}
    return [str(n) for n in range(MAX_VIF_DEVICE + 1) if str(n) not in used]


def host_vms_preventing_evacuation(engine, session, host):
    """The VMs resident on the host that could not be moved away, each with the error
    xapi gives: in a pool of one host, every guest (NO_HOSTS_AVAILABLE); never the
    control domain."""
    others = [h for h in engine.objects["host"] if h != host]
    out = {}
    for vm in engine.record("host", host)["resident_VMs"]:
        if not engine.record("VM", vm)["is_control_domain"] and not others:
            out[vm] = ["NO_HOSTS_AVAILABLE"]
    return out


def vm_set_memory_limits(engine, session, vm, static_min, static_max, dynamic_min,
                         dynamic_max):
    _require(engine, vm, ("Halted",), "halted")
    try:
        values = [int(v) for v in (static_min, static_max, dynamic_min, dynamic_max)]
    except (TypeError, ValueError):
        raise XapiFailure("FIELD_TYPE_ERROR", "int")
    smin, smax, dmin, dmax = values
    if not 0 <= smin <= dmin <= dmax <= smax:
        raise XapiFailure("MEMORY_CONSTRAINT_VIOLATION",
                          "Memory limits must satisfy: static_min <= dynamic_min <= "
                          "dynamic_max <= static_max")
    for name, value in zip(("memory_static_min", "memory_static_max", "memory_dynamic_min",
                            "memory_dynamic_max"), values):
        engine.set_field("VM", vm, name, value)
    return ""


def vm_set_vcpus_max(engine, session, vm, value):
    _require(engine, vm, ("Halted",), "halted")
    count = _count(value)
    if count < engine.record("VM", vm)["VCPUs_at_startup"]:
        raise XapiFailure("INVALID_VALUE", "VCPU values must satisfy: 0 < VCPUs_at_startup "
                                           "<= VCPUs_max", value)
    engine.set_field("VM", vm, "VCPUs_max", count)
    return ""


def vm_set_vcpus_at_startup(engine, session, vm, value):
    count = _count(value)
    if count > engine.record("VM", vm)["VCPUs_max"]:
        raise XapiFailure("INVALID_VALUE", "VCPU values must satisfy: 0 < VCPUs_at_startup "
                                           "<= VCPUs_max", value)
    engine.set_field("VM", vm, "VCPUs_at_startup", count)
    return ""


def _count(value):
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise XapiFailure("FIELD_TYPE_ERROR", "int")
    if count < 1:
        raise XapiFailure("INVALID_VALUE", "VCPUs", value)
    return count


def vif_plug(engine, session, vif):
    record = engine.record("VIF", vif)
    _require(engine, record["VM"], ("Running",), "running")
    if record["currently_attached"]:
        raise XapiFailure("DEVICE_ALREADY_ATTACHED", vif)
    engine.set_field("VIF", vif, "currently_attached", True)
    sync_bridges(engine)
    return ""


def vif_create(engine, session, args):
    cls = engine.model.classes["VIF"]
    message = cls.messages["create"]
    engine.check_constructor(message, args)
    device = args["device"]
    if not str(device).isdigit():
        raise XapiFailure("INVALID_VALUE", "device", device)
    vm = engine.record("VM", args["VM"])
    engine.record("network", args["network"])
    for other in vm["VIFs"]:
        if engine.record("VIF", other)["device"] == device:
            raise XapiFailure("DEVICE_ALREADY_EXISTS", device)
    values = dict(args)
    if not values.get("MAC"):
        values["MAC"] = "02:%02x:%02x:%02x:%02x:%02x" % tuple(random.randint(0, 255)
                                                             for _ in range(5))
    # as xapi: a new VIF is not plugged, even on a running VM (VIF.plug hot-plugs it)
    return engine._construct(cls, message, values)


def vif_destroy(engine, session, vif):
    engine.destroy("VIF", vif)
    sync_bridges(engine)
    return ""


def network_attach(engine, session, network, host):
    engine.record("network", network)
    engine.record("host", host)
    engine.attached.add((network, host))
    sync_bridges(engine)
    return ""


def sync_bridges(engine):
    """Each live host's bridges, as networkd has them: a PIF-less (private) network's
    where a running VM's VIF uses it or it was attached; a tunnel network's where its
    access PIF is plugged; a VLAN network's where its PIF is plugged, when its parent is
    a bridge the host really has (a pool host's xenbr0); each with the ports of the live
    VIFs of the VMs on that host. A host that is not live has none."""
    wanted = {host: {} for host in engine.dom0}
    for ref, net in engine.objects["network"].items():
        if net["bridge"] == "xenapi":
            continue  # the HIMN is xapi's
        live = {}
        for vif in net["VIFs"]:
            vm = engine.objects["VM"][engine.objects["VIF"][vif]["VM"]]
            if vm["power_state"] in ("Running", "Paused"):
                live.setdefault(vm["resident_on"], []).append(vif)
        if not net["PIFs"]:
            hosts = set(live) | {h for n, h in engine.attached if n == ref}
            for host in hosts & set(wanted):
                wanted[host][net["bridge"]] = bridge_spec(engine, ref, live.get(host, ()))
            continue
        for pif_ref in net["PIFs"]:
            pif = engine.objects["PIF"][pif_ref]
            host = pif["host"]
            if host not in wanted or not pif["currently_attached"]:
                continue
            if pif["tunnel_access_PIF_of"]:
                wanted[host][net["bridge"]] = bridge_spec(engine, ref, live.get(host, ()))
            elif pif["VLAN_master_of"] in engine.objects["VLAN"]:
                vlan = engine.objects["VLAN"][pif["VLAN_master_of"]]
                tagged = engine.objects["PIF"][vlan["tagged_PIF"]]
                parent = engine.objects["network"][tagged["network"]]["bridge"]
                if parent in engine.dom0[host].uplinks:
                    wanted[host][net["bridge"]] = bridge_spec(
                        engine, ref, live.get(host, ()), parent, vlan["tag"])
            # a physical PIF's bridge (xenbr0) is the host's own, not networkd's to make
    for host, bridges in engine.dom0.items():
        bridges.sync(wanted[host] if host_is_live(engine, host) else {})
