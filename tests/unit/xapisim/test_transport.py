"""The simulator's transports when a client goes away: a connection reset between two
calls, or in the middle of one, is no error (xapi logs none); the server serves on."""
import socket
import struct
import time

import XenAPI


def _reset(sock):
    """Close ``sock`` with a reset (RST), as a killed client's kernel does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_client_that_resets_its_connection_is_no_error(served, capfd):
    _engine, url, _unix = served
    port = int(url.rsplit(":", 1)[1].rstrip("/"))
    # a keep-alive connection whose client resets it between two calls
    idle = socket.create_connection(("127.0.0.1", port))
    time.sleep(0.1)   # the server's handler is reading the next request line
    _reset(idle)
    # and one reset with a request half sent
    half = socket.create_connection(("127.0.0.1", port))
    half.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n<?xml")
    time.sleep(0.1)
    _reset(half)
    time.sleep(0.2)
    # the server serves on
    session = XenAPI.Session(url)
    session.xenapi.login_with_password("root", "", "1.0", "test")
    assert session.xenapi.network.get_all()
    session.xenapi.session.logout()
    _out, err = capfd.readouterr()
    assert "Traceback" not in err and "Exception occurred" not in err, err
