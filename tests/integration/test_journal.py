"""Logs as journald receives them: structured fields (BRIDGE=, GATEWAY=, NETWORK=,
OPERATION=) through systemd-python under systemd, "LEVEL logger: message" on stderr when
systemd-python cannot be imported.

The daemon runs for real in a network namespace and, through helpers/journal_ns.py, in a
private mount namespace with a tmpfs over /run/systemd (there only), where the test's own
datagram socket is bound at journal/socket: what sd_journal_sendv sends comes to the test
in journald's native protocol, and nothing reaches the host's journal or its /run.
"""
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import uuid

import pytest

from tests.integration import netns as N
from tests.integration import test_xapi
from tests.integration.test_xapi import sdk

HELPER = os.path.join(N.HELPERS, "journal_ns.py")
GW = {"private": {"bridge": "xapi1", "address": "172.16.1.1/24"}}
xapi = test_xapi.xapi   # the XAPI simulator fixture, on a Unix socket
# PRIORITY= (syslog levels) of the Python levels the daemon logs at
PRIORITIES = {"3": "ERROR", "4": "WARNING", "6": "INFO", "7": "DEBUG"}


def _skip_reason():
    try:
        from systemd import journal
    except ImportError as exc:
        return "systemd-python is not installed in this Python (%s)" % exc
    if not hasattr(journal, "JournalHandler"):
        return "systemd.journal has no JournalHandler"
    missing = [tool for tool in ("unshare", "mount") if shutil.which(tool) is None]
    if missing:
        return "the journal tests need %s" % ", ".join(missing)
    return None


SKIP = _skip_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=str(SKIP))


def parse_native(data):
    """The fields of one datagram of journald's native protocol: ``KEY=value\\n``, or for
    a value with a newline ``KEY\\n``, its length (uint64, little-endian), the value and
    ``\\n``. A field sent twice keeps its first value."""
    fields = {}
    i = 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            i = end + 1
        else:
            key = line
            (size,) = struct.unpack_from("<Q", data, end + 1)
            start = end + 1 + 8
            value = data[start:start + size]
            assert data[start + size:start + size + 1] == b"\n", "bad binary field %r" % key
            i = start + size + 1
        fields.setdefault(key.decode("ascii"), value.decode("utf-8", "replace"))
    return fields


class Journal(object):
    """The test's end of /run/systemd/journal/socket: an unbound datagram socket that
    journal_ns.py binds in the daemon's mount namespace. A thread reads it for as long as
    the daemon runs (a full queue would block the daemon's logging)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.settimeout(0.2)
        self._entries = []
        self._lock = threading.Lock()
        self._closing = False
        self._reader = threading.Thread(target=self._read)
        self._reader.daemon = True
        self._reader.start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                if self._closing:
                    return
                continue
            except OSError:
                return
            try:
                entry = parse_native(data)
            except (ValueError, AssertionError, struct.error) as exc:
                entry = {"PARSE_ERROR": "%s in %r" % (exc, data[:300])}
            with self._lock:
                self._entries.append(entry)

    def entries(self, **match):
        """The entries received so far whose fields equal ``match``."""
        with self._lock:
            entries = list(self._entries)
        return [e for e in entries if all(e.get(k) == v for k, v in match.items())]

    def close(self):
        self._closing = True   # read what is queued, then stop
        self._reader.join(5)
        self.sock.close()


class JournalNamespace(object):
    """Stands in for the Netns given to the ``daemons`` fixture: the daemon runs in that
    network namespace as Netns.popen runs it (ip netns exec), but through journal_ns.py,
    in a private mount namespace whose /run/systemd/journal/socket is ``journal``'s."""

    def __init__(self, ns, journal):
        self.ns = ns
        self.journal = journal

    def popen(self, cmd, **kw):
        fd = self.journal.sock.fileno()
        return subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                 sys.executable, HELPER, str(fd), self.ns.name] + list(cmd),
                                pass_fds=(fd,), **kw)


@pytest.fixture
def journal():
    sink = Journal()
    yield sink
    sink.close()


def under_systemd(**env):
    """The environment systemd gives a service: INVOCATION_ID makes logs.setup pick the
    journal (JOURNAL_STREAM is only set when stdout/stderr go to the journal)."""
    env["INVOCATION_ID"] = uuid.uuid4().hex
    return env


def run_gateway(ns, daemon):
    """The bridge appears (a VM starts): the daemon makes it a gateway."""
    ns.run(["ip", "link", "add", "xapi1", "type", "bridge"])
    ns.run(["ip", "link", "set", "xapi1", "up"])
    N.wait_for(lambda: (daemon.gateway_state("private") or {}).get("state") == "applied",
               message="gateway applied")


# journal_ns.py's tmpfs, in /proc/PID/mountinfo
OUR_TMPFS = re.compile(r"^\S+ \S+ \S+ / /run(/systemd)? .* - tmpfs xgwt-(journal|run) ", re.M)


def our_tmpfs(pid="self"):
    with open("/proc/%s/mountinfo" % pid) as f:
        return OUR_TMPFS.search(f.read())


