"""Storage in the simulator: the seeded SRs, VDI.create's rules, disk and CD VBDs."""
from tests.unit.xapisim.replies import error, ok
from tests.unit.xapisim.test_vms import new_vm

GIB = 1024 ** 3
NULL = "OpaqueRef:NULL"


def vdi(call, sr, size=GIB, **extra):
    record = {"SR": sr, "virtual_size": str(size), "type": "user", "sharable": False,
              "read_only": False, "other_config": {}, "name_label": "disk"}
    record.update(extra)
    return call("VDI.create", record)


def vbd(call, vm, disk, userdevice, kind="Disk", mode="RW", empty=False):
    return call("VBD.create", {"VM": vm, "VDI": disk, "userdevice": userdevice,
                               "bootable": False, "mode": mode, "type": kind, "empty": empty,
                               "other_config": {}, "qos_algorithm_type": "",
                               "qos_algorithm_params": {}})


def sr_named(call, name):
    return ok(call("SR.get_by_name_label", name))[0]


def test_seeded_storage(call):
    pool = ok(call("pool.get_all"))[0]
    local = ok(call("pool.get_default_SR", pool))
    assert ok(call("SR.get_type", local)) == "ext"
    assert ok(call("SR.get_name_label", local)) == "Local storage"
    library = sr_named(call, "ISO library")
    assert ok(call("SR.get_content_type", library)) == "iso"
    isos = [ok(call("VDI.get_name_label", v)) for v in ok(call("SR.get_VDIs", library))]
    assert isos == ["ubuntu-22.04-server.iso"]


def test_vdi_create_needs_its_fields_and_a_disk_sr(call):
    local = sr_named(call, "Local storage")
    assert error(call("VDI.create", {"SR": local, "virtual_size": "1"})) == [
        "FIELD_TYPE_ERROR", "type"]
    assert error(vdi(call, local, size=0)) == ["INVALID_VALUE", "virtual_size", "0"]
    library = sr_named(call, "ISO library")
    assert error(vdi(call, library)) == ["SR_OPERATION_NOT_SUPPORTED", library]
    disk = ok(vdi(call, local, size=50 * GIB))
    assert ok(call("VDI.get_virtual_size", disk)) == str(50 * GIB)
    assert ok(call("SR.get_virtual_allocation", local)) == str(50 * GIB)
    assert ok(call("SR.get_physical_utilisation", local)) == "0"  # ext is thin


def test_thick_sr_fills_up(call, engine):
    lvm = engine.create("SR", name_label="lvm", type="lvm", content_type="user",
                        physical_size=10 * GIB)
    ok(vdi(call, lvm, size=8 * GIB))
    assert error(vdi(call, lvm, size=4 * GIB)) == ["SR_FULL", str(4 * GIB), str(2 * GIB)]


def test_disk_and_cd_vbds(call):
    vm = new_vm(call)
    disk = ok(vdi(call, sr_named(call, "Local storage")))
    ok(vbd(call, vm, disk, "0"))
    assert error(vbd(call, vm, disk, "0")) == ["DEVICE_ALREADY_EXISTS", "0"]
    assert error(vbd(call, vm, NULL, "3", kind="CD", mode="RW", empty=True)) == [
        "VBD_CDS_MUST_BE_READONLY"]
    assert error(vbd(call, vm, NULL, "1", empty=True)) == ["VBD_NOT_REMOVABLE_MEDIA", NULL]
    cd = ok(vbd(call, vm, NULL, "3", kind="CD", mode="RO", empty=True))
    assert ok(call("VBD.get_empty", cd)) is True
    iso = ok(call("SR.get_VDIs", sr_named(call, "ISO library")))[0]
    ok(call("VBD.insert", cd, iso))
    assert error(call("VBD.insert", cd, iso)) == ["VBD_NOT_EMPTY", cd]
    assert ok(call("VBD.get_VDI", cd)) == iso
    ok(call("VBD.eject", cd))
    assert error(call("VBD.eject", cd)) == ["VBD_IS_EMPTY", cd]
    auto = ok(vbd(call, vm, ok(vdi(call, sr_named(call, "Local storage"))), "autodetect"))
    assert ok(call("VBD.get_userdevice", auto)) == "1"


def test_read_only_vdi_cannot_be_a_rw_disk(call):
    vm = new_vm(call)
    iso = ok(call("SR.get_VDIs", sr_named(call, "ISO library")))[0]
    assert error(vbd(call, vm, iso, "0")) == ["VDI_READONLY", iso]


def test_attached_disks_cannot_go(call):
    vm = new_vm(call)
    local = sr_named(call, "Local storage")
    disk = ok(vdi(call, local, size=2 * GIB))
    device = ok(vbd(call, vm, disk, "0"))
    ok(call("VM.start", vm, False, False))
    assert ok(call("VBD.get_currently_attached", device)) is True
    assert error(call("VDI.destroy", disk)) == ["VDI_IN_USE", disk, "destroy"]
    assert error(call("VBD.destroy", device)) == ["DEVICE_ALREADY_ATTACHED", device]
    ok(call("VM.hard_shutdown", vm))
    ok(call("VM.destroy", vm))
    # the VM's VBDs went with it; its VDIs did not (xapi keeps disks)
    assert error(call("VBD.get_record", device))[0] == "HANDLE_INVALID"
    ok(call("VDI.destroy", disk))
    assert ok(call("SR.get_virtual_allocation", local)) == "0"


def test_isos_cannot_be_destroyed(call):
    library = sr_named(call, "ISO library")
    iso = ok(call("SR.get_VDIs", library))[0]
    assert error(call("VDI.destroy", iso)) == ["SR_OPERATION_NOT_SUPPORTED", library]
