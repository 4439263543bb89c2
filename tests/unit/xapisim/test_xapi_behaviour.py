"""What third-party XenAPI clients read and do, as xapi answers them (issue 14), over the
real SDK on HTTP where a client would see it."""
import threading
import time

from agent.xapisim import datamodel as dm
from tests.unit.xapisim.replies import error, ok
from tests.unit.xapisim.test_sdk import failure, login

GIB = 1024 ** 3


def guest(x, name="guest"):
    template = x.VM.get_by_name_label("Other install media")[0]
    vm = x.VM.clone(template, name)
    x.VM.provision(vm)
    return vm


# ---- 1. host.software_version -----------------------------------------------------------
def test_software_version_has_the_keys_xapi_writes(xenapi):
    host = xenapi.host.get_all()[0]
    version = xenapi.host.get_software_version(host)
    for key in ("product_version", "product_brand", "platform_version", "platform_name",
                "build_number", "xapi", "xapi_build", "xen", "linux", "network_backend",
                "db_schema", "xencenter_min", "xencenter_max", "hostname", "date"):
        assert version.get(key), key
    assert version["product_version"].count(".") == 2
    major, minor = (xenapi.host.get_API_version_major(host),
                    xenapi.host.get_API_version_minor(host))
    assert version["xencenter_max"] == "%s.%s" % (major, minor)


def test_software_version_names_the_network_backend(model):
    from agent.xapisim.bridges import LinuxBridges
    from agent.xapisim.engine import Engine
    from agent.xapisim.seed import seed
    for bridges, backend in ((None, "openvswitch"), (LinuxBridges(), "bridge")):
        engine = Engine(model)
        host, _pool = seed(engine, bridges=bridges)
        assert engine.record("host", host)["software_version"]["network_backend"] == backend


# ---- 2. VM.provision ---------------------------------------------------------------------
def test_provision_makes_the_templates_disks_and_clears_template(xenapi, engine):
    sr = xenapi.pool.get_default_SR(xenapi.pool.get_all()[0])
    sr_uuid = xenapi.SR.get_uuid(sr)
    template = xenapi.VM.clone(xenapi.VM.get_by_name_label("Other install media")[0], "deb")
    xenapi.VM.add_to_other_config(template, "disks", (
        '<provision><disk device="0" size="%d" sr="%s" bootable="true" type="system"/>'
        '<disk device="1" size="%d" sr="%s" bootable="false" type="user"/></provision>'
        % (8 * GIB, sr_uuid, GIB, sr_uuid)))
    vm = xenapi.VM.clone(template, "new")
    xenapi.VM.provision(vm)
    rec = xenapi.VM.get_record(vm)
    assert rec["is_a_template"] is False and "disks" not in rec["other_config"]
    disks = sorted((xenapi.VBD.get_userdevice(b), xenapi.VBD.get_record(b)) for b in rec["VBDs"])
    assert [(d, b["bootable"], b["type"], b["mode"], b["unpluggable"]) for d, b in disks] == [
        ("0", True, "Disk", "RW", False), ("1", False, "Disk", "RW", True)]
    vdis = [xenapi.VDI.get_record(b["VDI"]) for _, b in disks]
    assert [(v["virtual_size"], v["type"], v["SR"], v["name_label"]) for v in vdis] == [
        (str(8 * GIB), "system", sr, "0"), (str(GIB), "user", sr, "1")]
    assert all(v["name_description"] == "Created by template provisioner" for v in vdis)
    xenapi.VM.start(vm, False, False)  # no VM_IS_TEMPLATE any more
    assert xenapi.VM.get_power_state(vm) == "Running"
    # the template keeps its description; a clone of it again gets its own disks
    assert "disks" in xenapi.VM.get_other_config(template)


def test_provision_with_an_unknown_sr_fails_and_leaves_no_disk(xenapi, engine):
    vm = xenapi.VM.clone(xenapi.VM.get_by_name_label("Other install media")[0], "x")
    xenapi.VM.add_to_other_config(vm, "disks", '<provision><disk device="0" size="1" '
                                  'sr="" bootable="true" type="system"/></provision>')
    vdis = len(engine.objects["VDI"])
    assert failure(xenapi.VM.provision, vm) == ["UUID_INVALID", "sr", ""]
    assert len(engine.objects["VDI"]) == vdis and xenapi.VM.get_VBDs(vm) == []
    assert failure(xenapi.VM.provision, vm) == ["PROVISION_ONLY_ALLOWED_ON_TEMPLATE"]


def test_provision_without_disks_only_makes_a_vm(xenapi):
    vm = guest(xenapi)
    assert xenapi.VM.get_is_a_template(vm) is False and xenapi.VM.get_VBDs(vm) == []


