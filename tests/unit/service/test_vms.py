"""VM creation against the simulator: what the lab needs, all or nothing."""
import pytest

from agent.service.errors import Conflict, InvalidInput, NotFound, XapiCallFailed
from agent.service.errors import XapiUnavailable
from agent.service.networks import Networks
from agent.service.vms import GIB, HIMN_MAC_KEY, MIB, Vms
from agent.xapisim.engine import XapiFailure

ISO = "ubuntu-22.04-server.iso"


@pytest.fixture
def lab(xenapi):
    nets = Networks(xenapi)
    for name in ("pxe", "private", "br100"):
        nets.create(name)
    return Vms(xenapi)


def counts(engine):
    """What an attempt may leave behind: VMs, VIFs, VBDs, VDIs, SR allocation, bridges."""
    local = [sr for sr in engine.objects["SR"].values() if sr["type"] == "ext"][0]
    return (len([v for v in engine.objects["VM"].values() if not v["is_a_template"]]),
            len(engine.objects["VIF"]), len(engine.objects["VBD"]),
            len(engine.objects["VDI"]), local["virtual_allocation"],
            sorted(engine.bridges.created))


def record(xenapi, view):
    return xenapi.VM.get_record(xenapi.VM.get_by_uuid(view["uuid"]))


def test_controller_as_in_the_blog(lab, xenapi, engine):
    steps = []
    view = lab.create("Controller", memory_mib=4096, vcpus=2,
                      nics=["pxe", "private", "br100"], disks=[{"size_gib": 50}],
                      boot="ncd", himn=True, start=True, progress=steps.append)
    assert view["power_state"] == "Running" and view["warnings"] == []
    assert (view["memory_mib"], view["vcpus"], view["boot"]) == (4096, 2, "ncd")
    assert [(n["device"], n["network"]) for n in view["nics"]] == [
        (0, "pxe"), (1, "private"), (2, "br100"), (9, "Host internal management network")]
    assert view["disks"] == [{"device": 0, "size_gib": 50, "sr": "Local storage",
                              "vdi_uuid": view["disks"][0]["vdi_uuid"]}]
    assert view["iso"] is None and view["himn"] is True
    rec = record(xenapi, view)
    assert rec["is_a_template"] is False
    assert rec["memory_static_max"] == str(4096 * MIB) == rec["memory_dynamic_max"]
    assert (rec["VCPUs_max"], rec["VCPUs_at_startup"]) == ("2", "2")
    assert rec["HVM_boot_params"] == {"order": "ncd"}
    himn = [n for n in view["nics"] if n["himn"]][0]
    assert rec["xenstore_data"][HIMN_MAC_KEY] == himn["mac"]
    vbds = {xenapi.VBD.get_userdevice(b): xenapi.VBD.get_record(b) for b in rec["VBDs"]}
    assert sorted(vbds) == ["0", "3"]
    assert (vbds["0"]["type"], vbds["0"]["mode"], vbds["0"]["bootable"]) == ("Disk", "RW", True)
    assert (vbds["3"]["type"], vbds["3"]["mode"], vbds["3"]["empty"]) == ("CD", "RO", True)
    assert xenapi.VDI.get_virtual_size(vbds["0"]["VDI"]) == str(50 * GIB)
    assert steps[0] == "clone Other install media" and steps[-1] == "start"
    assert "disk 0: 50 GiB on Local storage" in steps
    # the private networks' bridges exist while it runs (the HIMN's is xapi's own)
    assert len(engine.bridges.created) == 3


def test_fuel_boots_from_its_iso(lab, xenapi):
    view = lab.create("Fuel", nics=["pxe"], iso=ISO, boot="dc", disks=[{"size_gib": 20}])
    assert view["iso"] == ISO and view["power_state"] == "Halted"
    cd = [b for b in record(xenapi, view)["VBDs"] if xenapi.VBD.get_type(b) == "CD"][0]
    assert xenapi.VDI.get_name_label(xenapi.VBD.get_VDI(cd)) == ISO


def test_several_disks_skip_the_cd_position(lab, xenapi):
    view = lab.create("Big", disks=[{"size_gib": n} for n in (1, 2, 3, 4)])
    assert [(d["device"], d["size_gib"]) for d in view["disks"]] == [
        (0, 1), (1, 2), (2, 3), (4, 4)]


@pytest.fixture
def lvm(engine):
    return engine.create("SR", name_label="Thick", type="lvm", content_type="user",
                         physical_size=100 * GIB)


