"""VMs from the template, VIFs, power states and the lazy bridges that follow them."""
from tests.unit.xapisim.replies import error, ok


def vif(call, vm, net, device, mac=""):
    return call("VIF.create", {"device": device, "network": net, "VM": vm, "MAC": mac,
                               "MTU": "1500", "other_config": {}, "qos_algorithm_type": "",
                               "qos_algorithm_params": {}})


def new_vm(call, name="Controller"):
    template = ok(call("VM.get_by_name_label", "Other install media"))[0]
    vm = ok(call("VM.clone", template, name))
    ok(call("VM.provision", vm))
    ok(call("VM.set_is_a_template", vm, False))
    return vm


def test_the_template_is_other_install_media(call):
    template = ok(call("VM.get_by_name_label", "Other install media"))[0]
    record = ok(call("VM.get_record", template))
    assert record["is_a_template"] and record["HVM_boot_params"] == {"order": "dc"}
    assert record["other_config"]["install-methods"] == "cdrom"
    assert record["memory_static_min"] == str(128 * 2 ** 20)
    # xapi_vm_lifecycle.ml check_template names the operation too
    assert error(call("VM.start", template, False, False)) == ["VM_IS_TEMPLATE", template,
                                                               "start"]


def test_vifs_in_order_with_generated_macs(call):
    vm = new_vm(call)
    net = ok(call("network.create", {"other_config": {}}))
    first = ok(vif(call, vm, net, "0"))
    assert len(ok(call("VIF.get_MAC", first))) == 17
    assert error(vif(call, vm, net, "0")) == ["DEVICE_ALREADY_EXISTS", "0"]
    assert error(vif(call, vm, net, "one")) == ["INVALID_VALUE", "device", "one"]
    ok(vif(call, vm, net, "1", mac="02:00:00:00:00:99"))
    assert sorted(ok(call("VIF.get_device", v)) for v in ok(call("VM.get_VIFs", vm))) == ["0", "1"]


def test_private_bridges_follow_running_vms(call, engine):
    net = ok(call("network.create", {"other_config": {}}))
    bridge = ok(call("network.get_bridge", net))
    a, b = new_vm(call, "a"), new_vm(call, "b")
    ok(vif(call, a, net, "0"))
    ok(vif(call, b, net, "0"))
    assert engine.bridges.created == set()
    ok(call("VM.start", a, False, False))
    assert engine.bridges.created == {bridge}
    assert error(call("VM.start", a, False, False)) == ["VM_BAD_POWER_STATE", a, "halted",
                                                        "running"]
    ok(call("VM.start", b, False, False))
    ok(call("VM.clean_shutdown", a))
    assert engine.bridges.created == {bridge}  # b still runs on it
    ok(call("VM.hard_shutdown", b))
    assert engine.bridges.created == set()     # the last VM stopped
    # xapi_vm_lifecycle.ml: every power state the operation accepts, in its order
    assert error(call("VM.shutdown", b)) == ["VM_BAD_POWER_STATE", b,
                                             "paused, suspended, running", "halted"]
    host = ok(call("host.get_all"))[0]
    ok(call("network.attach", net, host))      # a hidden message, callable all the same
    assert engine.bridges.created == {bridge}
    assert error(call("network.attach", net))[0] == "MESSAGE_PARAMETER_COUNT_MISMATCH"


def test_destroy_a_running_vm_is_refused(call):
    vm = new_vm(call)
    ok(call("VM.start", vm, False, False))
    assert error(call("VM.destroy", vm))[0] == "VM_BAD_POWER_STATE"
    ok(call("VM.hard_shutdown", vm))
    ok(call("VM.destroy", vm))
