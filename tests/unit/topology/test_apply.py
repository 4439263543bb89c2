"""Applying and destroying topologies against the simulator, through the real SDK."""
import copy

import pytest

from agent.core import desired
from agent.service.errors import Conflict, InvalidInput, XapiCallFailed
from agent.service.networks import Networks
from agent.service.vms import MIB, Vms
from agent.topology import model
from agent.topology.apply import apply, destroy
from agent.topology.plan import plan
from agent.xapisim.engine import XapiFailure
from tests.unit.topology.conftest import lab_document

MARK = desired.TOPOLOGY_MARK
CLASSES = ("VM", "VIF", "VBD", "VDI", "network", "PIF", "VLAN")


def state(engine):
    """Everything but sessions, as plain data."""
    return copy.deepcopy({cls: objects for cls, objects in engine.objects.items()
                          if cls != "session"})


def inventory(engine):
    """What a topology may add: counts per class, SR allocation, bridges, and the
    other_config of every object there was before."""
    return ({cls: len(engine.objects[cls]) for cls in CLASSES},
            sorted((sr["name_label"], sr["virtual_allocation"], sr["physical_utilisation"])
                   for sr in engine.objects["SR"].values()),
            sorted(engine.bridges.created))


def other_configs(engine, refs):
    return {(cls, ref): copy.deepcopy(engine.objects[cls][ref].get("other_config"))
            for cls, ref in refs if ref in engine.objects[cls]}


def existing(engine):
    return [(cls, ref) for cls in ("network", "VM", "SR", "VDI", "pool", "host", "PIF")
            for ref in engine.objects[cls]]


def test_the_blog_lab_applies_then_nothing_changes(xenapi, engine, lab):
    steps = []
    result = apply(xenapi, lab, progress=steps.append)
    assert result["changed"] == 6 and result["warnings"] == []
    assert [s["status"] for s in result["steps"]] == ["done"] * 6
    assert steps[0] == "[1/6] + network pxe"
    assert steps[-1] == "topology blog-lab applied: 6 changes"
    vms = {v["name"]: v for v in Vms(xenapi).list()}
    fuel, compute = vms["Fuel"], vms["Compute"]
    assert fuel["power_state"] == "Running" and fuel["iso"] == "ubuntu-22.04-server.iso"
    assert [n["network"] for n in fuel["nics"]] == ["pxe",
                                                    "Pool-wide network associated with eth0"]
    assert [n["network"] for n in compute["nics"]] == [
        "pxe", "private", "br100", "Host internal management network"]
    assert (compute["memory_mib"], compute["vcpus"], compute["boot"]) == (4096, 2, "ncd")
    assert compute["power_state"] == "Halted" and compute["topology"] == "blog-lab"
    private = Networks(xenapi).find("private")[1]["other_config"]
    assert private == {desired.ADDRESS: "172.16.0.1/24", desired.NAT: "true",
                       MARK: "blog-lab"}

    assert all(a.kind == "noop" for a in plan(xenapi, lab))
    before, events = state(engine), engine.event_id
    again = apply(xenapi, lab, progress=steps.append)
    assert again["changed"] == 0 and steps[-1] == "topology blog-lab applied: nothing to change"
    assert [s["status"] for s in again["steps"]] == ["unchanged"] * 6
    assert engine.event_id == events and state(engine) == before


def test_the_blog_lab_with_its_forwards(xenapi, engine):
    topology = model.parse(lab_document(forwards=True))
    apply(xenapi, topology)
    config = Networks(xenapi).find("private")[1]["other_config"]
    assert config[desired.FORWARDS] == "tcp:8080=172.16.0.3:80"
    assert all(a.kind == "noop" for a in plan(xenapi, topology))
    events = engine.event_id
    apply(xenapi, topology)
    assert engine.event_id == events
    doc = lab_document(forwards=True)
    doc["networks"][1]["gateway"]["forwards"].append(
        {"proto": "udp", "port": 5353, "to": "172.16.0.4:53"})
    doc["networks"][1]["gateway"]["forwards"][0]["to"] = "172.16.0.5:80"
    changed = model.parse(doc)
    update = plan(xenapi, changed)[1]
    assert update.detail == ("~ network private: gateway 172.16.0.1/24 nat, forwards "
                             "~tcp:8080=172.16.0.5:80 +udp:5353=172.16.0.4:53")
    apply(xenapi, changed)
    assert Networks(xenapi).find("private")[1]["other_config"][desired.FORWARDS] == \
        "tcp:8080=172.16.0.5:80,udp:5353=172.16.0.4:53"
    assert all(a.kind == "noop" for a in plan(xenapi, changed))


