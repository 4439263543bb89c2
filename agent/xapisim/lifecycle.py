"""allowed_operations as xapi computes them, and the checks behind them.

From xen-api's ocaml/xapi/xapi_vm_lifecycle.ml (VM: the power states each operation needs,
the exceptions for templates, snapshots and control domains, the operations xapi leaves
out of the list), xapi_vif_helpers.ml, xapi_vbd_helpers.ml and xapi_host_helpers.ml
(valid_operations). What the simulator has no model of is left out: no operation is ever
in progress (current_operations stays empty), guests are taken to have PV drivers (so
the operations that need guest support are allowed), nothing is blocked, no vGPU, PCI
or USB device is passed through, and no rolling pool upgrade runs.
"""
from agent.xapisim.engine import XapiFailure

HALTED, PAUSED, SUSPENDED, RUNNING = "Halted", "Paused", "Suspended", "Running"
ALL_STATES = (HALTED, PAUSED, SUSPENDED, RUNNING)

# xapi_vm_lifecycle.ml allowed_power_states: every VM operation and the power states
# in which it can run (the control domain may also change VCPUs/memory while running)
VM_POWER_STATES = {
    "import": (),
    "changing_VCPUs": (HALTED,), "changing_static_range": (HALTED,),
    "changing_memory_limits": (HALTED,),
    "changing_shadow_memory": (HALTED,), "changing_NVRAM": (HALTED,),
    "make_into_template": (HALTED,), "provision": (HALTED,), "start": (HALTED,),
    "start_on": (HALTED,), "create_vtpm": (HALTED,),
    "unpause": (PAUSED,),
    "csvm": (SUSPENDED,), "resume": (SUSPENDED,), "resume_on": (SUSPENDED,),
    "awaiting_memory_live": (RUNNING,), "call_plugin": (RUNNING,),
    "clean_reboot": (RUNNING,), "clean_shutdown": (RUNNING,),
    "changing_memory_live": (RUNNING,), "changing_shadow_memory_live": (RUNNING,),
    "changing_VCPUs_live": (RUNNING,), "data_source_op": (RUNNING,), "pause": (RUNNING,),
    "pool_migrate": (RUNNING,), "send_sysrq": (RUNNING,), "send_trigger": (RUNNING,),
    "snapshot_with_quiesce": (RUNNING,), "sysprep": (RUNNING,), "suspend": (RUNNING,),
    "changing_dynamic_range": (HALTED, RUNNING),
    "clone": (HALTED,), "copy": (HALTED,),
    "create_template": (HALTED, SUSPENDED), "destroy": (HALTED, SUSPENDED),
    "export": (HALTED, SUSPENDED),
    "hard_reboot": (PAUSED, RUNNING),
    "checkpoint": (PAUSED, SUSPENDED, RUNNING), "get_boot_record": (PAUSED, SUSPENDED, RUNNING),
    "shutdown": (PAUSED, SUSPENDED, RUNNING), "hard_shutdown": (PAUSED, SUSPENDED, RUNNING),
    "migrate_send": (HALTED, SUSPENDED, RUNNING),
    "assert_operation_valid": ALL_STATES, "metadata_export": ALL_STATES,
    "power_state_reset": ALL_STATES, "revert": ALL_STATES, "reverting": ALL_STATES,
    "snapshot": ALL_STATES, "update_allowed_operations": ALL_STATES,
    "query_services": ALL_STATES,
}
# what a template allows (check_template); destroy and migrate_send too unless default
TEMPLATE_OPS = ("changing_dynamic_range", "changing_static_range", "changing_memory_limits",
                "changing_shadow_memory", "changing_VCPUs", "changing_NVRAM", "clone",
                "copy", "export", "metadata_export", "provision")
SNAPSHOT_OPS = ("revert", "clone", "copy", "export", "destroy", "hard_shutdown",
                "metadata_export")
CONTROL_DOMAIN_OPS = ("data_source_op", "changing_memory_live", "awaiting_memory_live",
                      "metadata_export", "changing_dynamic_range", "changing_memory_limits",
                      "changing_static_range", "start", "start_on", "changing_VCPUs",
                      "destroy")
# update_allowed_operations never lists these
IGNORED_OPS = ("create_template", "power_state_reset", "csvm", "get_boot_record",
               "send_sysrq", "send_trigger", "query_services", "shutdown", "call_plugin",
               "changing_memory_live", "awaiting_memory_live", "changing_memory_limits",
               "changing_shadow_memory_live", "changing_VCPUs", "assert_operation_valid",
               "data_source_op", "update_allowed_operations", "import", "reverting")
HOST_OPS = ("provision", "evacuate", "shutdown", "reboot", "power_on", "vm_start",
            "vm_resume", "vm_migrate", "apply_updates", "enable")