def test_sr_check_warns_by_default(lab, lvm):
    view = lab.create("Compute", disks=[{"size_gib": 50, "sr": "Thick"}])
    assert view["disks"][0]["sr"] == "Thick"
    assert len(view["warnings"]) == 1 and "lvm, not ext" in view["warnings"][0]
    assert lab.create("Other", disks=[{"size_gib": 1, "sr": "Thick"}],
                      sr_check="off")["warnings"] == []


def test_sr_check_refuse_creates_nothing(lab, lvm, engine):
    before = counts(engine)
    with pytest.raises(Conflict) as info:
        lab.create("Compute", disks=[{"size_gib": 1}, {"size_gib": 50, "sr": "Thick"}],
                   sr_check="refuse")
    assert info.value.details["field"] == "disks[1].sr"
    assert counts(engine) == before


def test_a_full_sr_fails_at_its_disk_and_rolls_back(lab, lvm, engine):
    before = counts(engine)
    with pytest.raises(XapiCallFailed) as info:
        lab.create("Compute", disks=[{"size_gib": 60, "sr": "Thick"},
                                     {"size_gib": 60, "sr": "Thick"}])
    assert info.value.details["step"] == "create disk 1"
    assert info.value.details["xapi_code"] == "SR_FULL"
    assert counts(engine) == before
    assert engine.objects["SR"][lvm]["physical_utilisation"] == 0


def test_lifecycle_start_shutdown_destroy_with_disks(lab, engine):
    before = counts(engine)
    lab.create("Compute", nics=["pxe"], disks=[{"size_gib": 50}, {"size_gib": 10}],
               iso=ISO)
    assert lab.start("Compute")["power_state"] == "Running"
    assert lab.start("Compute")["power_state"] == "Running"  # already: nothing to do
    with pytest.raises(Conflict) as info:
        lab.destroy("Compute")
    assert info.value.details["power_state"] == "Running"
    assert lab.shutdown("Compute")["power_state"] == "Halted"
    result = lab.destroy("Compute")
    assert len(result["disks_destroyed"]) == 2 and result["disks_kept"] == []
    assert counts(engine) == before  # the ISO stays in its library
    with pytest.raises(NotFound):
        lab.get("Compute")


def test_force_destroy_of_a_running_vm(lab, engine):
    before = counts(engine)
    lab.create("Compute", nics=["private"], disks=[{"size_gib": 5}], start=True)
    lab.destroy("Compute", force=True)
    assert counts(engine) == before


def test_a_disk_shared_with_another_vm_is_kept(lab, xenapi):
    a = lab.create("A", disks=[{"size_gib": 5}])
    b = lab.create("B")
    vdi = xenapi.VDI.get_by_uuid(a["disks"][0]["vdi_uuid"])
    xenapi.VBD.create({"VM": xenapi.VM.get_by_uuid(b["uuid"]), "VDI": vdi, "userdevice": "1",
                       "bootable": False, "mode": "RW", "type": "Disk", "empty": False,
                       "other_config": {}, "qos_algorithm_type": "",
                       "qos_algorithm_params": {}})
    result = lab.destroy("A")
    assert result["disks_destroyed"] == [] and result["disks_kept"] == [a["disks"][0]["vdi_uuid"]]
    assert lab.get("B")["disks"][0]["vdi_uuid"] == a["disks"][0]["vdi_uuid"]


def test_list_and_get(lab):
    lab.create("B")
    lab.create("A", nics=["pxe"])
    assert [v["name"] for v in lab.list()] == ["A", "B"]
    view = lab.get("A")
    assert lab.get(view["uuid"]) == view and view["nics"][0]["network"] == "pxe"


