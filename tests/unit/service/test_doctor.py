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


def test_network_backend_linux_bridges_asks_nothing_of_ovsdb():
    def no_call(remote):
        raise AssertionError("OVSDB asked on a Linux-bridge host")
    checks = by_name(doctor.network_checks("bridge", "bridge", "unix:/x", no_call))
    assert list(checks) == ["network backend"]
    assert checks["network backend"] == doctor.Check(
        "network backend", "ok", "Linux bridges (network.conf says 'bridge')")


def test_open_vswitch_with_ovsdb_answering():
    checks = by_name(doctor.network_checks("openvswitch", None, "unix:/run/db.sock",
                                           lambda remote: ["Open_vSwitch", "_Server"]))
    assert checks["network backend"].detail == ("Open vSwitch (no network.conf: XAPI's "
                                                "default)")
    assert checks["ovsdb"].status == "ok"
    assert "unix:/run/db.sock" in checks["ovsdb"].detail
    assert doctor.worst(list(checks.values())) == "ok"


def test_open_vswitch_without_ovsdb_fails_and_says_where():
    from agent.errors import OvsdbUnavailable

    def down(remote):
        raise OvsdbUnavailable("OVSDB at %s does not answer: refused" % remote)
    checks = by_name(doctor.network_checks("openvswitch", "vswitch", "unix:/run/db.sock",
                                           down))
    assert checks["ovsdb"].status == "fail"
    assert "does not answer" in checks["ovsdb"].detail and "[agent] ovsdb" in checks[
        "ovsdb"].detail
    other = by_name(doctor.network_checks("openvswitch", "openvswitch", "unix:/s",
                                          lambda remote: ["_Server"]))
    assert other["ovsdb"].status == "fail" and "no Open_vSwitch" in other["ovsdb"].detail


def test_the_daemons_ovsdb_connection():
    up = {"remote": "unix:/run/db.sock", "connected": True, "reason": None,
          "version": "3.1.0"}
    checks = by_name(doctor.daemon_checks({"ovsdb": up}))
    assert checks["ovsdb connection"].status == "ok"
    assert "3.1.0" in checks["ovsdb connection"].detail
    down = dict(up, connected=False, reason="no socket /run/db.sock")
    # a warning while no link needs it (gateways never do); a failure, and a health
    # problem, once a network declares a link
    checks = by_name(doctor.daemon_checks({"ovsdb": down}))
    assert checks["ovsdb connection"].status == "warn"
    assert doctor.problems({"ovsdb": down}) == []
    status = {"ovsdb": down, "links": [{"network": "n", "state": "error"}]}
    assert by_name(doctor.daemon_checks(status))["ovsdb connection"].status == "fail"
    assert "no socket /run/db.sock" in doctor.problems(status)[0]
    # a Linux-bridge host has no connection and no such check
    assert "ovsdb connection" not in by_name(doctor.daemon_checks({"ovsdb": None,
                                                                   "rounds": 1}))
