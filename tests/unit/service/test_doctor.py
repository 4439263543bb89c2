"""The preflight's XAPI checks against the simulator."""
from agent.service import doctor


def by_name(checks):
    return {c.name: c for c in checks}


def test_seeded_host_is_ready(xenapi):
    checks = by_name(doctor.xapi_checks(xenapi))
    assert checks["xapi"].status == "ok" and "API 2.21" in checks["xapi"].detail
    assert checks["himn"].status == "ok"
    assert checks["default SR"].status == "ok" and "Local storage" in checks["default SR"].detail


def test_pool_without_default_sr_fails(xenapi):
    xenapi.pool.set_default_SR(xenapi.pool.get_all()[0], "OpaqueRef:NULL")
    check = by_name(doctor.xapi_checks(xenapi))["default SR"]
    assert check.status == "fail" and "default-SR" in check.detail


def test_default_sr_type(xenapi, engine):
    pool = xenapi.pool.get_all()[0]
    for kind, status in (("ext", "ok"), ("lvm", "warn")):
        sr = engine.create("SR", name_label="Local storage", type=kind)
        xenapi.pool.set_default_SR(pool, sr)
        check = by_name(doctor.xapi_checks(xenapi))["default SR"]
        assert check.status == status and kind in check.detail


def test_missing_himn_fails(xenapi, engine):
    for ref, rec in list(engine.objects["network"].items()):
        if rec["bridge"] == "xenapi":
            engine.destroy("network", ref)
    assert by_name(doctor.xapi_checks(xenapi))["himn"].status == "fail"
