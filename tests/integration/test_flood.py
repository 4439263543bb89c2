"""Connection exhaustion (issue 11, item 2): with systemd's default 1,024 descriptors,
anyone who reaches the TCP port could kill the daemon with ~1,050 bare connections. Now
the listener's cap closes what is over it, a head deadline (TLS handshake included) ends
silent connections, the kernel thread keeps its descriptors (drift is repaired during
the flood), the Unix socket answers, and descriptors and memory come back afterwards.

The daemon runs under prlimit --nofile=1024:1024 in a network namespace; the flood comes
from a process in that namespace."""
import json
import os
import subprocess
import sys
import time

from tests.integration import netns as N
from tests.integration import test_faults
from tests.integration import test_systemd

FLOOD = os.path.join(N.HELPERS, "flood.py")
PORT = 8443


LEGIT = """
import http.client, json, ssl
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
conn = http.client.HTTPSConnection("127.0.0.1", %d, timeout=10, context=context,
                                   source_address=("127.0.0.3", 0))
conn.request("GET", "/v1/gateways", headers={"Authorization": "Bearer %s"})
response = conn.getresponse()
print(response.status, json.loads(response.read())[0]["state"])
"""


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Flood(object):
    def __init__(self, ns, count, source=None, tls=False):
        argv = [sys.executable, FLOOD, "127.0.0.1", str(PORT), str(count)]
        argv += [source] if source else []
        argv += ["--tls"] if tls else []
        self.proc = ns.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             universal_newlines=True)
        self.opened = json.loads(self.proc.stdout.readline())

    def counts(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


def test_a_connection_flood_cannot_starve_or_kill_the_daemon(workdir, daemons):
    dom0 = N.Netns("flood")
    floods = []
    try:
        dom0.run(["ip", "link", "set", "lo", "up"])
        for n in (2, 3, 4):
            dom0.run(["ip", "addr", "add", "127.0.0.%d/8" % n, "dev", "lo"])
        cert, key = test_systemd._tls(workdir)
        tokens = os.path.join(workdir, "tokens")
        with open(tokens, "w") as f:
            f.write("admin %s\n" % ("a" * 40))
        os.chmod(tokens, 0o600)
        test_faults.make_bridge(dom0)
        daemon = daemons(dom0, workdir, test_faults.GW, prefix=["prlimit", "--nofile=1024:1024"],
                         extra="[api]\nlisten = 127.0.0.1:%d\ntls_cert = %s\ntls_key = %s\n"
                               "tokens = %s\nheader_timeout = 10\nmax_connections = 300\n"
                               "max_connections_per_peer = 100\n" % (PORT, cert, key, tokens))
        N.wait_for(lambda: len(test_faults.forward_jumps(dom0)) == 1, message="the jump")
        pid = daemon.proc.pid
        assert "1024" in open("/proc/%d/limits" % pid).read().split("Max open files")[1]
        time.sleep(1)
        base_fds, base_rss = daemon.settled_fd_count(), rss_kb(pid)

        # 1,100 bare connections (no TLS handshake, no byte) from one address, 120 idle
        # TLS ones from another: each address gets 100 (max_connections_per_peer) ...
        floods.append(Flood(dom0, 1100))
        floods.append(Flood(dom0, 120, source="127.0.0.2", tls=True))
        assert floods[0].opened["opened"] >= 1000, floods[0].opened
        N.wait_for(lambda: test_faults.metric(
            daemon, 'xgw_api_connections_refused_total{cap="peer"}') >= 1000 - 100,
            message="what one address has over its cap refused")
        # ... so a controller at a third address is still served
        answer = dom0.run([sys.executable, "-c", LEGIT % (PORT, "a" * 40)], check=False)
        assert answer.stdout.strip() == "200 applied", answer.stderr
        # and at the listener's cap (300) what comes on top is closed at once
        floods.append(Flood(dom0, 150, source="127.0.0.4"))
        N.wait_for(lambda: test_faults.metric(
            daemon, 'xgw_api_connections_refused_total{cap="listener"}') >= 50,
            message="50 over the listener's cap refused")
        assert test_faults.metric(daemon, 'xgw_api_connections{listener="tcp"}') == 300
        assert daemon.fd_count() < 1024 - 64
        dom0.ipt("-D", "FORWARD", "-j", "XGW-FORWARD")  # drift, repaired during the flood
        N.wait_for(lambda: len(test_faults.forward_jumps(dom0)) == 1, timeout=10,
                   message="drift repaired during the flood")
        assert test_faults.health(daemon)["status"] == "ok"  # the Unix socket answers

        # Past header_timeout every silent connection is closed by the daemon.
        N.wait_for(lambda: floods[0].counts()["open"] == 0, timeout=25,
                   message="the bare connections closed by the daemon")
        N.wait_for(lambda: floods[1].counts()["open"] == 0, timeout=15,
                   message="the idle TLS connections closed by the daemon")
        N.wait_for(lambda: floods[2].counts()["open"] == 0, timeout=15,
                   message="the third flood's connections closed by the daemon")
        assert test_faults.metric(daemon, "xgw_api_connection_timeouts_total") >= 300
        for flood in floods:
            flood.close()
        floods = []
        N.wait_for(lambda: daemon.fd_count() <= base_fds + 2, timeout=10,
                   message="descriptors back to the baseline %d" % base_fds)
        peak = rss_kb(pid)
        N.wait_for(lambda: rss_kb(pid) < base_rss + 8 * 1024, timeout=10,
                   message="memory back near the baseline %d KB (peak %d KB)"
                           % (base_rss, peak))
        assert daemon.proc.poll() is None
        log = daemon.log()
        assert "Traceback" not in log and "out of system resource" not in log
        assert daemon.stop() == 0
    finally:
        for flood in floods:
            flood.proc.kill()
        dom0.delete()