@pytest.mark.parametrize("kwargs,error,field", [
    (dict(name="x y"), InvalidInput, "name"),
    (dict(name="v", memory_mib=64), InvalidInput, "memory_mib"),
    (dict(name="v", vcpus=0), InvalidInput, "vcpus"),
    (dict(name="v", boot="xz"), InvalidInput, "boot"),
    (dict(name="v", boot="nn"), InvalidInput, "boot"),
    (dict(name="v", nics=["pxe", "nope"]), NotFound, "nics[1]"),
    (dict(name="v", template="Windows 11"), NotFound, "template"),
    (dict(name="v", disks=[{"size_gib": 0}]), InvalidInput, "disks[0].size_gib"),
    (dict(name="v", disks=[{"size_gib": 1.5}]), InvalidInput, "disks[0].size_gib"),
    (dict(name="v", disks=[{"size_gib": 1, "srr": "x"}]), InvalidInput, "disks[0].srr"),
    (dict(name="v", disks=[{"size_gib": 1, "sr": "nope"}]), NotFound, "disks[0].sr"),
    (dict(name="v", disks=[{"size_gib": 1, "sr": "ISO library"}]), NotFound, "disks[0].sr"),
    (dict(name="v", disks="50"), InvalidInput, "disks"),
    (dict(name="v", iso="windows.iso"), NotFound, "iso"),
    (dict(name="v", sr_check="maybe"), InvalidInput, "sr_check"),
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
         ("VDI.create", 0, "create disk 0"), ("VBD.create", 0, "attach disk 0"),
         ("VDI.create", 1, "create disk 1"), ("VBD.create", 1, "attach disk 1"),
         ("VBD.create", 2, "create the CD drive"),
         ("VIF.create", 0, "create NIC 0"), ("VIF.create", 1, "create NIC 1"),
         ("VIF.create", 2, "create the HIMN VIF"), ("VIF.get_MAC", 0, "read the HIMN MAC"),
         ("VM.add_to_xenstore_data", 0, "record the HIMN MAC"), ("VM.start", 0, "start")]


@pytest.mark.parametrize("method,skip,step", STEPS, ids=["%s#%d" % s[:2] for s in STEPS])
def test_a_failure_at_any_step_leaves_nothing_behind(lab, engine, method, skip, step):
    """No VM, VDI, VBD, VIF or bridge from the attempt remains, and no SR space."""
    before = counts(engine)
    engine.fail_next[method] = [None] * skip + [XapiFailure("INTERNAL_ERROR", "injected")]
    with pytest.raises(XapiCallFailed) as info:
        lab.create("Compute", nics=["pxe", "private"], disks=[{"size_gib": 50},
                   {"size_gib": 5}], iso=ISO, himn=True, start=True)
    assert info.value.details["step"] == step
    assert info.value.details["xapi_code"] == "INTERNAL_ERROR"
    assert counts(engine) == before


def test_attach_himn_to_a_running_vm_plugs_it(lab, xenapi):
    lab.create("Compute", nics=["pxe"], start=True)
    view = lab.attach_himn("Compute")
    himn = [n for n in view["nics"] if n["himn"]][0]
    assert himn["device"] == 9 and himn["attached"] is True
    assert record(xenapi, view)["xenstore_data"][HIMN_MAC_KEY] == himn["mac"]
    with pytest.raises(Conflict):
        lab.attach_himn("Compute")


def test_attach_himn_to_a_halted_vm_waits_for_its_start(lab):
    lab.create("Compute", nics=["pxe"])
    himn = [n for n in lab.attach_himn("Compute")["nics"] if n["himn"]][0]
    assert himn["attached"] is False
    himn = [n for n in lab.start("Compute")["nics"] if n["himn"]][0]
    assert himn["attached"] is True


@pytest.mark.parametrize("method", ["VM.add_to_xenstore_data", "VIF.plug"])
def test_a_failed_himn_attach_leaves_the_vm_as_it_was(lab, engine, method):
    lab.create("Compute", nics=["pxe"], start=True)
    vifs = len(engine.objects["VIF"])
    engine.fail_next[method] = [XapiFailure("INTERNAL_ERROR", "injected")]
    with pytest.raises(XapiCallFailed):
        lab.attach_himn("Compute")
    assert len(engine.objects["VIF"]) == vifs
    assert not lab.get("Compute")["himn"]


def test_a_taken_name_is_a_conflict(lab, engine):
    lab.create("Compute")
    before = counts(engine)
    with pytest.raises(Conflict) as info:
        lab.create("Compute")
    assert info.value.details["field"] == "name"
    assert counts(engine) == before


def test_memory_constraints_are_xapis(xenapi, engine):
    template = xenapi.VM.get_by_name_label("Other install media")[0]
    vm = xenapi.VM.clone(template, "m")
    reply = engine.call("VM.set_memory_limits", [next(iter(engine.objects["session"])), vm,
                                                 "0", "100", "200", "300"])
    assert reply["ErrorDescription"][0] == "MEMORY_CONSTRAINT_VIOLATION"


def test_a_topology_mark_is_kept_in_other_config(lab, xenapi):
    view = lab.create("Fuel", marks={"xapi-gateway-topology": "lab"})
    assert view["topology"] == "lab"
    assert record(xenapi, view)["other_config"]["xapi-gateway-topology"] == "lab"
    assert lab.create("Other")["topology"] is None


class _Breaking(object):
    """The SDK proxy, but one method's calls die with a lost connection."""

    def __init__(self, real, method):
        self.real, self.method = real, method

    def __getattr__(self, cls):
        real, method = getattr(self.real, cls), self.method

        class Cls(object):
            def __getattr__(self, name):
                if "%s.%s" % (cls, name) == method:
                    def broken(*args):
                        raise ConnectionResetError("connection reset by peer")
                    return broken
                return getattr(real, name)
        return Cls()


def test_a_lost_connection_mid_creation_is_rolled_back_too(xenapi, engine):
    Networks(xenapi).create("pxe")
    before = counts(engine)
    with pytest.raises(XapiUnavailable) as info:  # 503: the outcome of that call is unknown
        Vms(_Breaking(xenapi, "VIF.create")).create("Compute", nics=["pxe"],
                                                    disks=[{"size_gib": 5}])
    assert info.value.details["step"] == "create NIC 0"
    assert "ConnectionResetError" in str(info.value)
    assert counts(engine) == before


def test_the_name_of_a_vm_being_created_is_refused(xenapi, engine):
    before = len(engine.objects["VM"])
    with pytest.raises(InvalidInput) as info:
        Vms(xenapi).create("xgw-creating-0123456789abcdef0123456789abcdef")
    assert info.value.details["field"] == "name"
    assert len(engine.objects["VM"]) == before


DEBIAN_DISKS = ('<provision><disk device="0" size="%d" sr="" bootable="true" type="system"/>'
                '<disk device="1" size="%d" sr="" bootable="false" type="user"/></provision>'
                % (8 * GIB, 2 * GIB))


@pytest.fixture
def disk_template(xenapi):
    """A template as real hosts ship them: its disks described in other_config:disks
    (xapi_templates.ml), made by VM.provision, with the SR left for the installer."""
    base = xenapi.VM.get_by_name_label("Other install media")[0]
    template = xenapi.VM.clone(base, "Debian Bookworm 12")
    xenapi.VM.add_to_other_config(template, "disks", DEBIAN_DISKS)
    return "Debian Bookworm 12"


def test_a_template_with_disks_gets_them_on_the_default_sr(lab, xenapi, disk_template):
    view = lab.create("web", template=disk_template)
    assert [(d["device"], d["size_gib"], d["sr"]) for d in view["disks"]] == [
        (0, 8, "Local storage"), (1, 2, "Local storage")]
    rec = record(xenapi, view)
    assert "disks" not in rec["other_config"] and rec["is_a_template"] is False
    assert xenapi.VM.get_is_a_template(xenapi.VM.get_by_name_label(disk_template)[0])


def test_given_disks_replace_the_templates(lab, xenapi, disk_template):
    view = lab.create("db", template=disk_template, disks=[{"size_gib": 20}])
    assert [(d["device"], d["size_gib"]) for d in view["disks"]] == [(0, 20)]


def test_a_template_without_disks_gets_only_the_given_ones(lab, xenapi):
    view = lab.create("plain", disks=[{"size_gib": 3}])
    assert [(d["device"], d["size_gib"]) for d in view["disks"]] == [(0, 3)]
    assert lab.create("bare")["disks"] == []


def test_a_failure_after_provisioning_removes_the_provisioned_disks(lab, engine,
                                                                     disk_template):
    before = counts(engine)
    engine.fail_next["VM.set_memory_limits"] = [XapiFailure("INTERNAL_ERROR", "boom")]
    with pytest.raises(XapiCallFailed):
        lab.create("web", template=disk_template)
    assert counts(engine) == before


def test_a_vm_starts_on_the_pool_host_named_or_nothing_is_made(lab, xenapi, engine):
    from agent.xapisim import pool as members
    other = members.add_host(engine, "xgw-sim-2", "openvswitch")
    before = counts(engine)
    with pytest.raises(NotFound) as err:
        lab.create("Controller", nics=["private"], start=True, host="xgw-sim-3")
    assert err.value.details["field"] == "host" and "no host of this pool" in str(err.value)
    with pytest.raises(InvalidInput):
        lab.create("Controller", nics=["private"], host="bad\nname")
    assert counts(engine) == before
    view = lab.create("Controller", nics=["private"], start=True, host="xgw-sim-2")
    vm = xenapi.VM.get_by_uuid(view["uuid"])
    assert xenapi.VM.get_resident_on(vm) == other and xenapi.VM.get_affinity(vm) == other
    lab.create("Compute", nics=["private"])
    lab.start("Compute", host=xenapi.host.get_uuid(other))
    assert xenapi.VM.get_resident_on(xenapi.VM.get_by_name_label("Compute")[0]) == other