# ---- 3. both sides of every relation -----------------------------------------------------
def test_the_relations_are_xen_apis(model):
    pairs = {(r.cls, r.field, r.target, r.many) for r in model.relations}
    for pair in (("VM", "resident_on", "host", "resident_VMs"), ("VIF", "VM", "VM", "VIFs"),
                 ("VBD", "VM", "VM", "VBDs"), ("VIF", "network", "network", "VIFs"),
                 ("PIF", "network", "network", "PIFs"), ("VDI", "SR", "SR", "VDIs"),
                 ("PBD", "SR", "SR", "PBDs"), ("VM", "groups", "VM_group", "VMs"),
                 ("VM_group", "VMs", "VM", "groups")):
        assert pair in pairs
    assert len(pairs) > 50


def test_every_one_to_many_relation_keeps_its_set(model, engine):
    """Generic: for each relation of the datamodel, make one object of each side, point
    the ref at the other, move it, drop it; the set follows every time."""
    for rel in model.relations:
        if not rel.one_to_many:
            continue
        a, b = engine.create(rel.target), engine.create(rel.target)
        child = engine.create(rel.cls, **{rel.field: a})
        assert engine.objects[rel.target][a][rel.many] == [child], rel
        engine.set_field(rel.cls, child, rel.field, b)
        assert engine.objects[rel.target][a][rel.many] == [], rel
        assert engine.objects[rel.target][b][rel.many] == [child], rel
        engine.destroy(rel.cls, child)
        assert engine.objects[rel.target][b][rel.many] == [], rel


def test_a_running_vm_is_in_its_hosts_resident_vms(xenapi):
    host = xenapi.host.get_all()[0]
    vm = guest(xenapi)
    xenapi.VM.start(vm, False, False)
    assert xenapi.VM.get_resident_on(vm) == host
    assert vm in xenapi.host.get_resident_VMs(host)
    xenapi.VM.hard_shutdown(vm)
    assert vm not in xenapi.host.get_resident_VMs(host)


def test_many_to_many_groups_are_kept_on_both_sides(xenapi, engine):
    vm = guest(xenapi)
    group = engine.create("VM_group", name_label="g")
    xenapi.VM.set_groups(vm, [group])
    assert xenapi.VM_group.get_VMs(group) == [vm]
    xenapi.VM.set_groups(vm, [])
    assert xenapi.VM_group.get_VMs(group) == []


# ---- 4. runtime fields -------------------------------------------------------------------
def test_domid_and_metrics_follow_the_power_state(xenapi):
    vm = guest(xenapi)
    assert xenapi.VM.get_domid(vm) == "-1"
    metrics = xenapi.VM.get_metrics(vm)
    assert xenapi.VM_metrics.get_record(metrics)["uuid"]
    xenapi.VM.start(vm, False, False)
    first = int(xenapi.VM.get_domid(vm))
    assert first > 0
    assert xenapi.VM_metrics.get_state(metrics) == ["running"]
    xenapi.VM.clean_reboot(vm)
    assert int(xenapi.VM.get_domid(vm)) > first  # a new domain
    xenapi.VM.clean_shutdown(vm)
    assert xenapi.VM.get_domid(vm) == "-1"


def test_a_reboot_gives_the_vifs_ports_the_new_domains_name(xenapi, engine):
    net = xenapi.network.create({"other_config": {}})
    vm = guest(xenapi)
    vif = xenapi.VIF.create({"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "1500",
                             "other_config": {}, "qos_algorithm_type": "",
                             "qos_algorithm_params": {}})
    xenapi.VM.start(vm, False, False)
    uuid = xenapi.VIF.get_uuid(vif)
    assert engine.bridges.ports[uuid][1] == "vif%s.0" % xenapi.VM.get_domid(vm)
    xenapi.VM.hard_reboot(vm)
    assert engine.bridges.ports[uuid][1] == "vif%s.0" % xenapi.VM.get_domid(vm)
    xenapi.VM.hard_shutdown(vm)
    assert uuid not in engine.bridges.ports


def test_the_host_has_metrics_and_a_control_domain(xenapi):
    host = xenapi.host.get_all()[0]
    assert xenapi.host_metrics.get_live(xenapi.host.get_metrics(host)) is True
    dom0 = xenapi.host.get_control_domain(host)
    rec = xenapi.VM.get_record(dom0)
    assert (rec["is_control_domain"], rec["power_state"], rec["domid"], rec["resident_on"],
            rec["is_a_template"]) == (True, "Running", "0", host, False)
    assert dom0 in xenapi.host.get_resident_VMs(host)
    assert "clean_shutdown" not in rec["allowed_operations"]
    assert failure(xenapi.VM.clean_shutdown, dom0) == [
        "OPERATION_NOT_ALLOWED", "This operation is not allowed on a control domain"]


