"""Pool members in the simulator: host.disable, host.enable, host.shutdown and
host_metrics.live as xapi has them, over the real SDK on HTTP."""
from agent.xapisim import pool as members
from tests.unit.xapisim.test_sdk import failure


def test_a_member_is_disabled_shut_down_and_marked_dead_at_once(served, xenapi):
    engine = served[0]
    other = members.add_host(engine, "xgw-sim-2", "openvswitch")
    assert sorted(xenapi.host.get_name_label(h) for h in xenapi.host.get_all()) == [
        "xgw-sim", "xgw-sim-2"]
    metrics = xenapi.host.get_metrics(other)
    assert xenapi.host_metrics.get_live(metrics) is True
    assert failure(xenapi.host.shutdown, other) == ["HOST_NOT_DISABLED"]
    xenapi.host.disable(other)
    assert xenapi.host.get_enabled(other) is False
    xenapi.host.enable(other)
    assert xenapi.host.get_enabled(other) is True
    xenapi.host.disable(other)
    xenapi.host.shutdown(other)
    assert xenapi.host_metrics.get_live(metrics) is False
    assert failure(xenapi.host.enable, other) == ["HOST_OFFLINE", other]


def test_a_host_with_a_running_guest_is_not_shut_down(xenapi):
    host = xenapi.host.get_all()[0]
    template = xenapi.VM.get_by_name_label("Other install media")[0]
    vm = xenapi.VM.clone(template, "guest")
    xenapi.VM.provision(vm)
    xenapi.VM.start(vm, False, False)
    xenapi.host.disable(host)
    assert failure(xenapi.host.shutdown, host) == ["HOST_IN_USE", host, "VM", vm]
    assert xenapi.host_metrics.get_live(xenapi.host.get_metrics(host)) is True


def test_disable_and_shutdown_are_seen_through_event_from(served, xenapi):
    engine = served[0]
    other = members.add_host(engine, "xgw-sim-2", "openvswitch")
    token = xenapi.event_from(["host", "host_metrics"], "", 0.0)["token"]
    xenapi.host.disable(other)
    xenapi.host.shutdown(other)
    events = xenapi.event_from(["host", "host_metrics"], token, 1.0)["events"]
    seen = [(e["class"], e["snapshot"].get("enabled", e["snapshot"].get("live")))
            for e in events]
    assert ("host", False) in seen and ("host_metrics", False) in seen
