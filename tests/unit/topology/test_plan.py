"""Plans against the simulator: what a topology would change, before anything changes."""
import os

import pytest

from agent.core import desired
from agent.service.errors import InvalidInput
from agent.service.networks import Networks
from agent.service.vms import Vms
from agent.topology import apply as applier
from agent.topology import model
from agent.topology.plan import plan, plan_destroy, summary
from tests.unit.topology.conftest import lab_document

MARK = desired.TOPOLOGY_MARK


def kinds(actions):
    return [(a.kind, a.object, a.name) for a in actions]


def test_an_empty_host_gets_creates_in_order(xenapi, lab, engine):
    events = engine.event_id
    actions = plan(xenapi, lab)
    assert kinds(actions) == [("create", "network", "pxe"), ("create", "network", "private"),
                              ("create", "network", "br100"), ("create", "vm", "Fuel"),
                              ("create", "vm", "Controller"), ("create", "vm", "Compute")]
    details = [a.detail for a in actions]
    assert details[1] == "+ network private: gateway 172.16.0.1/24 nat"
    assert details[3] == ("+ vm Fuel: 2048 MiB, 1 vCPU, disk 50 GiB, nics pxe, Pool-wide "
                          "network associated with eth0, iso ubuntu-22.04-server.iso, "
                          "boot dc; then start it")
    assert details[5] == ("+ vm Compute: 4096 MiB, 2 vCPUs, disk 50 GiB, nics pxe, "
                          "private, br100, boot ncd, himn")
    assert actions[0].to_dict() == {"kind": "create", "object": "network", "name": "pxe",
                                    "detail": "+ network pxe"}
    assert summary(actions) == "6 to create"
    assert engine.event_id == events  # planning changes nothing


def test_the_example_with_its_forwards_plans_them(xenapi):
    topology = model.parse(lab_document(forwards=True))
    assert plan(xenapi, topology)[1].detail == (
        "+ network private: gateway 172.16.0.1/24 nat, forwards tcp:8080=172.16.0.3:80")


@pytest.mark.parametrize("mark", [None, "other-lab"])
def test_a_network_of_the_same_name_not_ours_is_a_conflict(xenapi, lab, mark):
    Networks(xenapi).create("pxe", marks={MARK: mark} if mark else None)
    actions = plan(xenapi, lab)
    assert kinds(actions)[0] == ("conflict", "network", "pxe")
    assert "exists that topology blog-lab does not manage" in actions[0].detail
    assert ("belongs to topology other-lab" if mark else "has no topology mark") in \
        actions[0].detail
    assert [a.kind for a in actions[1:]] == ["create"] * 5


def test_a_vm_of_the_same_name_not_ours_is_a_conflict(xenapi, lab):
    Vms(xenapi).create("Controller")
    actions = plan(xenapi, lab)
    assert ("conflict", "vm", "Controller") in kinds(actions)


def test_two_networks_of_a_name_are_a_conflict(xenapi, engine):
    for _ in range(2):
        engine.create("network", name_label="pxe", bridge="", other_config={})
    topology = model.parse({"name": "t", "networks": [{"name": "pxe"}]})
    assert "2 networks of that name exist" in plan(xenapi, topology)[0].detail


def test_a_gateway_overlapping_a_foreign_one_is_a_conflict(xenapi, lab):
    Networks(xenapi).create("office", gateway={"address": "172.16.5.1/16"})
    private = [a for a in plan(xenapi, lab) if a.name == "private"][0]
    assert private.kind == "conflict"
    assert "overlaps gateway office (172.16.0.0/16)" in private.detail


def test_a_vlan_tag_in_use_is_a_conflict(xenapi):
    Networks(xenapi).create("old", vlan={"tag": 100})
    topology = model.parse({"name": "t", "networks": [{"name": "br100",
                                                       "vlan": {"tag": 100}}]})
    action = plan(xenapi, topology)[0]
    assert action.kind == "conflict" and "VLAN 100 on eth0 is network old's" in action.detail


