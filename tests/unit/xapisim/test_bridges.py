"""The simulator's Dom0 record of lazy bridges and VIF ports (the same on every backend;
the real Open vSwitch and Linux bridges are in tests/integration/test_xapisim_bridges.py)."""
import re

import pytest
import XenAPI

from agent.xapisim import bridges
from tests.unit.xapisim.replies import ok
from tests.unit.xapisim.test_vms import new_vm, vif


def test_vif_ports_follow_their_vms_power_state(call, engine):
    net = ok(call("network.create", {"other_config": {}}))
    bridge = ok(call("network.get_bridge", net))
    a, b = new_vm(call, "a"), new_vm(call, "b")
    va = ok(vif(call, a, net, "0"))
    vb = ok(vif(call, b, net, "1"))
    uuid = lambda ref: ok(call("VIF.get_uuid", ref))  # noqa: E731
    ok(call("VM.start", a, False, False))
    assert engine.bridges.ports == {uuid(va): (bridge, engine.bridges.ports[uuid(va)][1])}
    port_a = engine.bridges.ports[uuid(va)][1]
    ok(call("VM.start", b, False, False))
    port_b = engine.bridges.ports[uuid(vb)][1]
    assert port_b.endswith(".1") and port_a.endswith(".0") and port_a[:-2] != port_b[:-2]
    ok(call("VM.hard_shutdown", a))
    assert engine.bridges.ports == {uuid(vb): (bridge, port_b)}
    ok(call("VM.start", a, False, False))  # back, as vif<its domain>.0
    assert engine.bridges.ports[uuid(va)][0] == bridge
    assert re.match(r"^vif\d+\.0$", engine.bridges.ports[uuid(va)][1])
    ok(call("VM.hard_shutdown", a))
    ok(call("VM.hard_shutdown", b))
    assert engine.bridges.ports == {} and engine.bridges.created == set()


def test_the_spec_carries_what_networkd_writes(call, engine):
    net = ok(call("network.create", {"other_config": {}}))
    vm = new_vm(call)
    ref = ok(vif(call, vm, net, "2", mac="02:00:00:00:00:42"))
    spec = bridges.spec(engine, net, [ref])
    assert spec.network_uuid == ok(call("network.get_uuid", net))
    [one] = spec.vifs
    assert (one.vif_uuid, one.vm_uuid, one.network_uuid, one.mac, one.device) == (
        ok(call("VIF.get_uuid", ref)), ok(call("VM.get_uuid", vm)), spec.network_uuid,
        "02:00:00:00:00:42", "2")


def test_make_chooses_the_backend():
    assert type(bridges.make("openvswitch", real=False)) is bridges.Bridges
    assert type(bridges.make("bridge", real=True)) is bridges.LinuxBridges
    with pytest.raises(ValueError) as err:
        bridges.make("vswitch", real=True)
    assert "openvswitch, bridge" in str(err.value)


class _BrokenBackend(bridges.Bridges):
    """A backend whose bridges cannot be made (an OVS command that fails or times out)."""

    def add_bridge(self, name, bspec):
        raise OSError("ovs-vsctl: timed out")


def test_a_start_whose_bridge_cannot_be_made_fails_and_leaves_the_vm_halted(served, xenapi):
    engine = served[0]
    host = xenapi.host.get_all()[0]
    engine.dom0[host] = engine.bridges = _BrokenBackend()
    net = xenapi.network.create({"name_label": "private", "other_config": {}})
    template = xenapi.VM.get_by_name_label("Other install media")[0]
    vm = xenapi.VM.clone(template, "a")
    xenapi.VM.provision(vm)
    xenapi.VIF.create({"VM": vm, "network": net, "device": "0", "MAC": "", "MTU": "1500",
                       "other_config": {}, "qos_algorithm_type": "",
                       "qos_algorithm_params": {}})
    with pytest.raises(XenAPI.Failure) as info:
        xenapi.VM.start(vm, False, False)
    assert info.value.details[0] == "INTERNAL_ERROR"
    assert "ovs-vsctl: timed out" in info.value.details[1]
    assert xenapi.VM.get_power_state(vm) == "Halted"
    assert xenapi.VM.get_resident_on(vm) == "OpaqueRef:NULL"
    assert engine.bridges.created == set()
