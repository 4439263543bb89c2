"""XAPI through the XenAPI SDK: the networks' records, kept current with event.from.

``NetworkWatcher`` runs in its own thread (every SDK call blocks): it logs in, takes the
networks with ``event.from(["network"], "", 0)``, then follows ``event.from`` and hands
each new picture of the networks to ``on_networks``. When XAPI goes away (a toolstack
restart is normal) it reports ``on_state(False, reason)``, backs off and reconnects,
logging in again; it never gives up and never raises into the daemon.
"""
import logging
import re
import socket
import threading
import xmlrpc.client

import XenAPI

log = logging.getLogger(__name__)

WAIT = 30.0           # seconds one event.from call may wait for a change
BACKOFF = (0.5, 10.0)  # first and largest pause between reconnection attempts
TIMEOUT = 10.0        # seconds XAPI may take to answer a call ([xapi] timeout)
LONG_TIMEOUT = 600.0  # ... a call in LONG_CALLS ([xapi] long_timeout)
# Calls that wait for a guest, a disk or a device: they take longer than the rest
LONG_CALLS = frozenset([
    "VM.start", "VM.start_on", "VM.clean_shutdown", "VM.hard_shutdown", "VM.shutdown",
    "VM.clean_reboot", "VM.hard_reboot", "VM.suspend", "VM.resume", "VM.clone", "VM.copy",
    "VM.provision", "VM.destroy", "VDI.create", "VDI.destroy", "VBD.plug", "VBD.unplug",
    "VIF.plug", "VIF.unplug", "pool.create_VLAN_from_PIF", "VLAN.destroy", "PIF.plug",
    "PIF.unplug"])
_METHOD = re.compile(rb"<methodName>([^<]{1,100})</methodName>")


def open_session(url, username, password, timeout=None, long_timeout=None):
    """A logged-in XenAPI session for ``unix:PATH`` or an http(s) URL. With ``timeout``,
    a call that gets no answer within that many seconds (``long_timeout`` for LONG_CALLS)
    raises socket.timeout."""
    timeouts = (timeout, long_timeout or timeout)
    if url.startswith("unix:"):
        path = url[len("unix:"):]
        if "_" in path:  # XenAPI's UDSTransport turns '_' in the host part into '/'
            raise ValueError("the XAPI socket path %r must not contain '_'" % path)
        session = XenAPI.Session("http://%s/" % path.replace("/", "_"),
                                 transport=_timed(XenAPI.UDSTransport, timeouts))
    elif url.startswith("https:"):
        session = XenAPI.Session(url, transport=_timed(xmlrpc.client.SafeTransport, timeouts))
    else:
        session = XenAPI.Session(url, transport=_timed(xmlrpc.client.Transport, timeouts))
    session.xenapi.login_with_password(username, password, "1.0", "xapi-gateway")
    return session


class _UnixConnection(XenAPI.UDSHTTPConnection):
    """XenAPI's HTTP over a Unix socket, with the socket's timeout set before connecting."""

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.host.replace("_", "/"))
        self.sock = sock


def _timed(base, timeouts):
    """An instance of the xmlrpc transport class ``base`` whose calls time out."""
    class Timed(base):
        _call_timeout = None

        def request(self, host, handler, request_body, verbose=False):
            method = _METHOD.search(request_body[:512])
            name = method.group(1).decode("ascii", "replace") if method else ""
            self._call_timeout = timeouts[1] if name in LONG_CALLS else timeouts[0]
            return base.request(self, host, handler, request_body, verbose)

        def make_connection(self, host):
            conn = base.make_connection(self, host)
            if isinstance(conn, XenAPI.UDSHTTPConnection) and \
                    not isinstance(conn, _UnixConnection):
                conn = _UnixConnection(host)
                self._connection = host, conn
            conn.timeout = self._call_timeout
            if conn.sock is not None:
                conn.sock.settimeout(self._call_timeout)
            return conn
    return Timed()


POOL_CLASSES = ("network", "host", "host_metrics", "pif", "tunnel")