def install(engine):
    engine.allowed.update(VM=vm_allowed, VIF=vif_allowed, VBD=vbd_allowed, host=host_allowed)
    engine.dependents.setdefault("VM", []).append(_refresh_devices)


def vm_operation_error(engine, vm, record, op):
    """None if ``op`` may run on the VM now, else the XapiFailure xapi raises
    (check_operation_error, in its order)."""
    states = VM_POWER_STATES[op]
    if record["power_state"] not in states:
        return XapiFailure("VM_BAD_POWER_STATE", vm,
                           ", ".join(s.lower() for s in states),
                           record["power_state"].lower())
    snapshot = record["is_a_snapshot"]
    if record["is_a_template"] and not snapshot:
        default = record["is_default_template"] or \
            record["other_config"].get("default_template", "").lower() in ("1", "true")
        if op not in TEMPLATE_OPS and not (op in ("destroy", "migrate_send") and not default):
            return XapiFailure("VM_IS_TEMPLATE", vm, op)
    if snapshot and op not in SNAPSHOT_OPS:
        return XapiFailure("VM_IS_SNAPSHOT", vm, op)
    if op == "provision" and not record["is_a_template"]:
        return XapiFailure("PROVISION_ONLY_ALLOWED_ON_TEMPLATE")
    if op == "revert" and not snapshot:
        return XapiFailure("REVERT_ONLY_ALLOWED_ON_SNAPSHOT")
    if record["is_control_domain"]:
        if op in ("changing_VCPUs", "destroy") and record["domid"] == 0:
            return XapiFailure("OPERATION_NOT_ALLOWED", "This operation is not allowed on dom0")
        if op not in CONTROL_DOMAIN_OPS:
            return XapiFailure("OPERATION_NOT_ALLOWED",
                               "This operation is not allowed on a control domain")
    if op == "snapshot_with_quiesce":
        return XapiFailure("VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED", vm)
    if op == "query_services" and \
            record["other_config"].get("is_system_domain", "").lower() not in ("1", "true"):
        return XapiFailure("NOT_SYSTEM_DOMAIN", vm)
    if op == "create_vtpm" and record["VTPMs"]:
        return XapiFailure("VTPM_MAX_AMOUNT_REACHED", len(record["VTPMs"]))
    return None


def assert_vm_operation(engine, vm, op):
    """Raise what xapi raises when ``op`` cannot run on the VM now."""
    failure = vm_operation_error(engine, vm, engine.record("VM", vm), op)
    if failure is not None:
        raise failure


def vm_allowed(engine, vm, record):
    return sorted(op for op in VM_POWER_STATES if op not in IGNORED_OPS
                  and vm_operation_error(engine, vm, record, op) is None)


def _device_ops(engine, record, ops):
    """VIF/VBD: plug/unplug follow the VM's power state and currently_attached."""
    vm = engine.objects["VM"].get(record["VM"])
    if vm is None:
        return set()
    allowed = set(ops)
    if vm["power_state"] == RUNNING:
        allowed.discard("plug" if record["currently_attached"] else "unplug")
        if not record["currently_attached"]:
            allowed.discard("unplug_force")
    else:
        allowed -= {"plug", "unplug", "unplug_force"}
    if vm["is_control_domain"]:
        allowed.discard("plug")
    return allowed


def vif_allowed(engine, vif, record):
    return sorted(_device_ops(engine, record, ("attach", "plug", "unplug")))


def vbd_allowed(engine, vbd, record):
    allowed = _device_ops(engine, record, ("attach", "eject", "unplug", "unplug_force",
                                           "insert", "plug", "pause", "unpause"))
    vm = engine.objects["VM"].get(record["VM"])
    if vm is not None and vm["power_state"] not in (RUNNING, PAUSED):
        allowed -= {"pause", "unpause"}
    if not record["unpluggable"]:
        allowed -= {"unplug", "unplug_force"}
    if record["type"] != "CD":
        allowed -= {"insert", "eject"}
    allowed.discard("eject" if record["empty"] else "insert")
    return sorted(allowed)


def host_allowed(engine, host, record):
    allowed = set(HOST_OPS) - {"power_on"}  # the host is live
    if record["enabled"]:
        allowed -= {"reboot", "shutdown", "apply_updates"}  # HOST_NOT_DISABLED
    return sorted(allowed)


def _refresh_devices(engine, vm, record):
    """A VM's power state decides its VIFs' and VBDs' operations: refresh them."""
    for kind, rule in (("VIF", vif_allowed), ("VBD", vbd_allowed)):
        for device in record[kind + "s"]:
            device_record = engine.objects[kind].get(device)
            if device_record is not None and \
                    rule(engine, device, device_record) != device_record["allowed_operations"]:
                engine.touched(kind, device, "mod")

