"""The sweep (agent.service.steps): what creations that stopped half way left behind goes,
what a running creation or a finished one owns stays. Against the served simulator."""
import threading

from agent.service import steps
from agent.service.networks import Networks
from agent.service.vms import Vms

OP = "0123456789abcdef0123456789abcdef"


def vm_names(engine):
    return sorted(r["name_label"] for r in engine.objects["VM"].values()
                  if not r["is_a_template"] and not r["is_control_domain"])


def marked(engine, cls):
    return [r for r in engine.objects[cls].values() if steps.MARK in r["other_config"]]


def leftovers(xenapi):
    """What a daemon that died half way through two creations leaves: a VM under its
    temporary name with a marked disk, and a marked network with a VLAN."""
    Vms(xenapi).create("half", disks=[{"size_gib": 1}], start=True)
    vm = xenapi.VM.get_by_name_label("half")[0]
    xenapi.VM.set_name_label(vm, steps.NAME_PREFIX + OP)
    for vbd in xenapi.VM.get_VBDs(vm):
        vdi = xenapi.VBD.get_VDI(vbd)
        if vdi != steps.NULL:
            xenapi.VDI.add_to_other_config(vdi, steps.MARK, OP)
    rec = Networks(xenapi).create("storage", vlan={"tag": 7, "pif": "eth0"})
    xenapi.network.add_to_other_config(xenapi.network.get_by_uuid(rec["uuid"]), steps.MARK,
                                       OP)


def test_a_sweep_removes_what_stopped_creations_left(xenapi, engine):
    before = {cls: len(engine.objects[cls]) for cls in ("VM", "VDI", "VBD", "network",
                                                        "VLAN")}
    leftovers(xenapi)
    assert steps.sweep(xenapi) == 3  # the VM, its disk, the network
    assert {cls: len(engine.objects[cls]) for cls in before} == before
    assert steps.sweep(xenapi) == 0


def test_a_disk_of_a_finished_vm_only_loses_its_mark(xenapi, engine):
    Vms(xenapi).create("done", disks=[{"size_gib": 1}])
    vdi = [r for r, rec in engine.objects["VDI"].items() if rec["name_label"] == "done disk 0"][0]
    xenapi.VDI.add_to_other_config(vdi, steps.MARK, OP)  # the tidy step was lost
    assert steps.sweep(xenapi) == 1
    assert vdi in engine.objects["VDI"] and not marked(engine, "VDI")
    assert vm_names(engine) == ["done"]


def test_a_sweep_leaves_running_creations_and_lookalikes_alone(xenapi, engine):
    Vms(xenapi).create("byhand")  # renamed by hand: not an operation's temporary name
    xenapi.VM.set_name_label(xenapi.VM.get_by_name_label("byhand")[0], "xgw-creating-by-hand")
    inside, release = threading.Event(), threading.Event()

    def slow_name(vm, name, real=xenapi.VM.set_name_label):
        if name == "slow":  # the commit of the creation below: wait there
            inside.set()
            release.wait(10)
        return real(vm, name)

    class Slow(object):
        def __getattr__(self, cls):
            target = getattr(xenapi, cls)
            if cls != "VM":
                return target

            class VM(object):
                def __getattr__(self, name):
                    return slow_name if name == "set_name_label" else getattr(target, name)
            return VM()
    creation = threading.Thread(target=Vms(Slow()).create, args=("slow",),
                                kwargs={"disks": [{"size_gib": 1}]})
    creation.start()
    try:
        assert inside.wait(10)
        assert steps.sweep(xenapi) == 0
        assert any(n.startswith(steps.NAME_PREFIX) and n != "xgw-creating-by-hand"
                   for n in vm_names(engine))
    finally:
        release.set()
        creation.join(10)
    assert vm_names(engine) == ["slow", "xgw-creating-by-hand"]
    assert not marked(engine, "VDI")
