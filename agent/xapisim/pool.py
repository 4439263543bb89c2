"""Pool members and their liveness: host.enable, host.disable, host.shutdown.

The first slice of a simulated pool (issue 13): more hosts in the pool's one database,
each with its host_metrics, so that placement can be exercised through the real SDK.
``add_host`` adds a member (the simulator's ``--hosts N`` seam); per-host bridge
namespaces, VM.start_on and VM_REQUIRES_NETWORK are not simulated yet.

As xapi does: ``host.disable`` marks the host disabled (maintenance) until
``host.enable`` (HOST_OFFLINE while it is dead); ``host.shutdown`` needs the host disabled
first (HOST_NOT_DISABLED) and no running guest on it (HOST_IN_USE; evacuate first), and
marks its host_metrics dead at once, as xapi does for a host shut down through the API.
"""
import datetime

from agent.xapisim.engine import XapiFailure
from agent.xapisim.seed import DOM0_MEMORY, HOST_MEMORY, software_version


def install(engine):
    engine.handlers["host.disable"] = host_disable
    engine.handlers["host.enable"] = host_enable
    engine.handlers["host.shutdown"] = host_shutdown


def add_host(engine, name, backend):
    """A new member of the pool: its host record and live host_metrics. Returns its ref."""
    metrics = engine.create("host_metrics", live=True, memory_total=HOST_MEMORY,
                            memory_free=HOST_MEMORY - DOM0_MEMORY,
                            last_updated=datetime.datetime.utcnow().replace(microsecond=0))
    return engine.create("host", name_label=name, hostname=name, enabled=True,
                         address="127.0.0.1", software_version=software_version(name, backend),
                         metrics=metrics, edition="xcp-ng", name_description="Pool member")


def host_disable(engine, session, host):
    engine.set_field("host", host, "enabled", False)
    return ""  # a void call's answer on the wire


def host_enable(engine, session, host):
    record = engine.record("host", host)
    metrics = engine.objects["host_metrics"].get(record["metrics"])
    if metrics is not None and not metrics["live"]:
        raise XapiFailure("HOST_OFFLINE", host)
    engine.set_field("host", host, "enabled", True)
    return ""


def host_shutdown(engine, session, host):
    record = engine.record("host", host)
    if record["enabled"]:
        raise XapiFailure("HOST_NOT_DISABLED")
    guests = [vm for vm in record["resident_VMs"]
              if not engine.record("VM", vm)["is_control_domain"]]
    if guests:
        raise XapiFailure("HOST_IN_USE", host, "VM", guests[0])
    if record["metrics"] in engine.objects["host_metrics"]:
        engine.set_field("host_metrics", record["metrics"], "live", False)
    return ""
