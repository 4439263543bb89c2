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
from agent.service.errors import XapiCallFailed, XapiTimeout, XapiUnavailable

TRANSPORT_ERRORS = (OSError, socket.error, http.client.HTTPException)
# XAPI answered, but not with a XenAPI reply: HTTP 500 for a request it could not parse
PROTOCOL_ERRORS = (xmlrpc.client.ProtocolError, xmlrpc.client.Fault,
                   xmlrpc.client.ResponseError)


__all__ = ["Sessions", "XapiUnavailable", "XapiTimeout"]


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
        except PROTOCOL_ERRORS as exc:
            raise XapiCallFailed("XAPI rejected a request at the protocol level (%s)"
                                 % exc.__class__.__name__,
                                 step="call XAPI", xapi_code=None, xapi_params=[])
        except TRANSPORT_ERRORS as exc:
            self._local.session = None
            raise XapiUnavailable("XAPI at %s is unreachable (%s); retry when it is back "
                                  "(xe-toolstack-restart takes about a minute)"
                                  % (self.url, exc.__class__.__name__), url=self.url)
