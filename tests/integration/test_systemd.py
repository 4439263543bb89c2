"""The sd_notify protocol as systemd sees it: READY after the first reconcile, STATUS,
watchdog pings, RELOADING/READY around SIGHUP, STOPPING and exit 0 on SIGTERM."""
from tests.integration import netns as N

GW = {"private": {"bridge": "xapi1", "address": "172.16.1.1/24"}}


def test_notify_protocol(workdir, daemons):
    dom0 = N.Netns("sd")
    try:
        # WATCHDOG_USEC=400000: systemd would kill a daemon silent for 0.4 s; it pings
        # every 0.2 s while the reconciler is healthy.
        daemon = daemons(dom0, workdir, GW, env={"WATCHDOG_USEC": "400000"})
        ready = daemon.wait_notify("READY=1")
        assert "STATUS=1 gateway: 1 absent" in ready.split("\n")
        N.wait_for(lambda: daemon.notifications().count("WATCHDOG=1") >= 3, timeout=5,
                   message="three watchdog pings")

        dom0.run(["ip", "link", "add", "xapi1", "type", "bridge"])
        dom0.run(["ip", "link", "set", "xapi1", "up"])
        N.wait_for(lambda: any("STATUS=1 gateway: 1 applied" in m
                               for m in daemon.notifications()), message="STATUS applied")

        seen = len(daemon.notifications())
        daemon.reload()
        N.wait_for(lambda: "RELOADING=1" in daemon.notifications()[seen:],
                   message="RELOADING=1")
        N.wait_for(lambda: any(m.startswith("READY=1") for m in daemon.notifications()[seen:]),
                   message="READY=1 after the reload")

        assert daemon.stop() == 0
        assert any(m.startswith("STOPPING=1") for m in daemon.notifications())
        assert "172.16.1.1/24" in dom0.addresses("xapi1")  # left in place
    finally:
        dom0.delete()