def test_spanning_networks_are_planned_and_their_span_and_vni_compared(xenapi, engine):
    from agent.xapisim import pool as members
    members.configure_management(engine, next(iter(engine.objects["host"])), "10.0.0.1",
                                 "255.255.255.0")
    Networks(xenapi).create("old", span="pool", vni=7)
    doc = {"name": "t", "networks": [{"name": "lab", "span": "pool", "vni": 7}]}
    action = plan(xenapi, model.parse(doc))[0]
    assert action.kind == "conflict" and action.detail.endswith(
        "networks[0].vni: VNI 7 is already used by network old (%s); choose another or "
        "leave vni out" % xenapi.network.get_uuid(xenapi.network.get_by_name_label("old")[0]))
    doc["networks"][0]["vni"] = 8
    assert plan(xenapi, model.parse(doc))[0].detail.endswith(": spans the pool (VNI 8)")
    applier.apply(xenapi, model.parse(doc))
    assert kinds(plan(xenapi, model.parse(doc))) == [("noop", "network", "lab")]
    # a host that cannot carry tunnels: a conflict at plan time, before any change
    doc["networks"][0].update(name="lab2", vni=10)
    engine.set_field("PIF", next(r for r, p in engine.objects["PIF"].items()
                                 if p["management"]), "IP", "")
    action = plan(xenapi, model.parse(doc))[0]
    assert action.kind == "conflict" and action.detail.endswith(
        "networks[0].span: host xgw-sim: transport PIF eth0 has no IP address: configure one "
        "(xe pif-reconfigure-ip)")
    doc["networks"][0].update(name="lab", vni=8)
    for change, words in (({"vni": 9}, "VNI (file 9, host 8)"),
                          ({"span": "host", "vni": None}, "span (file host, host pool)")):
        net = dict(doc["networks"][0], **change)
        action = plan(xenapi, model.parse({"name": "t", "networks": [
            {k: v for k, v in net.items() if v is not None}]}))[0]
        assert action.kind == "drift" and words in action.detail


@pytest.mark.parametrize("change,field,words", [
    (lambda d: d["vms"][0]["nics"].append("pxee"), "vms[0].nics[2]",
     "no network pxee in this file or on the host"),
    (lambda d: d["vms"][2]["nics"].append("Host internal management network"),
     "vms[2].nics[3]", "write himn: true"),
    (lambda d: d["vms"][1].update(template="Windows 11"), "vms[1].template",
     "no template named Windows 11"),
    (lambda d: d["vms"][0].update(iso="fuel.iso"), "vms[0].iso",
     "no ISO fuel.iso in the host's ISO libraries (it has ubuntu-22.04-server.iso)"),
    (lambda d: d["vms"][1]["disks"][0].update(sr="Fast"), "vms[1].disks[0].sr",
     "no disk SR Fast"),
    (lambda d: d["vms"][1]["disks"][0].update(sr="ISO library"), "vms[1].disks[0].sr",
     "no disk SR ISO library"),
    (lambda d: d["networks"][2].update(vlan={"tag": 5, "pif": "eth7"}),
     "networks[2].vlan.pif", "no physical interface eth7; use one of eth0"),
])
def test_names_that_do_not_resolve_are_refused_at_plan_time(xenapi, engine, change, field,
                                                             words):
    doc = lab_document()
    change(doc)
    events = engine.event_id
    with pytest.raises(InvalidInput) as info:
        plan(xenapi, model.parse(doc))
    assert info.value.details["field"] == field
    assert words in info.value.message
    with pytest.raises(InvalidInput):
        applier.apply(xenapi, model.parse(doc))
    assert engine.event_id == events


def test_a_nic_may_name_a_host_network_by_uuid(xenapi):
    eth0 = Networks(xenapi).find("Pool-wide network associated with eth0")[1]["uuid"]
    topology = model.parse({"name": "t", "vms": [{"name": "v", "nics": [eth0]}]})
    applier.apply(xenapi, topology)
    assert kinds(plan(xenapi, topology)) == [("noop", "vm", "v")]


def test_a_changed_gateway_is_an_update(xenapi, lab):
    applier.apply(xenapi, lab)
    doc = lab_document()
    doc["networks"][1]["gateway"]["nat"] = False
    doc["networks"][0]["gateway"] = {"address": "10.20.0.1/24"}
    del doc["networks"][2]["description"]
    actions = plan(xenapi, model.parse(doc))
    assert [a.detail for a in actions[:3]] == [
        "~ network pxe: gateway none -> 10.20.0.1/24 nat",
        "~ network private: gateway 172.16.0.1/24 nat -> 172.16.0.1/24",
        "? network br100 differs: description (file '', host 'nova-network fixed network "
        "for instances'); apply does not change these: delete the network and re-apply "
        "to change them"]
    doc["networks"][1].pop("gateway")
    assert plan(xenapi, model.parse(doc))[1].detail == (
        "~ network private: gateway 172.16.0.1/24 nat -> none")


