"""Fixtures shared by the unit tests: the XAPI simulator, in process and served."""
import itertools
import os
import shutil

import pytest
import XenAPI

from agent.xapisim import datamodel as dm
from agent.xapisim import server
from agent.xapisim.engine import Engine
from agent.xapisim.seed import seed

_n = itertools.count()


@pytest.fixture(scope="session")
def model():
    # Package data (agent/xapisim/data): never missing from a checkout or an install.
    return dm.Datamodel.load()


@pytest.fixture
def engine(model):
    engine = Engine(model)
    seed(engine)
    return engine


@pytest.fixture
def served(engine):
    """The engine on 127.0.0.1 and on a Unix socket. XenAPI's UDSTransport turns '_' into
    '/' in the URL's host part, so the socket path must have no '_'."""
    directory = "/tmp/xgwsim-%d-%d" % (os.getpid(), next(_n))
    os.makedirs(directory)
    path = os.path.join(directory, "xapi")
    servers, (host, port) = server.serve(engine, host="127.0.0.1", port=0, unix_path=path)
    yield engine, "http://%s:%d" % (host, port), "http://%s/" % path.replace("/", "_")
    server.shutdown(servers)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def call(engine):
    """call("class.message", *args) on the engine, in a logged-in session; returns xapi's
    reply struct (see tests/unit/xapisim/replies.py for ok() and error())."""
    session = engine.call("session.login_with_password", ["root", ""])["Value"]

    def call(method, *args):
        return engine.call(method, [session] + list(args))
    return call


@pytest.fixture
def xenapi(served):
    """A logged-in XenAPI session's proxy on the served simulator (over HTTP)."""
    _engine, url, _unix = served
    session = XenAPI.Session(url)
    session.xenapi.login_with_password("root", "", "1.0", "xapi-gateway-tests")
    return session.xenapi
