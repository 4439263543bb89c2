"""XAPI sessions for the API's worker threads.

Every SDK call blocks, so handlers run service operations in a thread pool; each worker
thread keeps its own logged-in session (an xmlrpc proxy is not safe to share between
threads). Every call has a timeout ([xapi] timeout, long_timeout for calls that wait for a
guest or storage): a hung XAPI answers 503 xapi_timeout within seconds, and /v1/health
shows it stalled until a call is answered again. A transport failure drops that session
and answers 503 (XapiUnavailable); the next request logs in again. Before an operation,
what a creation cut short by a lost XAPI left behind is swept (agent.service.steps).
XenAPI failures (a refused step) are the service layer's.
"""
import logging
import socket
import threading
import time

from agent.service.errors import XapiCallFailed, XapiTimeout, XapiUnavailable

__all__ = ["Sessions", "XapiUnavailable", "XapiTimeout"]

log = logging.getLogger(__name__)


class Sessions(object):
    """The XenAPI SDK, its XML-RPC and the service layer's steps are imported by the
    first call (~1.5 MB resident that a daemon without XAPI, or never asked about
    networks and VMs, does without)."""

    def __init__(self, url, username, password, timeout=None, long_timeout=None):
        if timeout is None or long_timeout is None:
            from agent.adapters.xapi import LONG_TIMEOUT, TIMEOUT
            timeout = TIMEOUT if timeout is None else timeout
            long_timeout = LONG_TIMEOUT if long_timeout is None else long_timeout
        self.url = url
        self.username = username
        self.password = password
        self.timeout = timeout
        self.long_timeout = long_timeout
        self._local = threading.local()
        self._stalled = None  # why the last call went unanswered, until one is answered

    def stalled(self):
        """None, or a sentence: XAPI left the last call unanswered (and none since)."""
        return self._stalled

    def run(self, operation):
        """``operation(xenapi)`` with this thread's session; XapiUnavailable when XAPI
        cannot be reached (the session is dropped and re-made next time), XapiTimeout
        when it does not answer in time."""
        if self.url == "none":
            raise XapiUnavailable("this daemon runs without XAPI ([xapi] url = none): "
                                  "networks and VMs are not available")
        import http.client
        import xmlrpc.client

        from agent.adapters.xapi import open_session
        from agent.service import steps
        transport_errors = (OSError, socket.error, http.client.HTTPException)
        # XAPI answered, but not with a XenAPI reply: HTTP 500 for a request it could not
        # parse
        protocol_errors = (xmlrpc.client.ProtocolError, xmlrpc.client.Fault,
                           xmlrpc.client.ResponseError)
        try:
            session = getattr(self._local, "session", None)
            if session is None:
                session = open_session(self.url, self.username, self.password,
                                       timeout=self.timeout, long_timeout=self.long_timeout)
                self._local.session = session
            if steps.sweep_pending():
                steps.sweep(session.xenapi)
            result = operation(session.xenapi)
        except XapiTimeout as exc:
            self._lost(exc)
            raise
        except XapiUnavailable:
            self._local.session = None
            raise
        except protocol_errors as exc:
            raise XapiCallFailed("XAPI rejected a request at the protocol level (%s)"
                                 % exc.__class__.__name__,
                                 step="call XAPI", xapi_code=None, xapi_params=[])
        except socket.timeout:
            error = XapiTimeout("XAPI at %s did not answer within %g s: it is hung or "
                                "overloaded; retry when it answers ([xapi] timeout)"
                                % (self.url, self.timeout), url=self.url,
                                timeout=self.timeout)
            self._lost(error)
            raise error
        except transport_errors as exc:
            self._local.session = None
            raise XapiUnavailable("XAPI at %s is unreachable (%s); retry when it is back "
                                  "(xe-toolstack-restart takes about a minute)"
                                  % (self.url, exc.__class__.__name__), url=self.url)
        except Exception:
            self._stalled = None  # XAPI answered; the operation refused or failed
            raise
        self._stalled = None
        return result

    def _lost(self, error):
        self._local.session = None
        if self._stalled is None:
            log.warning("XAPI stalled: %s", error)
        self._stalled = "%s (since %s)" % (error, time.strftime("%H:%M:%S"))
