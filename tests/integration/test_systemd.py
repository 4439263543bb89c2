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


# ---- the shipped unit with a broken TCP side (issue 11, item 3) -------------------------
import json  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from tests.integration import test_faults  # noqa: E402

UNIT = os.path.join(N.REPO, "systemd", "xapi-gateway.service")
PORT = 8443


def unit_commands():
    """{ExecStartPre: argv, ExecStart: argv} of the shipped unit, with the installed
    wrapper replaced by this checkout's daemon."""
    commands = {}
    with open(UNIT) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key in ("ExecStartPre", "ExecStart"):
                argv = shlex.split(value.lstrip("-@:+!"))
                assert argv[0] == "/usr/bin/xapi-gateway-agent", line
                commands[key] = [sys.executable, "-m", "agent.daemon.main"] + argv[1:]
    assert set(commands) == {"ExecStartPre", "ExecStart"}, commands
    return commands


def _tls(workdir):
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def _break_mode(workdir, tokens, cert):
    os.chmod(tokens, 0o644)
    return "readable by others"


def _break_owner(workdir, tokens, cert):
    os.chown(tokens, 65534, 65534)
    return "owned by uid 65534"


def _break_tls(workdir, tokens, cert):
    os.unlink(cert)
    return "cannot load the API's TLS certificate"


BREAKS = {"token file 0644": _break_mode, "token file of another user": _break_owner,
          "TLS certificate missing": _break_tls, "TCP port in use": None}


@pytest.mark.parametrize("problem", sorted(BREAKS))
def test_a_broken_tcp_side_still_gives_a_running_daemon_that_enforces(workdir, problem):
    dom0 = N.Netns("unit")
    squatter = None
    daemon = N.Daemon(dom0, workdir, test_faults.GW)
    try:
        cert, key = _tls(workdir)
        tokens = os.path.join(workdir, "tokens")
        with open(tokens, "w") as f:
            f.write("admin %s\n" % ("a" * 40))
        os.chmod(tokens, 0o600)
        daemon.write_config(test_faults.GW, extra=(
            "[api]\nlisten = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\ntokens = %s\n"
            % (PORT, cert, key, tokens)))
        dom0.run(["ip", "link", "set", "lo", "up"])
        if BREAKS[problem] is None:
            squatter = dom0.popen([sys.executable, "-c",
                                   "import socket,time; s=socket.socket(); "
                                   "s.bind(('127.0.0.1', %d)); s.listen(1); "
                                   "print('up', flush=True); time.sleep(600)" % PORT],
                                  stdout=subprocess.PIPE)
            assert squatter.stdout.readline().strip() == b"up"
            expected = "Address already in use"
        else:
            expected = BREAKS[problem](workdir, tokens, cert)
        commands = unit_commands()
        env = dict(os.environ, PYTHONPATH=N.REPO)

        # ExecStartPre: the unit goes on (exit 0), the problem named as a warning
        pre = dom0.run(commands["ExecStartPre"] + ["-c", daemon.config_path], check=False,
                       env=env)
        assert pre.returncode == 0, pre.stderr
        if BREAKS[problem] is not None:
            assert "warning: the API will not be served on TCP" in pre.stderr
            assert expected in pre.stderr

        # ExecStart (Type=notify): READY, the gateway enforced, the Unix socket served
        daemon.start()
        test_faults.make_bridge(dom0)
        N.wait_for(lambda: "172.16.1.1/24" in dom0.addresses("xapi1"),
                   message="the gateway's address")
        N.wait_for(lambda: len(test_faults.forward_jumps(dom0)) == 1, message="the jump")
        health = test_faults.health(daemon)
        assert health["status"] == "degraded"
        assert any("not served on TCP 127.0.0.1:%d" % PORT in p and expected in p
                   for p in health["problems"]), health
        N.wait_for(lambda: json.loads(test_faults.get(daemon, "/v1/gateways")[1])[0]["state"]
                   == "applied", message="applied, as the Unix socket says")
        assert daemon.status()["api"]["tcp_error"]
        assert "API TCP off" in daemon.wait_notify("READY=1")
        assert "the API is NOT served on TCP" in daemon.log()

        doctor = dom0.run([sys.executable, "-m", "agent.cli", "-c", daemon.config_path,
                           "doctor", "--json"], check=False, env=env)
        checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert checks["api tcp"]["status"] == "fail" and expected in checks["api tcp"]["detail"]
        assert doctor.returncode == 1
        shown = dom0.run([sys.executable, "-m", "agent.cli", "-c", daemon.config_path,
                          "status"], check=False, env=env).stdout
        assert "PROBLEM: the API is not served on TCP" in shown, shown
        if squatter is None:  # nothing listens on the port
            probe = dom0.run([sys.executable, "-c", "import socket; socket.create_connection("
                              "('127.0.0.1', %d), 2)" % PORT], check=False)
            assert "Connection refused" in probe.stderr
        assert daemon.stop() == 0
    finally:
        if squatter is not None:
            squatter.kill()
            squatter.wait()
        daemon.stop()
        dom0.delete()