def test_allowed_operations_follow_the_power_state(xenapi):
    net = xenapi.network.create({"other_config": {}})
    vm = guest(xenapi)
    vif = xenapi.VIF.create({"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "1500",
                             "other_config": {}, "qos_algorithm_type": "",
                             "qos_algorithm_params": {}})
    halted = set(xenapi.VM.get_allowed_operations(vm))
    assert {"start", "clone", "copy", "destroy", "export"} <= halted
    assert not halted & {"clean_shutdown", "hard_shutdown", "suspend", "resume", "provision"}
    assert xenapi.VIF.get_allowed_operations(vif) == ["attach"]
    xenapi.VM.start(vm, False, False)
    running = set(xenapi.VM.get_allowed_operations(vm))
    assert {"clean_shutdown", "hard_shutdown", "clean_reboot", "hard_reboot", "suspend",
            "pause", "snapshot"} <= running
    assert not running & {"start", "destroy", "clone", "resume"}
    assert sorted(xenapi.VIF.get_allowed_operations(vif)) == ["attach", "unplug"]
    xenapi.VM.suspend(vm)
    assert {"resume", "hard_shutdown", "destroy"} <= set(xenapi.VM.get_allowed_operations(vm))
    template = xenapi.VM.get_by_name_label("Other install media")[0]
    assert set(xenapi.VM.get_allowed_operations(template)) == {
        "changing_dynamic_range", "changing_static_range", "changing_shadow_memory",
        "changing_NVRAM", "clone", "copy", "export", "metadata_export", "provision",
        "destroy", "migrate_send"}
    host = xenapi.host.get_all()[0]
    assert "evacuate" in xenapi.host.get_allowed_operations(host)


# ---- 5. messages -------------------------------------------------------------------------
def test_async_returns_a_task_that_ends_with_the_result(xenapi):
    vm = guest(xenapi)
    token = xenapi.event_from(["task"], "", 0.0)["token"]
    task = xenapi.Async.VM.start(vm, False, False)
    assert task.startswith("OpaqueRef:")
    deadline = time.monotonic() + 5
    while xenapi.task.get_status(task) == "pending" and time.monotonic() < deadline:
        time.sleep(0.01)
    rec = xenapi.task.get_record(task)
    assert (rec["status"], rec["progress"], rec["error_info"]) == ("success", 1.0, [])
    assert rec["name_label"] == "Async.VM.start"
    assert xenapi.VM.get_power_state(vm) == "Running"
    events = xenapi.event_from(["task"], token, 1.0)["events"]
    assert [(e["operation"], e["ref"]) for e in events][:1] == [("add", task)]
    assert events[-1]["snapshot"]["status"] == "success"
    # a failure ends in the task, not in the call
    failed = xenapi.Async.VM.start(vm, False, False)
    while xenapi.task.get_status(failed) == "pending":
        time.sleep(0.01)
    assert xenapi.task.get_error_info(failed) == ["VM_BAD_POWER_STATE", vm, "halted",
                                                  "running"]
    assert xenapi.task.get_status(failed) == "failure"
    # a result that is a value travels as XML-RPC writes it
    clone = xenapi.Async.VM.clone(xenapi.VM.get_by_name_label("Other install media")[0], "c")
    while xenapi.task.get_status(clone) == "pending":
        time.sleep(0.01)
    result = xenapi.task.get_result(clone)
    assert result.startswith("<value>OpaqueRef:") and result.endswith("</value>")
    xenapi.task.destroy(clone)
    assert failure(xenapi.task.get_status, clone)[0] == "HANDLE_INVALID"


def test_task_create_and_cancel(xenapi):
    task = xenapi.task.create("backup", "by a client")
    rec = xenapi.task.get_record(task)
    assert (rec["status"], rec["name_label"], rec["name_description"]) == (
        "pending", "backup", "by a client")
    xenapi.task.cancel(task)
    assert xenapi.task.get_status(task) == "cancelled"


def test_async_getters_do_not_exist(xenapi):
    vm = guest(xenapi)
    assert failure(xenapi.Async.VM.get_record, vm)[0] == "MESSAGE_METHOD_UNKNOWN"


