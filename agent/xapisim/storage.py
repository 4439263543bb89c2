"""Storage as far as the lab's VMs need it: a local ext SR (the pool default), an ISO SR
with ISOs in it, VDIs, and VBDs for disks and the CD drive.

Semantics kept from xapi: VDI.create needs its required fields and a VDI-capable SR (not
an ISO library), thick SRs (lvm) run out of space with SR_FULL while ext ones are thin;
a CD VBD must be read-only, an empty one has no VDI; userdevice numbers are unique per
VM ("autodetect" takes the lowest free one); attached VBDs and the VDIs behind them cannot
be destroyed; a CD drive takes and gives back its ISO with VBD.insert / VBD.eject.
"""
from agent.xapisim.datamodel import NULL_REF
from agent.xapisim.engine import XapiFailure, _from_wire

GIB = 1024 ** 3
THIN = ("ext", "nfs", "file", "iso")  # SR types whose VDIs take space only when written
MAX_USERDEVICE = 15
DEFAULT_ISOS = ("ubuntu-22.04-server.iso",)


def install(engine):
    engine.handlers["VDI.create"] = vdi_create
    engine.handlers["VDI.destroy"] = vdi_destroy
    engine.handlers["VBD.create"] = vbd_create
    engine.handlers["VBD.destroy"] = vbd_destroy
    engine.handlers["VBD.insert"] = vbd_insert
    engine.handlers["VBD.eject"] = vbd_eject
    engine.handlers["PBD.plug"] = pbd_plug
    engine.handlers["PBD.unplug"] = pbd_unplug


def seed(engine, host, isos=DEFAULT_ISOS):
    """A local ext SR of 500 GiB (the pool's default SR) and an ISO library holding
    ``isos`` (1 GiB each). Returns (local SR ref, ISO SR ref)."""
    local = engine.create("SR", name_label="Local storage", type="ext", content_type="user",
                          physical_size=500 * GIB, physical_utilisation=0,
                          other_config={"i18n-key": "local-storage"})
    engine.create("PBD", host=host, SR=local, currently_attached=True,
                  device_config={"device": "/dev/sda3"})
    library = engine.create("SR", name_label="ISO library", type="iso", content_type="iso",
                            physical_size=len(isos) * GIB,
                            physical_utilisation=len(isos) * GIB)
    engine.create("PBD", host=host, SR=library, currently_attached=True,
                  device_config={"location": "/var/opt/iso"})
    for iso in isos:
        engine.create("VDI", name_label=iso, SR=library, type="user", read_only=True,
                      virtual_size=GIB, physical_utilisation=GIB, location=iso,
                      managed=True)
    for pool in engine.objects["pool"]:
        engine.set_field("pool", pool, "default_SR", local)
    return local, library


def vdi_create(engine, session, args):
    cls = engine.model.classes["VDI"]
    message = cls.messages["create"]
    engine.check_constructor(message, args)
    sr_ref = args["SR"]
    sr = engine.record("SR", sr_ref)
    if sr["content_type"] == "iso":
        raise XapiFailure("SR_OPERATION_NOT_SUPPORTED", sr_ref)
    size = _from_wire("int", args["virtual_size"])
    if size <= 0:
        raise XapiFailure("INVALID_VALUE", "virtual_size", str(size))
    thick = sr["type"] not in THIN
    free = sr["physical_size"] - sr["physical_utilisation"]
    if thick and size > free:
        raise XapiFailure("SR_FULL", str(size), str(free))
    ref = engine._construct(cls, message, args)
    vdi = engine.objects["VDI"][ref]
    if thick:
        engine.set_field("SR", sr_ref, "physical_utilisation", sr["physical_utilisation"] + size)
        engine.set_field("VDI", ref, "physical_utilisation", size)
    engine.set_field("SR", sr_ref, "virtual_allocation", sr["virtual_allocation"] + size)
    engine.set_field("VDI", ref, "managed", True)
    engine.set_field("VDI", ref, "location", vdi["uuid"])
    return ref


def vdi_destroy(engine, session, vdi):
    record = engine.record("VDI", vdi)
    for vbd in record["VBDs"]:
        if engine.record("VBD", vbd)["currently_attached"]:
            raise XapiFailure("VDI_IN_USE", vdi, "destroy")
    sr_ref, sr = record["SR"], engine.objects["SR"].get(record["SR"])
    if sr is not None and sr["content_type"] == "iso":
        raise XapiFailure("SR_OPERATION_NOT_SUPPORTED", sr_ref)
    for vbd in list(record["VBDs"]):  # xapi drops the VBDs that pointed at it
        engine.destroy("VBD", vbd)
    if sr is not None:
        engine.set_field("SR", sr_ref, "virtual_allocation",
                         sr["virtual_allocation"] - record["virtual_size"])
        engine.set_field("SR", sr_ref, "physical_utilisation",
                         sr["physical_utilisation"] - record["physical_utilisation"])
    engine.destroy("VDI", vdi)
    return ""


