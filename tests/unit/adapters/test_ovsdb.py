"""agent.adapters.ovsdb: the host's network backend from network.conf, and the OVSDB probe
when nothing answers properly (the real OVSDB's answer is in the integration tests)."""
import os
import socket
import threading

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
    """A Unix socket that reads one request and answers ``reply`` (bytes) or, when None,
    nothing until the client gives up."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        conn.recv(4096)
        if reply is not None:
            for i in range(0, len(reply), 7):  # in pieces, as a stream may deliver it
                conn.sendall(reply[i:i + 7])
            conn.close()
        else:
            conn.recv(4096)  # until the client closes
            conn.close()
        srv.close()

    thread = threading.Thread(target=serve)
    thread.daemon = True
    thread.start()
    return thread


@pytest.mark.parametrize("reply, fragment", [
    (None, "does not answer: timed out"),
    (b'{"id": 0, "result": null, "error": "unknown method"}', "answered list_dbs"),
    (b'{"id": 7, "result": ["Open_vSwitch"], "error": null}', "answered list_dbs"),
    (b'[1, 2]', "answered list_dbs"),
    (b'{"id": 0, "res', "connection closed"),
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
    thread = _server(path, b'{"id":0,"result":["Open_vSwitch","_Server"],"error":null}')
    assert ovsdb.list_dbs("unix:" + path) == ["Open_vSwitch", "_Server"]
    thread.join(2)
