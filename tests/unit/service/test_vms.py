"""VM creation against the simulator: what the lab needs, all or nothing."""
import pytest

from agent.service.errors import InvalidInput, NotFound, XapiCallFailed
from agent.service.networks import Networks
from agent.service.vms import HIMN_MAC_KEY, MIB, Vms
from agent.xapisim.engine import XapiFailure


@pytest.fixture
def lab(xenapi):
    nets = Networks(xenapi)
    for name in ("pxe", "private", "br100"):
        nets.create(name)
    return Vms(xenapi)


def counts(engine):
    return (len([v for v in engine.objects["VM"].values() if not v["is_a_template"]]),
            len(engine.objects["VIF"]), sorted(engine.bridges.created))


def test_controller_as_in_the_blog(lab, xenapi, engine):
    steps = []
    rec = lab.create("Controller", memory_mib=4096, vcpus=2, nics=["pxe", "private", "br100"],
                     boot="ncd", himn=True, start=True, progress=steps.append)
    assert rec["power_state"] == "Running" and rec["is_a_template"] is False
    assert rec["memory_static_max"] == str(4096 * MIB) == rec["memory_dynamic_max"]
    assert (rec["VCPUs_max"], rec["VCPUs_at_startup"]) == ("2", "2")
    assert rec["HVM_boot_params"] == {"order": "ncd"}
    vifs = {xenapi.VIF.get_device(v): v for v in rec["VIFs"]}
    names = {d: xenapi.network.get_name_label(xenapi.VIF.get_network(v)) for d, v in vifs.items()}
    assert names == {"0": "pxe", "1": "private", "2": "br100",
                     "9": "Host internal management network"}
    assert rec["xenstore_data"][HIMN_MAC_KEY] == xenapi.VIF.get_MAC(vifs["9"])
    assert steps[0] == "clone Other install media" and steps[-1] == "start"
    # the private networks' bridges exist while it runs (the HIMN's is xapi's own)
    assert len(engine.bridges.created) == 3


@pytest.mark.parametrize("kwargs,error,field", [
    (dict(name="x y"), InvalidInput, "name"),
    (dict(name="v", memory_mib=64), InvalidInput, "memory_mib"),
    (dict(name="v", vcpus=0), InvalidInput, "vcpus"),
    (dict(name="v", boot="xz"), InvalidInput, "boot"),
    (dict(name="v", boot="nn"), InvalidInput, "boot"),
    (dict(name="v", nics=["pxe", "nope"]), NotFound, "nics[1]"),
    (dict(name="v", template="Windows 11"), NotFound, "template"),
])
def test_bad_requests_create_nothing(lab, engine, kwargs, error, field):
    before = counts(engine)
    with pytest.raises(error) as info:
        lab.create(**kwargs)
    assert info.value.details["field"] == field
    assert counts(engine) == before


STEPS = [("VM.clone", 0, "clone the template"), ("VM.provision", 0, "provision"),
         ("VM.set_is_a_template", 0, "make it a VM"), ("VM.set_memory_limits", 0, "set memory"),
         ("VM.set_VCPUs_max", 0, "set vCPUs"), ("VM.set_VCPUs_at_startup", 0,
                                                 "set vCPUs at startup"),
         ("VM.set_HVM_boot_params", 0, "set the boot order"),
         ("VIF.create", 0, "create NIC 0"), ("VIF.create", 1, "create NIC 1"),
         ("VIF.create", 2, "create the HIMN VIF"),
         ("VM.add_to_xenstore_data", 0, "record the HIMN MAC"), ("VM.start", 0, "start")]


@pytest.mark.parametrize("method,skip,step", STEPS, ids=["%s#%d" % s[:2] for s in STEPS])
def test_a_failure_at_any_step_leaves_nothing_behind(lab, engine, method, skip, step):
    before = counts(engine)
    engine.fail_next[method] = [None] * skip + [XapiFailure("INTERNAL_ERROR", "injected")]
    with pytest.raises(XapiCallFailed) as info:
        lab.create("Compute", nics=["pxe", "private"], himn=True, start=True)
    assert info.value.details["step"] == step
    assert info.value.details["xapi_code"] == "INTERNAL_ERROR"
    assert counts(engine) == before


def test_attach_himn_to_a_running_vm_plugs_it(lab, xenapi):
    lab.create("Compute", nics=["pxe"], start=True)
    rec = lab.attach_himn("Compute")
    himn_vif = [v for v in rec["VIFs"] if xenapi.VIF.get_device(v) == "9"][0]
    assert xenapi.VIF.get_currently_attached(himn_vif) is True
    assert rec["xenstore_data"][HIMN_MAC_KEY] == xenapi.VIF.get_MAC(himn_vif)


def test_memory_constraints_are_xapis(xenapi, engine):
    template = xenapi.VM.get_by_name_label("Other install media")[0]
    vm = xenapi.VM.clone(template, "m")
    reply = engine.call("VM.set_memory_limits", [next(iter(engine.objects["session"])), vm,
                                                 "0", "100", "200", "300"])
    assert reply["ErrorDescription"][0] == "MEMORY_CONSTRAINT_VIOLATION"