def test_journal_gets_structured_fields(journal, workdir, daemons):
    ns = N.Netns("jrnl")
    try:
        daemon = daemons(JournalNamespace(ns, journal), workdir, GW, env=under_systemd())
        # the daemon's /run/systemd is the tmpfs of its private mount namespace...
        assert our_tmpfs(daemon.proc.pid)
        assert not our_tmpfs()   # ...and not the host's
        N.wait_for(lambda: journal.entries(OPERATION="state", GATEWAY="private"),
                   message="the gateway's state in the journal")
        run_gateway(ns, daemon)
        N.wait_for(lambda: journal.entries(OPERATION="state", MESSAGE="gateway private on "
                                           "xapi1: applied"), message="'applied' in the journal")
        assert daemon.stop() == 0
    finally:
        ns.delete()

    entries = journal.entries()
    assert entries, "no datagram reached the journal socket"
    for entry in entries:
        assert entry["SYSLOG_IDENTIFIER"] == "xapi-gateway", entry
        assert entry["PRIORITY"] in PRIORITIES, entry
        assert entry["MESSAGE"], entry
    states = journal.entries(OPERATION="state", GATEWAY="private")
    assert len(states) >= 2, entries
    absent, applied = states[0], states[-1]   # "down" between them if a round saw it so
    assert applied["MESSAGE"] == "gateway private on xapi1: applied"
    assert absent["MESSAGE"] == ("gateway private on xapi1: absent "
                                 "(bridge xapi1 does not exist yet)")
    assert (absent["BRIDGE"], absent["PRIORITY"]) == ("xapi1", "6")
    assert (applied["BRIDGE"], applied["PRIORITY"]) == ("xapi1", "6")
    adds = journal.entries(OPERATION="AddAddress")
    assert len(adds) == 1, entries
    add = adds[0]
    assert add["MESSAGE"] == "AddAddress 172.16.1.1/24 on xapi1"
    assert (add["BRIDGE"], add["PRIORITY"], add["LOGGER"]) == (
        "xapi1", "6", "agent.daemon.reconciler")
    # a gateway from the config file has no XAPI network
    assert not any("NETWORK" in e for e in entries)
    assert journal.entries(MESSAGE="enabled IPv4 forwarding", OPERATION="ip_forward")
    # all of it went to the journal, none to stderr
    assert "AddAddress" not in daemon.log()


def test_journal_names_the_xapi_network(journal, xapi, workdir, daemons):
    api = sdk(xapi["path"])
    net = api.network.create({"name_label": "private", "other_config": {
        "xapi-gateway.address": "172.16.1.1/24"}})
    network, bridge = api.network.get_uuid(net), api.network.get_bridge(net)
    # a label with a newline: sd_journal_sendv sends the message in the binary form
    bad = api.network.create({"name_label": "broken\nlab", "other_config": {
        "xapi-gateway.address": "172.16.9.0/24"}})
    bad_network, bad_bridge = api.network.get_uuid(bad), api.network.get_bridge(bad)
    ns = N.Netns("jrnx")
    try:
        daemon = daemons(JournalNamespace(ns, journal), workdir, {}, env=under_systemd(),
                         xapi_url="unix:" + xapi["path"])
        ns.run(["ip", "link", "add", bridge, "type", "bridge"])
        ns.run(["ip", "link", "set", bridge, "up"])
        N.wait_for(lambda: journal.entries(OPERATION="state", GATEWAY="private",
                                           MESSAGE="gateway private on %s: applied" % bridge),
                   message="'applied' in the journal")
        N.wait_for(lambda: journal.entries(OPERATION="state", NETWORK=bad_network),
                   message="the invalid network in the journal")
        assert daemon.stop() == 0
    finally:
        ns.delete()

    adds = journal.entries(OPERATION="AddAddress")
    assert len(adds) == 1, journal.entries()
    add = adds[0]
    assert (add["BRIDGE"], add["NETWORK"]) == (bridge, network)
    states = journal.entries(OPERATION="state", GATEWAY="private")
    assert states and all((e["BRIDGE"], e["NETWORK"]) == (bridge, network) for e in states)
    [invalid] = journal.entries(OPERATION="state", NETWORK=bad_network)
    assert invalid["GATEWAY"] == "network-" + bad_network[:8]
    assert (invalid["BRIDGE"], invalid["PRIORITY"]) == (bad_bridge, "3")
    assert invalid["MESSAGE"].startswith("not applied: network broken\nlab (%s): "
                                         % bad_network), invalid
    assert "host bits all zero" in invalid["MESSAGE"]


def test_without_systemd_python_lines_go_to_stderr(journal, workdir, daemons):
    stub = os.path.join(workdir, "no-systemd", "systemd")
    os.makedirs(stub)
    with open(os.path.join(stub, "__init__.py"), "w") as f:
        f.write('raise ImportError("systemd-python hidden by test_journal")\n')
    env = under_systemd(PYTHONPATH=os.path.dirname(stub) + os.pathsep + N.REPO)
    ns = N.Netns("jrnf")
    try:
        daemon = daemons(JournalNamespace(ns, journal), workdir, GW, env=env)
        run_gateway(ns, daemon)
        assert daemon.stop() == 0
    finally:
        ns.delete()

    journal.close()   # drained: the socket was there, and the daemon did not use it
    assert journal.entries() == []
    with open(daemon.log_path) as f:   # all of it (daemon.log() keeps the end)
        lines = f.read().splitlines()
    assert "INFO agent.daemon.reconciler: AddAddress 172.16.1.1/24 on xapi1" in lines
    assert "INFO agent.daemon.reconciler: gateway private on xapi1: applied" in lines
    # systemd's journal stamps the time itself: no timestamps, only "LEVEL logger: message"
    line_re = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: \S")
    assert lines and all(line_re.match(line) for line in lines), lines