def test_allowed_devices(xenapi):
    vm = guest(xenapi)
    net = xenapi.network.create({"other_config": {}})
    assert xenapi.VM.get_allowed_VIF_devices(vm) == [str(n) for n in range(16)]
    xenapi.VIF.create({"device": "1", "network": net, "VM": vm, "MAC": "", "MTU": "1500",
                       "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    assert "1" not in xenapi.VM.get_allowed_VIF_devices(vm)
    devices = xenapi.VM.get_allowed_VBD_devices(vm)
    assert devices[:3] == ["0", "1", "2"] and len(devices) == 255
    xenapi.VBD.create({"VM": vm, "VDI": dm.NULL_REF, "userdevice": "3", "bootable": False,
                       "mode": "RO", "type": "CD", "empty": True, "unpluggable": True,
                       "other_config": {}, "qos_algorithm_type": "",
                       "qos_algorithm_params": {}})
    assert "3" not in xenapi.VM.get_allowed_VBD_devices(vm)


def test_pbd_plug_and_unplug(xenapi):
    sr = xenapi.pool.get_default_SR(xenapi.pool.get_all()[0])
    pbd = xenapi.SR.get_PBDs(sr)[0]
    xenapi.PBD.unplug(pbd)
    assert xenapi.PBD.get_currently_attached(pbd) is False
    xenapi.PBD.plug(pbd)
    assert xenapi.PBD.get_currently_attached(pbd) is True
    vm = guest(xenapi)
    vdi = xenapi.VDI.create({"SR": sr, "virtual_size": str(GIB), "type": "user",
                             "sharable": False, "read_only": False, "other_config": {}})
    xenapi.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW",
                       "type": "Disk", "empty": False, "unpluggable": False,
                       "other_config": {}, "qos_algorithm_type": "",
                       "qos_algorithm_params": {}})
    xenapi.VM.start(vm, False, False)
    assert failure(xenapi.PBD.unplug, pbd) == ["VDI_IN_USE", vdi]


def test_suspend_resume_and_reboots(xenapi):
    vm = guest(xenapi)
    xenapi.VM.start(vm, False, False)
    xenapi.VM.suspend(vm)
    rec = xenapi.VM.get_record(vm)
    assert (rec["power_state"], rec["domid"], rec["resident_on"]) == (
        "Suspended", "-1", dm.NULL_REF)
    assert xenapi.VDI.get_type(rec["suspend_VDI"]) == "suspend"
    assert failure(xenapi.VM.start, vm, False, False) == ["VM_BAD_POWER_STATE", vm, "halted",
                                                          "suspended"]
    xenapi.VM.resume(vm, False, False)
    assert xenapi.VM.get_power_state(vm) == "Running"
    assert failure(xenapi.VDI.get_type, rec["suspend_VDI"])[0] == "HANDLE_INVALID"
    domid = int(xenapi.VM.get_domid(vm))
    xenapi.VM.hard_reboot(vm)
    assert int(xenapi.VM.get_domid(vm)) > domid
    xenapi.VM.pause(vm)
    assert failure(xenapi.VM.clean_reboot, vm) == ["VM_BAD_POWER_STATE", vm, "running",
                                                   "paused"]
    xenapi.VM.unpause(vm)
    xenapi.VM.clean_shutdown(vm)
    assert failure(xenapi.VM.suspend, vm) == ["VM_BAD_POWER_STATE", vm, "running", "halted"]


def test_vms_which_prevent_evacuation(xenapi):
    host = xenapi.host.get_all()[0]
    assert xenapi.host.get_vms_which_prevent_evacuation(host) == {}
    vm = guest(xenapi)
    xenapi.VM.start(vm, False, False)
    assert xenapi.host.get_vms_which_prevent_evacuation(host) == {vm: ["NO_HOSTS_AVAILABLE"]}


# ---- event.from while a task runs in another thread --------------------------------------
def test_a_watcher_sees_the_vm_change_of_an_async_call(served):
    _engine, url, _unix = served
    watcher, client = login(url), login(url)
    vm = guest(client.xenapi)
    token = watcher.xenapi.event_from(["vm/%s" % vm], "", 0.0)["token"]
    seen = {}

    def watch():
        seen["batch"] = watcher.xenapi.event_from(["vm/%s" % vm], token, 5.0)
    thread = threading.Thread(target=watch)
    thread.start()
    client.xenapi.Async.VM.start(vm, False, False)
    thread.join(6)
    assert seen["batch"]["events"][-1]["snapshot"]["power_state"] == "Running"


def test_engine_level_async_reply_is_a_task(call, engine):
    template = ok(call("VM.get_by_name_label", "Other install media"))[0]
    session = next(iter(engine.objects["session"]))
    task = ok(engine.call("Async.VM.clone", [session, template, "x"]))
    assert task in engine.objects["task"]
    assert error(engine.call("Async.VM.clone", [session, template]))[0] == \
        "MESSAGE_PARAMETER_COUNT_MISMATCH"
