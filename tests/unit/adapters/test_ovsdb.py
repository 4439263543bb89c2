"""agent.adapters.ovsdb: the host's network backend from network.conf, and the OVSDB probe
when nothing answers properly (the real OVSDB's answer, and the daemon's connection, are
in the integration tests: test_ovsdb_links.py)."""
import json
import os
import socket
import threading
import time

import pytest

from agent.adapters import ovsdb
from agent.errors import OvsdbUnavailable


@pytest.mark.parametrize("text, backend", [
    (None, "openvswitch"),            # no file: XAPI's default
    ("openvswitch\n", "openvswitch"),
    ("vswitch\n", "openvswitch"),     # the older name
    ("bridge\n", "bridge"),
    ("  Bridge \n", "bridge"),
    ("", "openvswitch"),
    ("bridges\n", "openvswitch"),     # unknown: the default
    ("linux-bridge\n", "openvswitch"),
])
def test_backend_as_dom0_reads_network_conf(text, backend):
    assert ovsdb.backend_of(text) == backend


def test_network_backend_reads_the_file(tmp_path):
    path = str(tmp_path / "network.conf")
    assert ovsdb.network_backend(path) == ("openvswitch", None)
    with open(path, "w") as f:
        f.write("bridge\n")
    assert ovsdb.network_backend(path) == ("bridge", "bridge")
    with open(path, "w") as f:
        f.write("\n")
    assert ovsdb.network_backend(path) == ("openvswitch", "")


def test_no_socket_is_unavailable(tmp_path):
    remote = "unix:%s" % (tmp_path / "db.sock")
    with pytest.raises(OvsdbUnavailable) as err:
        ovsdb.list_dbs(remote, timeout=0.5)
    assert "OVSDB at %s does not answer" % remote in str(err.value)
    assert err.value.code == "ovsdb_unavailable"


def _server(path, reply):
    """A Unix socket that reads one request and answers ``reply(request id)`` (bytes) or,
    when ``reply`` is None, nothing until the client gives up."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        request = json.JSONDecoder().raw_decode(conn.recv(4096).decode())[0]
        if reply is not None:
            answer = reply(request["id"])
            for i in range(0, len(answer), 7):  # in pieces, as a stream may deliver it
                conn.sendall(answer[i:i + 7])
            time.sleep(0.5)
            conn.close()
        else:
            conn.recv(4096)  # until the client closes
            conn.close()
        srv.close()

    thread = threading.Thread(target=serve)
    thread.daemon = True
    thread.start()
    return thread


def _json(**kw):
    return lambda id_: json.dumps(dict(kw, id=id_)).encode()


@pytest.mark.parametrize("reply, fragment", [
    (None, "does not answer"),
    (_json(result=None, error="unknown method"), "answered list_dbs with an error"),
    (lambda id_: json.dumps({"id": "other", "result": [], "error": None}).encode(),
     "does not answer"),
    (_json(result={"not": "a list"}, error=None), "answered list_dbs with {"),
    (lambda id_: b'{"id": 0, "res', "does not answer"),
])
def test_a_socket_that_answers_wrongly_is_unavailable(tmp_path, reply, fragment):
    path = str(tmp_path / "db.sock")
    thread = _server(path, reply)
    with pytest.raises(OvsdbUnavailable) as err:
        ovsdb.list_dbs("unix:" + path, timeout=0.3)
    assert fragment in str(err.value)
    thread.join(2)


def test_an_answer_in_pieces_is_read_whole(tmp_path):
    path = str(tmp_path / "db.sock")
    thread = _server(path, _json(result=["Open_vSwitch", "_Server"], error=None))
    assert ovsdb.list_dbs("unix:" + path) == ["Open_vSwitch", "_Server"]
    thread.join(2)