def test_a_vm_that_differs_is_drift(xenapi, lab):
    applier.apply(xenapi, lab)
    doc = lab_document()
    doc["vms"][1].update(memory_mib=2048, vcpus=4, boot="cd", himn=True, iso=
                         "ubuntu-22.04-server.iso")
    doc["vms"][1]["nics"] = ["pxe", "private"]
    doc["vms"][1]["disks"] = [{"size_gib": 50, "sr": "Local storage"}, {"size_gib": 10}]
    action = [a for a in plan(xenapi, model.parse(doc)) if a.name == "Controller"]
    assert kinds(action) == [("drift", "vm", "Controller")]
    assert action[0].detail == (
        "? vm Controller differs: memory (file 2048 MiB, host 4096 MiB), vcpus (file 4, "
        "host 2), boot (file cd, host ncd), nics (file pxe, private, host pxe, private, "
        "br100), himn (file true, host false), disks (file 50 GiB on Local storage, 10 "
        "GiB, host 50 GiB on Local storage), iso (file ubuntu-22.04-server.iso, host none)"
        "; apply does not change an existing VM: destroy it and re-apply to change it")


def test_a_halted_vm_that_should_run_gets_a_start(xenapi, lab):
    applier.apply(xenapi, lab)
    doc = lab_document()
    doc["vms"][1]["start"] = True
    actions = plan(xenapi, model.parse(doc))
    assert [a.detail for a in actions if a.changes()] == [
        "> vm Controller: start it (it is halted)"]
    Vms(xenapi).shutdown("Fuel", force=True)
    assert ("start", "vm", "Fuel") in kinds(plan(xenapi, lab))


def test_start_false_never_stops_a_vm(xenapi, lab):
    applier.apply(xenapi, lab)
    Vms(xenapi).start("Controller")
    assert all(a.kind == "noop" for a in plan(xenapi, lab))


def test_objects_dropped_from_the_file_are_drift_or_pruned(xenapi, lab):
    applier.apply(xenapi, lab)
    doc = lab_document()
    del doc["vms"][2]
    del doc["networks"][2]
    for vm in doc["vms"]:
        vm["nics"] = [n for n in vm["nics"] if n != "br100"]
    smaller = model.parse(doc)
    actions = plan(xenapi, smaller)
    assert kinds(actions)[-2:] == [("drift", "vm", "Compute"), ("drift", "network", "br100")]
    assert "marked with topology blog-lab but not in the file" in actions[-1].detail
    # Controller keeps its NIC on br100: prune cannot delete that network
    pruned = plan(xenapi, smaller, prune=True)
    assert kinds(pruned)[:2] == [("delete", "vm", "Compute"), ("conflict", "network",
                                                                "br100")]
    assert "in use by Controller, which topology blog-lab does not remove" in \
        pruned[1].detail
    # a NIC of the file that names it keeps it too
    doc["vms"].append({"name": "New", "nics": ["br100"]})
    pruned = plan(xenapi, model.parse(doc), prune=True)
    assert "a NIC in the file names it" in pruned[1].detail


def test_plan_destroy_lists_only_what_is_marked(xenapi, lab):
    applier.apply(xenapi, lab)
    Networks(xenapi).create("other")
    Vms(xenapi).create("Other", marks={MARK: "another"})
    actions = plan_destroy(xenapi, lab)
    assert kinds(actions) == [("delete", "vm", "Compute"), ("delete", "vm", "Controller"),
                              ("delete", "vm", "Fuel"), ("delete", "network", "br100"),
                              ("delete", "network", "private"), ("delete", "network", "pxe")]
    assert actions[2].detail == "- vm Fuel: destroy it with its disks (powered off first)"
    assert actions[4].detail == "- network private: delete it and its gateway"
    assert kinds(plan_destroy(xenapi, "blog-lab")) == kinds(actions)
    assert plan_destroy(xenapi, "another")[0].name == "Other"


def test_inbound_sources_are_planned_applied_and_read_back(xenapi, lab):
    """The example's commented inbound line, uncommented, is a valid file; adding inbound
    to a made network is an update, applied in place and then converged."""
    applier.apply(xenapi, lab)
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__))))), "examples", "blog-lab.yaml")) as f:
        text = f.read()
    assert "      # inbound: [192.0.2.0/24]\n" in text
    doc = model.loads(text.replace("# inbound:", "inbound:"), fmt="yaml")
    for network in doc["networks"]:
        (network.get("gateway") or {}).pop("forwards", None)  # as the lab fixture has it
    wanted = model.parse(doc)
    actions = plan(xenapi, wanted)
    assert actions[1].detail == ("~ network private: gateway 172.16.0.1/24 nat -> "
                                 "172.16.0.1/24 nat inbound 192.0.2.0/24")
    applier.apply(xenapi, wanted)
    rec = Networks(xenapi).find("private")[1]
    assert rec["other_config"][desired.INBOUND] == "192.0.2.0/24"
    assert summary(plan(xenapi, wanted)) == "6 unchanged"
