"""VMs as the blog's lab needs them: from a template, with memory, vCPUs, disks, NICs on
named networks in the given order, an ISO in the CD drive, a boot order, the host internal
management network, and an optional start; then start, shut down and destroy (with the
disks). All or nothing: a failure at any step of a creation undoes what was created, and
the error names the step and XAPI's code.

Disks go on a named SR or the pool's default. ``sr_check`` says what to do where that SR
is not ``ext`` (thin VHD files; lvm allocates every disk in full): "warn" (the default:
the creation goes on and the result carries a warning), "refuse" (nothing is created) or
"off".
"""
import logging
import re
from xml.dom import minidom
from xml.parsers.expat import ExpatError

import XenAPI

from agent.core import model, placement
from agent.errors import GatewayInvalid
from agent.service import steps, views
from agent.service.errors import Conflict, InvalidInput, NotFound, XapiCallFailed
from agent.service.networks import Networks
from agent.service.steps import field, step

log = logging.getLogger(__name__)

MIB = 1024 * 1024
GIB = 1024 * MIB
NULL = "OpaqueRef:NULL"
DEFAULT_TEMPLATE = "Other install media"
HIMN_DEVICE = "9"            # the XenCenter HIMN plug-in's VIF device
HIMN_MAC_KEY = "vm-data/himn_mac"
TEMPLATE_DISKS = "disks"     # xapi_templates.ml: the disks VM.provision makes, as XML
CD_DEVICE = "3"              # xapi's (and XenCenter's) CD drive position on HVM guests
MAX_DISKS = 15               # userdevices 0..15 without the CD's
MAX_DISK_GIB = 2040          # the VHD format's limit
SR_CHECKS = ("warn", "refuse", "off")
_BOOT = re.compile(r"^[cdn]{1,3}$")