def read_inventory_uuid(path):
    """INSTALLATION_UUID from Dom0's inventory (/etc/xensource-inventory: KEY='value'
    lines): this host's uuid in the pool. None when the file or the key is missing."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "INSTALLATION_UUID":
                    return value.strip().strip("'\"") or None
    except (IOError, OSError, UnicodeDecodeError) as exc:
        log.info("no host uuid from %s: %s", path, exc)
    return None


class NetworkWatcher(object):
    """``on_networks({ref: network record})`` after each change of the networks;
    ``on_pool({class: {ref: record}})`` (when given) after each change of the records
    placement reads: POOL_CLASSES, followed through the same event.from."""

    def __init__(self, url, username, password, on_networks, on_state, wait=WAIT,
                 timeout=TIMEOUT, on_pool=None):
        self.url = url
        self.username = username
        self.password = password
        self.on_networks = on_networks  # callable({ref: record}), in this thread
        self.on_pool = on_pool
        self.on_state = on_state        # callable(connected, reason or None)
        self.wait = wait
        self.timeout = timeout  # beyond ``wait``: a hung XAPI counts as disconnected
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xapi-watch")
        self._thread.daemon = True

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()

    def is_alive(self):
        return self._thread.is_alive()

    def _run(self):
        pause = BACKOFF[0]
        while not self._stop.is_set():
            session = None
            try:
                session = open_session(self.url, self.username, self.password,
                                       timeout=self.wait + self.timeout)
                classes = list(POOL_CLASSES) if self.on_pool else ["network"]
                records = dict((c, {}) for c in classes)
                batch = session.xenapi.event_from(classes, "", 0.0)
                self._take(records, batch["events"])
                self.on_state(True, None)
                self._hand(records, set(classes))
                pause = BACKOFF[0]
                token = batch["token"]
                while not self._stop.is_set():
                    batch = session.xenapi.event_from(classes, token, self.wait)
                    token = batch["token"]
                    self._hand(records, self._take(records, batch["events"]))
            except Exception as exc:  # noqa: B902 - socket errors, XenAPI.Failure, xmlrpc
                # ProtocolError/Fault, malformed replies: whatever it was, reconnect
                reason = describe(exc)
            self.on_state(False, reason)
            log.warning("XAPI at %s unavailable (%s); retrying in %.1f s", self.url, reason,
                        pause)
            self._stop.wait(pause)
            pause = min(pause * 2, BACKOFF[1])


    @staticmethod
    def _take(records, events):
        """Fold ``events`` into ``records``; returns the classes that changed."""
        changed = set()
        for event in events:
            kind = records.get(event.get("class", "").lower())
            if kind is None:
                continue
            if event["operation"] == "del":
                if kind.pop(event["ref"], None) is not None:
                    changed.add(event["class"].lower())
            elif "snapshot" in event:
                kind[event["ref"]] = event["snapshot"]
                changed.add(event["class"].lower())
        return changed

    def _hand(self, records, changed):
        if "network" in changed:
            self.on_networks(dict(records["network"]))
        if self.on_pool and changed:
            self.on_pool(dict((c, dict(r)) for c, r in records.items()))


def describe(exc):
    """An SDK exception in words: a XAPI error with its details, or the exception."""
    if isinstance(exc, XenAPI.Failure):
        return "XAPI error %s" % " ".join(str(d) for d in exc.details)
    return "%s: %s" % (type(exc).__name__, exc)


def write_claim(session, network_uuid, old, new):
    """Replace the network's claim ``old`` ('' none) by ``new``: remove it if it is still
    ``old`` as read now, then add ``new`` with add_to_other_config, which the master
    refuses (MAP_DUPLICATE_KEY) when another host added one in between. Returns (won,
    value now): won is False when the claim was no longer ``old`` or the add lost."""
    from agent.core.claims import CLAIM
    x = session.xenapi
    ref = x.network.get_by_uuid(network_uuid)
    current = x.network.get_other_config(ref).get(CLAIM, "")
    if current != old:
        return False, current
    if old:
        x.network.remove_from_other_config(ref, CLAIM)
    if not new:
        return True, ""
    try:
        x.network.add_to_other_config(ref, CLAIM, new)
    except XenAPI.Failure as exc:
        if exc.details and exc.details[0] == "MAP_DUPLICATE_KEY":
            return False, x.network.get_other_config(ref).get(CLAIM, "")
        raise
    return True, new