def test_destroy_leaves_the_host_as_it_was(xenapi, engine, lab):
    before = inventory(engine)
    refs = existing(engine)
    configs = other_configs(engine, refs)
    apply(xenapi, lab)
    Vms(xenapi).start("Controller")  # a running VM is powered off first
    steps = []
    result = destroy(xenapi, lab, progress=steps.append)
    assert result["changed"] == 6
    assert steps[0] == "[1/6] - vm Compute: destroy it with its disks"
    assert steps[-1] == "topology blog-lab destroyed: 6 changes"
    assert inventory(engine) == before
    assert other_configs(engine, refs) == configs
    assert [a.kind for a in plan(xenapi, lab)] == ["create"] * 6
    assert destroy(xenapi, lab)["changed"] == 0


def test_destroy_leaves_unmarked_objects_of_the_same_names_alone(xenapi, engine, lab):
    Networks(xenapi).create("pxe")  # someone's own network named like the lab's
    Vms(xenapi).create("Fuel", marks={MARK: "another-lab"})
    before = inventory(engine)
    result = destroy(xenapi, lab)
    assert result["changed"] == 0
    assert [s["detail"] for s in result["steps"]] == [
        "= vm Fuel: not managed by topology blog-lab (it belongs to topology another-lab): "
        "left alone",
        "= network pxe: not managed by topology blog-lab (it has no topology mark): left "
        "alone"]
    assert inventory(engine) == before


def test_destroy_refuses_while_a_foreign_vm_uses_its_network(xenapi, engine, lab):
    apply(xenapi, lab)
    Vms(xenapi).create("Guest", nics=["private"])
    before = state(engine)
    with pytest.raises(Conflict) as info:
        destroy(xenapi, lab)
    assert "network private: in use by Guest" in info.value.message
    assert "nothing was changed" in info.value.message
    assert state(engine) == before


def test_a_foreign_network_named_pxe_stops_apply_before_any_change(xenapi, engine, lab):
    Networks(xenapi).create("pxe")
    before, events = state(engine), engine.event_id
    with pytest.raises(Conflict) as info:
        apply(xenapi, lab)
    assert info.value.message.startswith("topology blog-lab cannot be applied: ! network "
                                         "pxe: a network of that name exists")
    assert info.value.details["conflicts"][0]["name"] == "pxe"
    assert engine.event_id == events and state(engine) == before


def test_a_failure_half_way_stops_and_says_what_was_done(xenapi, engine, lab):
    steps = []
    engine.fail_next["VM.clone"] = [None, XapiFailure("INTERNAL_ERROR", "injected")]
    with pytest.raises(XapiCallFailed) as info:
        apply(xenapi, lab, progress=steps.append)
    error = info.value
    assert error.message.startswith(
        "topology blog-lab: step 5 of 6 failed (+ vm Controller: 4096 MiB")
    assert "clone the template failed: INTERNAL_ERROR injected" in error.message
    assert "Done before it: + network pxe; + network private" in error.message
    assert "Not done: + vm Compute" in error.message
    assert error.details["step"] == "clone the template"  # the service layer's details
    assert error.details["xapi_code"] == "INTERNAL_ERROR"
    assert error.details["failed_action"]["name"] == "Controller"
    assert [a["name"] for a in error.details["done"]] == ["pxe", "private", "br100", "Fuel"]
    assert [a["name"] for a in error.details["not_done"]] == ["Compute"]
    assert steps[-1] == ("[5/6] failed: clone the template failed: INTERNAL_ERROR injected")
    assert sorted(v["name"] for v in Vms(xenapi).list()) == ["Fuel"]  # rolled back
    # fixed (the injection is used up): applying again does the rest
    actions = plan(xenapi, lab)
    assert [a.kind for a in actions] == ["noop"] * 4 + ["create"] * 2
    assert apply(xenapi, lab)["changed"] == 2
    assert all(a.kind == "noop" for a in plan(xenapi, lab))


def test_a_failed_network_update_is_reported(xenapi, engine, lab):
    apply(xenapi, lab)
    doc = lab_document()
    doc["networks"][1]["gateway"]["nat"] = False
    engine.fail_next["network.set_other_config"] = [XapiFailure("INTERNAL_ERROR", "x")]
    with pytest.raises(XapiCallFailed) as info:
        apply(xenapi, model.parse(doc))
    assert "step 2 of 6 failed (~ network private" in info.value.message
    assert info.value.details["done"] == [] and info.value.details["not_done"] == []
    # Networks.set_gateway writes the gateway in one call: the failed one changed nothing
    assert Networks(xenapi).find("private")[1]["other_config"][desired.NAT] == "true"
    assert apply(xenapi, model.parse(doc))["changed"] == 1
    assert Networks(xenapi).find("private")[1]["other_config"][desired.NAT] == "false"