class Vms(object):
    def __init__(self, xenapi):
        self.x = xenapi
        self.networks = Networks(xenapi)

    # ---- reading -----------------------------------------------------------------------
    def list(self):
        """Views of every VM (no templates, no control domain), by name."""
        return views.vms(self.x)

    def get(self, key):
        return self.view(self._find(key))

    def view(self, vm):
        return views.vm(views.Records(self.x), vm)

    # ---- changes -----------------------------------------------------------------------
    def create(self, name, memory_mib=256, vcpus=1, nics=(), disks=(), iso=None, boot="dc",
               himn=False, start=False, template=DEFAULT_TEMPLATE, sr_check="warn",
               progress=None, marks=None, host=None):
        """Returns the new VM's view, with ``warnings`` (a list of sentences).
        ``nics``: network names or uuids, device 0, 1, ... ``disks``: [{"size_gib": N,
        "sr": name or uuid (default: the pool's default SR)}], device 0, 1, 2, 4, ...
        ``iso``: an ISO's name or uuid, in the CD drive (device 3; the drive is there,
        empty, without one). ``boot``: HVM boot order letters (c disk, d CD, n network),
        e.g. "ncd". ``marks``: other_config keys for the VM (a topology marks what it
        manages). ``host``: the pool host (uuid or name) it starts on (VM.start_on), also
        its affinity, where a later start prefers it."""
        progress = progress or (lambda step: None)
        name = field(model.parse_name, name, "name")
        if name.startswith(steps.NAME_PREFIX):
            raise InvalidInput("VM names starting with %s are the names of VMs being "
                               "created; choose another" % steps.NAME_PREFIX, field="name")
        memory = _whole(memory_mib, "memory_mib", 128, 1024 * 1024) * MIB
        vcpus = _whole(vcpus, "vcpus", 1, 64)
        if not isinstance(boot, str) or not _BOOT.match(boot) or len(set(boot)) != len(boot):
            raise InvalidInput("boot %r: give boot devices in order as letters c (disk), "
                               "d (CD) and n (network), e.g. ncd" % (boot,), field="boot")
        if sr_check not in SR_CHECKS:
            raise InvalidInput("sr_check must be one of %s" % ", ".join(SR_CHECKS),
                               field="sr_check")
        if not isinstance(nics, (list, tuple)):
            raise InvalidInput("nics must be a list of network names or uuids", field="nics")
        networks = []
        for i, key in enumerate(nics):
            try:
                networks.append(self.networks.find(key)[0])
            except NotFound:
                raise NotFound("nics[%d]: no network %s" % (i, key), field="nics[%d]" % i)
        warnings = []
        disk_plan = self._disks(disks, sr_check, warnings)
        iso_ref = self._iso(iso) if iso is not None else None
        himn_ref = self._himn() if himn else None
        host_ref = self.host(host)
        templates = [r for r in self.x.VM.get_by_name_label(template)
                     if self.x.VM.get_is_a_template(r)]
        if not templates:
            raise NotFound("no template named %s" % template, field="template")

        # A template may describe disks (other_config:disks) that VM.provision makes:
        # given disks replace them; without, they go on the default SR, as xe vm-install
        # does (xapi itself needs the SR's uuid in the description).
        template_sr = None
        if TEMPLATE_DISKS in self.x.VM.get_other_config(templates[0]) and not disk_plan:
            srs = self.x.SR.get_all_records()
            template_sr = srs[self._sr(None, srs, "template disks")]["uuid"]

        with steps.pool(self.x).claim("VM", name, lambda: self._name_free(name)), \
                steps.Operation(self.x, "create VM %s" % name) as op:
            made = {"vm": None, "vdis": [], "started": False}
            op.undo("undo the VM", self._undo, made)
            progress("clone %s" % template)
            vm = made["vm"] = step("clone the template", self.x.VM.clone, templates[0],
                                   op.temp_name)
            described = step("read the template's disks", self.x.VM.get_other_config,
                             vm).get(TEMPLATE_DISKS)
            if described is not None:
                self._template_disks(vm, described, template_sr)
            step("provision", self.x.VM.provision, vm)
            for vbd in step("read the provisioned disks", self.x.VM.get_VBDs, vm):
                vdi = step("read a provisioned disk", self.x.VBD.get_VDI, vbd)
                made["vdis"].append(vdi)
                for key, value in sorted(op.mark.items()):
                    step("mark a provisioned disk", self.x.VDI.add_to_other_config, vdi, key,
                         value)
            step("make it a VM", self.x.VM.set_is_a_template, vm, False)
            progress("memory and vCPUs")
            step("set memory", self.x.VM.set_memory_limits, vm, str(min(memory, 128 * MIB)),
                 str(memory), str(memory), str(memory))
            step("set vCPUs", self.x.VM.set_VCPUs_max, vm, str(vcpus))
            step("set vCPUs at startup", self.x.VM.set_VCPUs_at_startup, vm, str(vcpus))
            step("set the boot order", self.x.VM.set_HVM_boot_params, vm, {"order": boot})
            if host_ref is not None:
                step("set its affinity", self.x.VM.set_affinity, vm, host_ref)
            for key, value in sorted((marks or {}).items()):
                step("mark it %s" % key, self.x.VM.add_to_other_config, vm, key, value)
            for i, (device, size, sr, sr_name) in enumerate(disk_plan):
                progress("disk %d: %d GiB on %s" % (i, size // GIB, sr_name))
                vdi = step("create disk %d" % i, self.x.VDI.create,
                           _vdi(name, i, size, sr, op.mark))
                made["vdis"].append(vdi)
                step("attach disk %d" % i, self.x.VBD.create, _vbd(vm, vdi, device, i == 0))
            progress("CD drive" + (" with %s" % iso if iso_ref else ""))
            step("create the CD drive", self.x.VBD.create, _cd(vm, iso_ref))
            for device, net in enumerate(networks):
                progress("NIC %d" % device)
                step("create NIC %d" % device, self.x.VIF.create, _vif(vm, net, device))
            if himn_ref is not None:
                progress("host internal management network")
                self._attach_himn(vm, himn_ref)
            if start:
                progress("start" + (" on %s" % host if host_ref is not None else ""))
                self._start(vm, host_ref)
                made["started"] = True
            op.commit("name it %s" % name, self.x.VM.set_name_label, vm, name)
            for vdi in made["vdis"]:
                op.tidy("unmark its disk", self.x.VDI.remove_from_other_config, vdi,
                        steps.MARK)
        result = self.view(vm)
        result["warnings"] = warnings
        return result

    def host(self, key, name="host"):
        """The ref of the pool host ``key`` names (uuid or name_label), None for no
        host (None or blank)."""
        if key is None:
            return None
        key = field(model.parse_host, key, name)
        return find_host(self.x.host.get_all_records(), key, name) if key else None

    def _start(self, vm, host_ref):
        if host_ref is None:
            step("start", self.x.VM.start, vm, False, False)
        else:
            step("start on its host", self.x.VM.start_on, vm, host_ref, False, False)

    def _name_free(self, name):
        if any(views.is_vm(rec) and rec["name_label"] == name
               for rec in self.x.VM.get_all_records().values()):
            raise Conflict("a VM named %s exists already" % name, field="name", name=name)

    def start(self, key, host=None):
        """Starts a halted VM, on the pool host ``host`` (uuid or name) when given."""
        vm = self._find(key)
        host_ref = self.host(host)
        state = self.x.VM.get_power_state(vm)
        if state == "Halted":
            self._start(vm, host_ref)
        elif state != "Running":
            raise Conflict("VM %s is %s; it can be started only when halted"
                           % (key, state.lower()), vm=key, power_state=state)
        return self.view(vm)

    def shutdown(self, key, force=False):
        """A clean shutdown (the guest's own), or a hard one (power off) with ``force``."""
        vm = self._find(key)
        if self.x.VM.get_power_state(vm) != "Halted":
            if force:
                step("power off", self.x.VM.hard_shutdown, vm)
            else:
                step("shut down", self.x.VM.clean_shutdown, vm)
        return self.view(vm)

    def destroy(self, key, force=False):
        """Destroy a VM and its disks. A running VM is refused unless ``force`` (then it
        is powered off first). Disks another VM also uses, and ISOs, are kept. Returns
        {"uuid", "disks_destroyed": [vdi uuid], "disks_kept": [vdi uuid]}."""
        vm = self._find(key)
        rec = self.x.VM.get_record(vm)
        if rec["power_state"] != "Halted":
            if not force:
                raise Conflict("VM %s is %s; shut it down first (or force)"
                               % (rec["name_label"], rec["power_state"].lower()),
                               vm=rec["uuid"], power_state=rec["power_state"])
            step("power off", self.x.VM.hard_shutdown, vm)
        mine, kept = [], []
        for vbd in rec["VBDs"]:
            b = self.x.VBD.get_record(vbd)
            if b["type"] == "CD" or b["empty"]:
                continue
            d = self.x.VDI.get_record(b["VDI"])
            shared = any(self.x.VBD.get_VM(other) != vm for other in d["VBDs"])
            (kept if shared or d["read_only"] else mine).append((b["VDI"], d["uuid"]))
        step("destroy the VM", self.x.VM.destroy, vm)
        destroyed = []
        for vdi, uuid in mine:
            try:
                self.x.VDI.destroy(vdi)
                destroyed.append(uuid)
            except XenAPI.Failure as exc:
                details = [str(d) for d in exc.details]
                raise XapiCallFailed(
                    "the VM is gone but disk %s could not be destroyed: %s; remove it with "
                    "xe vdi-destroy uuid=%s" % (uuid, " ".join(details), uuid),
                    step="destroy disk %s" % uuid, xapi_code=details[0] if details else None,
                    xapi_params=details[1:], disks_destroyed=destroyed,
                    disks_left=[u for _v, u in mine if u not in destroyed])
        return {"uuid": rec["uuid"], "disks_destroyed": destroyed,
                "disks_kept": [u for _v, u in kept]}

    def attach_himn(self, key):
        """Give an existing VM the HIMN as the XenCenter plug-in does: its own VIF
        (device 9), the MAC in xenstore_data vm-data/himn_mac, plugged at once if the VM
        runs (a halted VM gets it when it starts)."""
        vm = self._find(key)
        himn = self._himn()
        if any(self.x.VIF.get_network(v) == himn for v in self.x.VM.get_VIFs(vm)):
            raise Conflict("VM %s has the host internal management network already" % key,
                           vm=key)
        vif = self._attach_himn(vm, himn)
        if self.x.VM.get_power_state(vm) == "Running":
            try:
                step("plug the HIMN VIF", self.x.VIF.plug, vif)
            except XapiCallFailed:
                self._undo_himn(vm, vif)
                raise
        return self.view(vm)

    # ---- helpers -----------------------------------------------------------------------
    def _template_disks(self, vm, xml, sr_uuid):
        """Drop the clone's disk description ``xml`` (``sr_uuid`` None) or put every
        disk of it on that SR."""
        step("clear the template's disks", self.x.VM.remove_from_other_config, vm,
             TEMPLATE_DISKS)
        if sr_uuid is not None:
            try:
                spec = minidom.parseString(xml)
            except ExpatError:
                raise XapiCallFailed("the template's other_config:disks is not XML",
                                     step="read the template's disks")
            for disk in spec.getElementsByTagName("disk"):
                disk.setAttribute("sr", sr_uuid)
            step("put the template's disks on SR %s" % sr_uuid,
                 self.x.VM.add_to_other_config, vm, TEMPLATE_DISKS,
                 spec.documentElement.toxml())

    def _attach_himn(self, vm, himn):
        vif = step("create the HIMN VIF", self.x.VIF.create, _vif(vm, himn, HIMN_DEVICE))
        try:
            mac = step("read the HIMN MAC", self.x.VIF.get_MAC, vif)
            if HIMN_MAC_KEY in self.x.VM.get_xenstore_data(vm):
                step("clear %s" % HIMN_MAC_KEY, self.x.VM.remove_from_xenstore_data, vm,
                     HIMN_MAC_KEY)
            step("record the HIMN MAC", self.x.VM.add_to_xenstore_data, vm, HIMN_MAC_KEY,
                 mac)
        except XapiCallFailed:
            self._undo_himn(vm, vif)
            raise
        return vif

    def _undo_himn(self, vm, vif):
        for what, call, args in (("destroy the HIMN VIF", self.x.VIF.destroy, (vif,)),
                                 ("clear " + HIMN_MAC_KEY, self.x.VM.remove_from_xenstore_data,
                                  (vm, HIMN_MAC_KEY))):
            try:
                call(*args)
            except XenAPI.Failure as exc:
                log.error("rollback: %s failed: %s", what, exc.details)

    def _himn(self):
        for ref, rec in self.x.network.get_all_records().items():
            if rec["other_config"].get("is_host_internal_management_network") == "true":
                return ref
        raise NotFound("this host has no host internal management network", field="himn")

    def _disks(self, disks, sr_check, warnings):
        """[(userdevice, bytes, SR ref, SR name)] for ``disks``, checked before any
        change; the SR type check adds to ``warnings`` or refuses."""
        if not isinstance(disks, (list, tuple)) or len(disks) > MAX_DISKS:
            raise InvalidInput("disks must be a list of at most %d objects with size_gib "
                               "(and sr)" % MAX_DISKS, field="disks")
        devices = [str(n) for n in range(MAX_DISKS + 1) if str(n) != CD_DEVICE]
        srs = self.x.SR.get_all_records()
        plan = []
        for i, disk in enumerate(disks):
            field = "disks[%d]" % i
            if not isinstance(disk, dict):
                raise InvalidInput("%s must be an object with size_gib (and sr)" % field,
                                   field=field)
            unknown = sorted(set(disk) - {"size_gib", "sr"})
            if unknown:
                raise InvalidInput("%s has unknown field(s) %s" % (field, ", ".join(unknown)),
                                   field="%s.%s" % (field, unknown[0]))
            size = _whole(disk.get("size_gib"), field + ".size_gib", 1, MAX_DISK_GIB)
            sr = self._sr(disk.get("sr"), srs, field + ".sr")
            kind, sr_name = srs[sr]["type"], srs[sr]["name_label"]
            if kind != "ext" and sr_check != "off":
                sentence = ("%s: SR %s is %s, not ext: the %d GiB disk is allocated in "
                            "full there" % (field, sr_name, kind, size))
                if sr_check == "refuse":
                    raise Conflict(sentence + " (sr_check=refuse)", field=field + ".sr",
                                   sr=sr_name, sr_type=kind)
                warnings.append(sentence)
            plan.append((devices[i], size * GIB, sr, sr_name))
        return plan

    def _sr(self, key, srs, field):
        if key is None:
            pool = self.x.pool.get_all()[0]
            sr = self.x.pool.get_default_SR(pool)
            if sr not in srs:
                raise NotFound("%s: no SR given and the pool has no default SR (xe "
                               "pool-param-set default-SR=...)" % field, field=field)
            return sr
        found = [r for r, rec in srs.items() if key in (rec["uuid"], rec["name_label"])
                 and rec["content_type"] != "iso"]
        if len(found) != 1:
            raise (NotFound("%s: no disk SR with uuid or name %s" % (field, key), field=field)
                   if not found else
                   Conflict("%s: %d SRs are named %s; use the uuid" % (field, len(found), key),
                            field=field))
        return found[0]

    def _iso(self, key):
        for sr, rec in self.x.SR.get_all_records().items():
            if rec["content_type"] != "iso":
                continue
            for vdi in rec["VDIs"]:
                d = self.x.VDI.get_record(vdi)
                if key in (d["uuid"], d["name_label"]):
                    return vdi
        raise NotFound("no ISO with uuid or name %s in the ISO SRs" % key, field="iso")

    def _find(self, key):
        found = [ref for ref, rec in self.x.VM.get_all_records().items()
                 if views.is_vm(rec) and not steps.in_flight(rec)
                 and key in (rec["uuid"], rec["name_label"])]
        if len(found) > 1:
            raise Conflict("%d VMs are named %s; use the uuid" % (len(found), key), vm=key)
        if not found:
            raise NotFound("no VM with uuid or name %s" % key, vm=key)
        return found[0]

    def _undo(self, made):
        """Undo a creation: power off, destroy the VM (its VIFs and VBDs go with it),
        then the disks created for it. XAPI's refusals are logged and the rest is tried;
        a lost connection stops here (steps.Operation leaves the rest to the sweep)."""
        if made["vm"] is not None:
            try:
                steps.discard_vm(self.x, made["vm"], "Running" if made["started"] else
                                 "Halted")
            except XenAPI.Failure as exc:
                log.error("rollback: destroying VM %s failed: %s", made["vm"], exc.details)
        for vdi in made["vdis"]:
            try:
                self.x.VDI.destroy(vdi)
            except XenAPI.Failure as exc:
                log.error("rollback: destroying disk %s failed: %s", vdi, exc.details)


def find_host(records, key, name="host"):
    """The ref among host ``records`` ({ref: record}) that ``key`` (a uuid, or a
    name_label naming one host) names, as a gateway's pin is matched
    (agent.core.placement.resolve_pin); NotFound otherwise."""
    hosts = {placement.Host(rec["uuid"], rec["name_label"], rec["enabled"], None): ref
             for ref, rec in records.items()}
    try:
        return hosts[placement.resolve_pin(list(hosts), key, name)]
    except GatewayInvalid as exc:
        raise NotFound(str(exc), field=name)


def _vif(vm, network, device):
    return {"device": str(device), "network": network, "VM": vm, "MAC": "", "MTU": "1500",
            "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}}


def _vdi(vm_name, index, size, sr, mark):
    return {"name_label": "%s disk %d" % (vm_name, index), "name_description": "",
            "SR": sr, "virtual_size": str(size), "type": "user", "sharable": False,
            "read_only": False, "other_config": dict(mark), "xenstore_data": {},
            "sm_config": {},
            "tags": []}


def _vbd(vm, vdi, device, bootable):
    return {"VM": vm, "VDI": vdi, "userdevice": device, "bootable": bootable, "mode": "RW",
            "type": "Disk", "empty": False, "unpluggable": False, "other_config": {},
            "qos_algorithm_type": "", "qos_algorithm_params": {}}


def _cd(vm, iso):
    return {"VM": vm, "VDI": iso or NULL, "userdevice": CD_DEVICE, "bootable": False,
            "mode": "RO", "type": "CD", "empty": iso is None, "unpluggable": True,
            "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}}


def _whole(value, field, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput("%s must be a whole number from %d to %d, not %r"
                           % (field, low, high, value), field=field)
    return value
