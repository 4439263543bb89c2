"""XAPI sessions for the API's worker threads.

Every SDK call blocks, so handlers run service operations in a thread pool; each worker
thread keeps its own logged-in session (an xmlrpc proxy is not safe to share between
threads). A transport failure drops that session and answers 503 (XapiUnavailable); the
next request logs in again. XenAPI failures (a refused step) are the service layer's.
"""
import http.client
import socket
import threading
import xmlrpc.client

from agent.adapters.xapi import open_session
from agent.errors import AgentError

TRANSPORT_ERRORS = (OSError, socket.error, http.client.HTTPException,
                    xmlrpc.client.ProtocolError, xmlrpc.client.Fault)


class XapiUnavailable(AgentError):
    """XAPI cannot be reached (503)."""
    code = "xapi_unavailable"


class Sessions(object):
    def __init__(self, url, username, password):
        self.url = url
        self.username = username
        self.password = password
        self._local = threading.local()

    def run(self, operation):
        """``operation(xenapi)`` with this thread's session; XapiUnavailable when XAPI
        cannot be reached (the session is dropped and re-made next time)."""
        if self.url == "none":
            raise XapiUnavailable("this daemon runs without XAPI ([xapi] url = none): "
                                  "networks and VMs are not available")
        session = getattr(self._local, "session", None)
        try:
            if session is None:
                session = open_session(self.url, self.username, self.password)
                self._local.session = session
            return operation(session.xenapi)
        except TRANSPORT_ERRORS as exc:
            self._local.session = None
            raise XapiUnavailable("XAPI at %s is unreachable (%s); retry when it is back "
                                  "(xe-toolstack-restart takes about a minute)"
                                  % (self.url, exc.__class__.__name__), url=self.url)
