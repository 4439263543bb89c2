"""The API served for real (aiohttp on a Unix socket and on TCP with TLS, in a thread of
its own), in front of the simulator served over HTTP; clients speak plain HTTP/1.1.

Every JSON answer a test receives through ``Http`` is checked against the OpenAPI
document: its path, method and status must be documented, and the body must match the
documented schema."""
import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import threading

import pytest

from agent.api import openapi, server
from agent.api.app import Api, State
from agent.api.client import Client
from agent.api.tokens import Token
from agent.api.xapi import Sessions

ADMIN = "a" * 64
READ = "r" * 64


@pytest.fixture(scope="session")
def tls_files():
    directory = tempfile.mkdtemp(prefix="xgw-tls-")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    yield cert, key
    shutil.rmtree(directory, ignore_errors=True)


class FakeState(State):
    def __init__(self):
        self.statuses = [{"name": "private", "bridge": "xapi1", "state": "applied",
                          "address": "172.16.0.1/24", "nat": True, "reason": None,
                          "error": None, "source": "config", "since": 1.0,
                          "since_monotonic": 5.0}]
        self.fail = False

    def gateways(self):
        if self.fail:
            raise RuntimeError("boom: a bug, not a user error")
        return self.statuses

    def xapi(self):
        return {"configured": True, "connected": True, "reason": None}

    def metrics(self):
        return ["# TYPE xgw_gateways gauge", 'xgw_gateways{state="applied"} 1']


class Served(object):
    """An Api running in its own thread and event loop."""

    def __init__(self, api, tls, insecure=False):
        self.api = api
        self.directory = tempfile.mkdtemp(prefix="xgwapi")
        self.socket = os.path.join(self.directory, "api.sock")
        self.loop = asyncio.new_event_loop()
        context = None if insecure else server.tls_context(*tls)
        self.runner = self.loop.run_until_complete(
            server.start(api, self.socket, "127.0.0.1:0", context))
        port = [a for a in self.runner.addresses if isinstance(a, tuple)][0][1]
        self.url = "%s://127.0.0.1:%d" % ("http" if insecure else "https", port)
        self.cafile = tls[0]
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-test")
        self.thread.daemon = True
        self.thread.start()

    def close(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def start(served_sim, tls, state=None, xapi_url=None, insecure=False, max_body=64 * 1024,
          sessions=None):
    _engine, url, _unix = served_sim
    sessions = sessions or Sessions(xapi_url or url, "root", "")
    api = Api(sessions, tokens=[Token("admin", ADMIN.encode(), "admin"),
                                Token("read", READ.encode(), "reader")],
              state=state or FakeState(), insecure=insecure, max_body=max_body,
              body_timeout=2.0)
    return Served(api, tls, insecure=insecure)


@pytest.fixture
def api(served, tls_files):
    s = start(served, tls_files)
    yield s
    s.close()


class Http(object):
    """Requests whose status and body are checked against the OpenAPI document."""

    def __init__(self, client):
        self.client = client

    def __call__(self, method, path, body=None):
        status, data = self.client.call(method, path, body)
        check_response(method, path, status, data)
        return status, data


def operation(method, path):
    route = path.split("?")[0]
    for template, ops in openapi.PATHS.items():
        if re.match("^%s$" % re.sub(r"\{[^}]+\}", "[^/]+", template), route):
            if method.lower() in ops:
                return ops[method.lower()]
    raise AssertionError("%s %s is not in the OpenAPI document" % (method, path))


def check_response(method, path, status, data):
    op = operation(method, path)
    documented = str(status) if str(status) in op["responses"] else "default"
    assert documented != "default" or status >= 500 or status in (404, 405), \
        "%s %s answered %s, not documented" % (method, path, status)
    content = op["responses"][documented].get("content", {})
    if "application/json" in content and data is not None:
        openapi.validate(content["application/json"]["schema"], data, "response")


@pytest.fixture
def unix(api):
    return Http(Client(socket_path=api.socket))


@pytest.fixture
def admin(api):
    return Http(Client(url=api.url, token=ADMIN, cafile=api.cafile))


@pytest.fixture
def reader(api):
    return Http(Client(url=api.url, token=READ, cafile=api.cafile))


@pytest.fixture
def anonymous(api):
    return Http(Client(url=api.url, cafile=api.cafile))


@pytest.fixture
def xgw(api, tmp_path, capsys):
    """xgw's main() with a config pointing at the served API's socket: run(*argv) ->
    (exit code, stdout, stderr)."""
    from agent import cli
    conf = tmp_path / "agent.conf"
    conf.write_text("[xapi]\nurl = none\n[api]\nsocket = %s\n" % api.socket)

    def run(*argv):
        code = cli.main(["-c", str(conf)] + list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return run
