"""A small synchronous client of the API, for ``xgw`` and scripts: the local Unix socket
by default, or an https:// (http://) URL with a bearer token."""
import http.client
import json
import socket
import ssl
from urllib.parse import urlsplit

from agent.errors import AgentError


class ApiError(AgentError):
    """The API answered with its error body (``status``, ``code``, ``details``), or could
    not be reached (status 0)."""
    code = "api_error"

    def __init__(self, message, status=0, code=None, **details):
        super(ApiError, self).__init__(message, **details)
        self.status = status
        if code:
            self.code = code


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


class Client(object):
    def __init__(self, socket_path=None, url=None, token=None, cafile=None, timeout=600.0):
        self.socket_path = socket_path
        self.url = url
        self.token = token
        self.cafile = cafile
        self.timeout = timeout

    def where(self):
        return self.url or "unix:%s" % self.socket_path

    def _connection(self):
        if not self.url:
            return _UnixConnection(self.socket_path, self.timeout), ""
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection(parts.hostname, parts.port or 443,
                                               timeout=self.timeout,
                                               context=context), parts.path.rstrip("/")
        if parts.scheme == "http":
            return http.client.HTTPConnection(parts.hostname, parts.port or 80,
                                              timeout=self.timeout), parts.path.rstrip("/")
        raise ApiError("--url %s: use https://HOST:PORT (or http:// for an insecure lab)"
                       % self.url)

    def call(self, method, path, body=None):
        """(HTTP status, decoded answer: JSON, text, or None when empty); ApiError only
        when the API cannot be reached."""
        connection, prefix = self._connection()
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer %s" % self.token
        try:
            connection.request(method, prefix + path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError("cannot reach the xapi-gateway API at %s: %s; is the daemon "
                           "running (systemctl status xapi-gateway)?" % (self.where(), exc))
        finally:
            connection.close()
        payload = None
        if raw and response.getheader("Content-Type", "").startswith("application/json"):
            try:
                payload = json.loads(raw.decode("utf-8"))
            except ValueError:
                payload = raw.decode("utf-8", "replace")
        elif raw:
            payload = raw.decode("utf-8", "replace")
        return response.status, payload

    def stream(self, method, path, body=None, progress=None):
        """Like request(), asking for NDJSON progress: ``progress(sentence)`` is called for
        each step as the API reports it; returns the result or raises ApiError."""
        connection, prefix = self._connection()
        headers = {"Accept": "application/x-ndjson", "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer %s" % self.token
        final = None
        try:
            connection.request(method, prefix + path, body=json.dumps(body).encode("utf-8"),
                               headers=headers)
            response = connection.getresponse()
            if not response.getheader("Content-Type", "").startswith("application/x-ndjson"):
                raw = response.read()
                payload = json.loads(raw.decode("utf-8")) if raw else None
                final = {"status": response.status}
                final["result" if response.status < 300 else "error"] = (
                    payload.get("error", {}) if response.status >= 300 and
                    isinstance(payload, dict) else payload)
            else:
                for raw in response:
                    line = json.loads(raw.decode("utf-8"))
                    if "progress" in line:
                        if progress is not None:
                            progress(line["progress"])
                    else:
                        final = line
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise ApiError("lost the xapi-gateway API at %s: %s" % (self.where(), exc))
        finally:
            connection.close()
        if final is None:
            raise ApiError("the API at %s ended its answer without a result" % self.where())
        if final["status"] < 300:
            return final.get("result")
        error = final.get("error") or {}
        raise ApiError(error.get("message") or "HTTP %d" % final["status"],
                       status=final["status"], code=error.get("code"),
                       **(error.get("details") or {}))

    def request(self, method, path, body=None):
        """The decoded answer of a 2xx; ApiError (with the API's code, message and
        details) otherwise."""
        status, payload = self.call(method, path, body)
        if 200 <= status < 300:
            return payload
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        if not isinstance(error, dict):
            error = {}
        raise ApiError(error.get("message") or "HTTP %d from %s" % (status, self.where()),
                       status=status, code=error.get("code"),
                       **(error.get("details") or {}))
