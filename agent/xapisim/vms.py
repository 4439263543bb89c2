"""VMs as far as the gateway's users need them: the "Other install media" template,
VM.clone (of templates without disks: the seeded one has none), VIFs (device numbers, generated MACs), power states, and the lazy bridges of
private networks that follow them."""
import random

from agent.xapisim.bridges import spec as bridge_spec
from agent.xapisim.engine import XapiFailure, _copy

MIB = 1024 * 1024
TEMPLATE = "Other install media"


def install(engine, bridges):
    engine.bridges = bridges
    engine.handlers["VM.clone"] = vm_clone
    engine.handlers["VM.copy"] = lambda e, s, vm, name, sr: vm_clone(e, s, vm, name)
    engine.handlers["VM.provision"] = vm_provision
    engine.handlers["VM.start"] = vm_start
    for name in ("shutdown", "clean_shutdown", "hard_shutdown"):
        engine.handlers["VM." + name] = vm_shutdown
    engine.handlers["VM.destroy"] = vm_destroy
    engine.handlers["VIF.create"] = vif_create
    engine.handlers["VIF.destroy"] = vif_destroy
    engine.handlers["VM.set_memory_limits"] = vm_set_memory_limits
    engine.handlers["VM.set_VCPUs_max"] = vm_set_vcpus_max
    engine.handlers["VM.set_VCPUs_at_startup"] = vm_set_vcpus_at_startup
    engine.handlers["VIF.plug"] = vif_plug
    engine.handlers["network.attach"] = network_attach
    engine.hidden["network.attach"] = 2


def seed(engine):
    return engine.create(
        "VM", name_label=TEMPLATE, is_a_template=True, power_state="Halted",
        HVM_boot_policy="BIOS order", HVM_boot_params={"order": "dc"},
        other_config={"install-methods": "cdrom"},
        memory_static_min=128 * MIB, memory_static_max=256 * MIB,
        memory_dynamic_min=256 * MIB, memory_dynamic_max=256 * MIB,
        VCPUs_max=1, VCPUs_at_startup=1)


def _require(engine, vm, states, expected, vm_only=False):
    """The VM's record, if its power state is one of ``states``; VM_IS_TEMPLATE for a
    template where ``vm_only``, VM_BAD_POWER_STATE [vm, expected, actual] otherwise."""
    record = engine.record("VM", vm)
    if vm_only and record["is_a_template"]:
        raise XapiFailure("VM_IS_TEMPLATE", vm)
    if record["power_state"] not in states:
        raise XapiFailure("VM_BAD_POWER_STATE", vm, expected, record["power_state"].lower())
    return record


def _power(engine, vm, record, state, host):
    engine.set_field("VM", vm, "power_state", state)
    engine.set_field("VM", vm, "resident_on", host)
    for kind in ("VIF", "VBD"):
        for device in record[kind + "s"]:
            engine.set_field(kind, device, "currently_attached", state != "Halted")
    sync_bridges(engine)


def vm_clone(engine, session, vm, new_name):
    source = _require(engine, vm, ("Halted",), "halted")
    # each map and set copied: the clone must not share them with its template
    copy = {k: _copy(v) for k, v in source.items() if k not in ("uuid", "VIFs", "VBDs")}
    copy["name_label"] = new_name
    return engine.create("VM", **copy)


def vm_provision(engine, session, vm):
    engine.record("VM", vm)  # no "disks" in the templates simulated: nothing to create
    return ""


def vm_start(engine, session, vm, start_paused, force):
    record = _require(engine, vm, ("Halted",), "halted", vm_only=True)
    host = next(iter(engine.objects["host"]), "OpaqueRef:NULL")
    _power(engine, vm, record, "Paused" if start_paused else "Running", host)
    return ""


def vm_shutdown(engine, session, vm):
    record = _require(engine, vm, ("Running", "Paused"), "running", vm_only=True)
    _power(engine, vm, record, "Halted", "OpaqueRef:NULL")
    return ""


def vm_destroy(engine, session, vm):
    record = _require(engine, vm, ("Halted",), "halted")
    for kind in ("VIF", "VBD"):  # xapi keeps the VDIs: disks outlive their VM
        for device in list(record[kind + "s"]):
            engine.destroy(kind, device)
    engine.destroy("VM", vm)
    return ""


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
    _require(engine, engine.record("VIF", vif)["VM"], ("Running",), "running")
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
    ref = engine._construct(cls, message, values)
    if vm["power_state"] == "Running":
        engine.set_field("VIF", ref, "currently_attached", True)
        sync_bridges(engine)
    return ref


def vif_destroy(engine, session, vif):
    engine.destroy("VIF", vif)
    sync_bridges(engine)
    return ""


def network_attach(engine, session, network, host):
    engine.record("network", network)
    engine.record("host", host)
    engine.attached = getattr(engine, "attached", set()) | {network}
    sync_bridges(engine)
    return ""


def sync_bridges(engine):
    """The bridges of PIF-less (private) networks that a running VM's VIF uses, or that
    were attached, exist; the others do not."""
    wanted = {}
    for ref, net in engine.objects["network"].items():
        if net["PIFs"] or net["bridge"] == "xenapi":
            continue  # VLAN/physical bridges exist with their PIF; the HIMN is xapi's
        live = [vif for vif in net["VIFs"]
                if engine.objects["VM"][engine.objects["VIF"][vif]["VM"]]["power_state"]
                in ("Running", "Paused")]
        if live or ref in getattr(engine, "attached", ()):
            wanted[net["bridge"]] = bridge_spec(engine, ref, live)
    engine.bridges.sync(wanted)