def test_start_and_prune(xenapi, engine, lab):
    apply(xenapi, lab)
    doc = lab_document()
    doc["vms"][1]["start"] = True
    del doc["vms"][2]
    result = apply(xenapi, model.parse(doc), prune=True)
    assert [s["detail"] for s in result["steps"] if s["status"] == "done"] == [
        "- vm Compute: destroy it with its disks", "> vm Controller: start it (it is halted)"]
    assert {v["name"]: v["power_state"] for v in Vms(xenapi).list()} == {
        "Controller": "Running", "Fuel": "Running"}


def test_drift_is_reported_and_left(xenapi, engine, lab):
    apply(xenapi, lab)
    doc = lab_document()
    doc["vms"][0]["memory_mib"] = 1024
    before = state(engine)
    result = apply(xenapi, model.parse(doc))
    fuel = [s for s in result["steps"] if s["name"] == "Fuel"][0]
    assert fuel["status"] == "reported" and fuel["kind"] == "drift"
    assert "memory (file 1024 MiB, host 2048 MiB)" in fuel["detail"]
    assert state(engine) == before
    assert Vms(xenapi).get("Fuel")["memory_mib"] == 2048


def test_a_vlan_network_comes_and_goes(xenapi, engine):
    before = inventory(engine)
    topology = model.parse({"name": "v", "networks": [
        {"name": "br100", "vlan": {"tag": 100}, "description": "VLAN 100"}],
        "vms": [{"name": "a", "nics": ["br100"], "memory": "1GiB"}]})
    apply(xenapi, topology)
    assert Vms(xenapi).get("a")["memory_mib"] == 1024
    assert int(engine.objects["VM"][xenapi.VM.get_by_name_label("a")[0]][
        "memory_static_max"]) == 1024 * MIB
    assert [a.kind for a in plan(xenapi, topology)] == ["noop", "noop"]
    doc = {"name": "v", "networks": [{"name": "br100", "vlan": {"tag": 200},
                                      "description": "VLAN 100"}],
           "vms": [{"name": "a", "nics": ["br100"], "memory": "1GiB"}]}
    assert "VLAN (file VLAN 200 on eth0, host VLAN 100 on eth0)" in \
        plan(xenapi, model.parse(doc))[0].detail
    destroy(xenapi, topology)
    assert inventory(engine) == before


def test_vms_start_on_the_pool_host_the_file_names(xenapi, engine):
    from agent.xapisim import pool as members
    other = members.add_host(engine, "xgw-sim-2", "openvswitch")
    doc = lab_document()
    doc["vms"][0]["host"] = "xgw-sim-2"
    doc["vms"][1].update(host=xenapi.host.get_uuid(other))
    apply(xenapi, model.parse(doc))
    fuel, controller = (xenapi.VM.get_by_name_label(n)[0] for n in ("Fuel", "Controller"))
    assert xenapi.VM.get_resident_on(fuel) == other
    assert xenapi.VM.get_affinity(fuel) == other and xenapi.VM.get_affinity(controller) == other
    doc["vms"][1]["start"] = True   # a later start goes to the file's host too
    result = apply(xenapi, model.parse(doc))
    assert [s["detail"] for s in result["steps"] if s["status"] == "done"] == [
        "> vm Controller: start it (it is halted) on host %s" % xenapi.host.get_uuid(other)]
    assert xenapi.VM.get_resident_on(controller) == other


def test_a_vm_on_an_unknown_host_stops_apply_before_any_change(xenapi, engine):
    doc = lab_document()
    doc["vms"][2]["host"] = "xgw-sim-9"
    before = state(engine)
    with pytest.raises(InvalidInput) as err:
        apply(xenapi, model.parse(doc))
    assert err.value.details["field"] == "vms[2].host"
    assert "'xgw-sim-9' is no host of this pool; hosts: xgw-sim (" in str(err.value)
    assert state(engine) == before
    with pytest.raises(InvalidInput) as err:
        model.parse(dict(doc, vms=[dict(doc["vms"][0], host=["a"])]))
    assert err.value.details["field"] == "vms[0].host"
