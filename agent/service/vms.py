"""VMs as the blog's lab needs them: from a template, with memory, vCPUs, NICs on named
networks in the given order, a boot order, the host internal management network, and an
optional start. All or nothing: a failure at any step undoes what was created, and the
error names the step and XAPI's code.

(Disks, the ISO in the CD drive and the SR checks come with the storage simulation.)
"""
import logging
import re

import XenAPI

from agent.core import model
from agent.service.errors import InvalidInput, NotFound, XapiCallFailed
from agent.service.networks import Networks, _field, _step

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_TEMPLATE = "Other install media"
HIMN_DEVICE = "9"            # the XenCenter HIMN plug-in's VIF device
HIMN_MAC_KEY = "vm-data/himn_mac"
_BOOT = re.compile(r"^[cdn]{1,3}$")


class Vms(object):
    def __init__(self, xenapi):
        self.x = xenapi
        self.networks = Networks(xenapi)

    def create(self, name, memory_mib=256, vcpus=1, nics=(), boot="dc", himn=False,
               start=False, template=DEFAULT_TEMPLATE, progress=None):
        """Returns the new VM's record. ``nics``: network names or uuids, device 0, 1, ...
        ``boot``: HVM boot order letters (c disk, d CD, n network), e.g. "ncd"."""
        progress = progress or (lambda step: None)
        name = _field(model.parse_name, name, "name")
        memory = _whole(memory_mib, "memory_mib", 128, 1024 * 1024) * MIB
        vcpus = _whole(vcpus, "vcpus", 1, 64)
        if not isinstance(boot, str) or not _BOOT.match(boot) or len(set(boot)) != len(boot):
            raise InvalidInput("boot %r: give boot devices in order as letters c (disk), "
                               "d (CD) and n (network), e.g. ncd" % (boot,), field="boot")
        if not isinstance(nics, (list, tuple)):
            raise InvalidInput("nics must be a list of network names or uuids", field="nics")
        networks = []
        for i, key in enumerate(nics):
            try:
                networks.append(self.networks.find(key)[0])
            except NotFound:
                raise NotFound("nics[%d]: no network %s" % (i, key), field="nics[%d]" % i)
        himn_ref = self._himn() if himn else None
        templates = [r for r in self.x.VM.get_by_name_label(template)
                     if self.x.VM.get_is_a_template(r)]
        if not templates:
            raise NotFound("no template named %s" % template, field="template")

        vm, started = None, False
        try:
            progress("clone %s" % template)
            vm = _step("clone the template", self.x.VM.clone, templates[0], name)
            _step("provision", self.x.VM.provision, vm)
            _step("make it a VM", self.x.VM.set_is_a_template, vm, False)
            progress("memory and vCPUs")
            _step("set memory", self.x.VM.set_memory_limits, vm, str(min(memory, 128 * MIB)),
                  str(memory), str(memory), str(memory))
            _step("set vCPUs", self.x.VM.set_VCPUs_max, vm, str(vcpus))
            _step("set vCPUs at startup", self.x.VM.set_VCPUs_at_startup, vm, str(vcpus))
            _step("set the boot order", self.x.VM.set_HVM_boot_params, vm, {"order": boot})
            for device, net in enumerate(networks):
                progress("NIC %d" % device)
                _step("create NIC %d" % device, self.x.VIF.create, _vif(vm, net, device))
            if himn_ref is not None:
                progress("host internal management network")
                self._attach_himn(vm, himn_ref)
            if start:
                progress("start")
                _step("start", self.x.VM.start, vm, False, False)
                started = True
        except XapiCallFailed:
            if vm is not None:
                self._undo(vm, started)
            raise
        return self.x.VM.get_record(vm)

    def attach_himn(self, key):
        """Give an existing VM the HIMN as the XenCenter plug-in does: its own VIF
        (device 9), the MAC in xenstore_data vm-data/himn_mac, plugged if running."""
        vm = self._find(key)
        vif = self._attach_himn(vm, self._himn())
        if self.x.VM.get_power_state(vm) == "Running":
            _step("plug the HIMN VIF", self.x.VIF.plug, vif)
        return self.x.VM.get_record(vm)

    # ---- helpers -----------------------------------------------------------------------
    def _attach_himn(self, vm, himn):
        vif = _step("create the HIMN VIF", self.x.VIF.create, _vif(vm, himn, HIMN_DEVICE))
        mac = self.x.VIF.get_MAC(vif)
        data = self.x.VM.get_xenstore_data(vm)
        if HIMN_MAC_KEY in data:
            _step("clear %s" % HIMN_MAC_KEY, self.x.VM.remove_from_xenstore_data, vm,
                  HIMN_MAC_KEY)
        _step("record the HIMN MAC", self.x.VM.add_to_xenstore_data, vm, HIMN_MAC_KEY, mac)
        return vif

    def _himn(self):
        for ref, rec in self.x.network.get_all_records().items():
            if rec["other_config"].get("is_host_internal_management_network") == "true":
                return ref
        raise NotFound("this host has no host internal management network", field="himn")

    def _find(self, key):
        for ref, rec in self.x.VM.get_all_records().items():
            if not rec["is_a_template"] and key in (rec["uuid"], rec["name_label"]):
                return ref
        raise NotFound("no VM with uuid or name %s" % key, vm=key)

    def _undo(self, vm, started):
        try:
            if started:
                self.x.VM.hard_shutdown(vm)
            for vif in self.x.VM.get_VIFs(vm):
                self.x.VIF.destroy(vif)
            self.x.VM.destroy(vm)
        except XenAPI.Failure as exc:
            log.error("rollback of VM %s incomplete: %s", vm, exc.details)


def _vif(vm, network, device):
    return {"device": str(device), "network": network, "VM": vm, "MAC": "", "MTU": "1500",
            "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}}


def _whole(value, field, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput("%s must be a whole number from %d to %d, not %r"
                           % (field, low, high, value), field=field)
    return value
