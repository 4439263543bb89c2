"""XAPI through the XenAPI SDK: the networks' records, kept current with event.from.

``NetworkWatcher`` runs in its own thread (every SDK call blocks): it logs in, takes the
networks with ``event.from(["network"], "", 0)``, then follows ``event.from`` and hands
each new picture of the networks to ``on_networks``. When XAPI goes away (a toolstack
restart is normal) it reports ``on_state(False, reason)``, backs off and reconnects,
logging in again; it never gives up and never raises into the daemon.
"""
import logging
import threading

import XenAPI

log = logging.getLogger(__name__)

WAIT = 30.0           # seconds one event.from call may wait for a change
BACKOFF = (0.5, 10.0)  # first and largest pause between reconnection attempts


def open_session(url, username, password):
    """A logged-in XenAPI session for ``unix:PATH`` or an http(s) URL."""
    if url.startswith("unix:"):
        path = url[len("unix:"):]
        if "_" in path:  # XenAPI's UDSTransport turns '_' in the host part into '/'
            raise ValueError("the XAPI socket path %r must not contain '_'" % path)
        session = XenAPI.Session("http://%s/" % path.replace("/", "_"),
                                 transport=XenAPI.UDSTransport())
    else:
        session = XenAPI.Session(url)
    session.xenapi.login_with_password(username, password, "1.0", "xapi-gateway")
    return session


class NetworkWatcher(object):
    def __init__(self, url, username, password, on_networks, on_state, wait=WAIT):
        self.url = url
        self.username = username
        self.password = password
        self.on_networks = on_networks  # callable({ref: record}), in this thread
        self.on_state = on_state        # callable(connected, reason or None)
        self.wait = wait
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
                session = open_session(self.url, self.username, self.password)
                batch = session.xenapi.event_from(["network"], "", 0.0)
                networks = {e["ref"]: e["snapshot"] for e in batch["events"] if "snapshot" in e}
                self.on_state(True, None)
                self.on_networks(dict(networks))
                pause = BACKOFF[0]
                token = batch["token"]
                while not self._stop.is_set():
                    batch = session.xenapi.event_from(["network"], token, self.wait)
                    token = batch["token"]
                    changed = False
                    for event in batch["events"]:
                        if event["operation"] == "del":
                            changed = networks.pop(event["ref"], None) is not None or changed
                        elif "snapshot" in event:
                            networks[event["ref"]] = event["snapshot"]
                            changed = True
                    if changed:
                        self.on_networks(dict(networks))
            except Exception as exc:  # noqa: B902 - socket errors, XenAPI.Failure, xmlrpc
                # ProtocolError/Fault, malformed replies: whatever it was, reconnect
                reason = _describe(exc)
            self.on_state(False, reason)
            log.warning("XAPI at %s unavailable (%s); retrying in %.1f s", self.url, reason,
                        pause)
            self._stop.wait(pause)
            pause = min(pause * 2, BACKOFF[1])


def _describe(exc):
    if isinstance(exc, XenAPI.Failure):
        return "XAPI error %s" % " ".join(str(d) for d in exc.details)
    return "%s: %s" % (type(exc).__name__, exc)