def vbd_create(engine, session, args):
    cls = engine.model.classes["VBD"]
    message = cls.messages["create"]
    engine.check_constructor(message, args)
    vm = engine.record("VM", args["VM"])
    kind, mode, empty, vdi = args["type"], args["mode"], args["empty"], args["VDI"]
    if kind not in ("CD", "Disk", "Floppy"):
        raise XapiFailure("INVALID_VALUE", "type", kind)
    if mode not in ("RO", "RW"):
        raise XapiFailure("INVALID_VALUE", "mode", mode)
    if kind == "CD" and mode != "RO":
        raise XapiFailure("VBD_CDS_MUST_BE_READONLY")
    if empty is True and kind != "CD":
        raise XapiFailure("VBD_NOT_REMOVABLE_MEDIA", NULL_REF)
    if empty is not True:
        disk = engine.record("VDI", vdi)
        if mode == "RW" and disk["read_only"]:
            raise XapiFailure("VDI_READONLY", vdi)
    elif vdi != NULL_REF:
        raise XapiFailure("INVALID_VALUE", "VDI", vdi)
    used = {engine.record("VBD", v)["userdevice"] for v in vm["VBDs"]}
    device = str(args["userdevice"])
    if device == "autodetect":
        free = [str(n) for n in range(MAX_USERDEVICE + 1) if str(n) not in used]
        if not free:
            raise XapiFailure("DEVICE_ALREADY_EXISTS", device)
        device = free[0]
    elif not device.isdigit() or int(device) > MAX_USERDEVICE:
        raise XapiFailure("INVALID_VALUE", "userdevice", device)
    elif device in used:
        raise XapiFailure("DEVICE_ALREADY_EXISTS", device)
    values = dict(args, userdevice=device, currently_attached=False)
    ref = engine._construct(cls, message, values)
    if vm["power_state"] in ("Running", "Paused"):
        engine.set_field("VBD", ref, "currently_attached", True)
    return ref


def vbd_destroy(engine, session, vbd):
    if engine.record("VBD", vbd)["currently_attached"]:
        raise XapiFailure("DEVICE_ALREADY_ATTACHED", vbd)
    engine.destroy("VBD", vbd)
    return ""


def vbd_insert(engine, session, vbd, vdi):
    record = engine.record("VBD", vbd)
    if record["type"] != "CD":
        raise XapiFailure("VBD_NOT_REMOVABLE_MEDIA", vbd)
    if not record["empty"]:
        raise XapiFailure("VBD_NOT_EMPTY", vbd)
    disk = engine.record("VDI", vdi)
    sr = engine.objects["SR"].get(disk["SR"], {})
    if sr.get("content_type") != "iso" and not disk["read_only"]:
        raise XapiFailure("VDI_IS_NOT_ISO", vdi, disk["type"])
    engine.set_field("VBD", vbd, "VDI", vdi)
    engine.set_field("VBD", vbd, "empty", False)
    return ""


def vbd_eject(engine, session, vbd):
    record = engine.record("VBD", vbd)
    if record["type"] != "CD":
        raise XapiFailure("VBD_NOT_REMOVABLE_MEDIA", vbd)
    if record["empty"]:
        raise XapiFailure("VBD_IS_EMPTY", vbd)
    engine.set_field("VBD", vbd, "VDI", NULL_REF)
    engine.set_field("VBD", vbd, "empty", True)
    return ""


def pbd_plug(engine, session, pbd):
    """Attach the SR on the PBD's host (a no-op when attached, as in xapi)."""
    engine.record("PBD", pbd)
    engine.set_field("PBD", pbd, "currently_attached", True)
    return ""


def pbd_unplug(engine, session, pbd):
    """Detach the SR from the host; refused while VDIs on it are attached, with
    VDI_IN_USE [each such VDI] (xapi_pbd.ml unplug)."""
    record = engine.record("PBD", pbd)
    if not record["currently_attached"]:
        return ""
    sr = engine.objects["SR"].get(record["SR"], {"VDIs": []})
    active = [vdi for vdi in sr["VDIs"]
              if any(engine.record("VBD", vbd)["currently_attached"]
                     for vbd in engine.record("VDI", vdi)["VBDs"])]
    if active:
        raise XapiFailure("VDI_IN_USE", *active)
    engine.set_field("PBD", pbd, "currently_attached", False)
    return ""
