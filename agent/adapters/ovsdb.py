"""Open vSwitch as the daemon sees it: which network backend the host runs, and whether
OVSDB answers.

Dom0 picks its backend in /etc/xensource/network.conf: ``openvswitch`` (or ``vswitch``)
is Open vSwitch, ``bridge`` is Linux bridges; a missing file or any other value is Open
vSwitch, XAPI's default (xcp-networkd reads it the same way).

The OVSDB check is one JSON-RPC ``list_dbs`` call (RFC 7047, 4.1.1) over the Unix socket,
with the standard library: the daemon writes nothing to OVSDB yet, so it takes no library
for it (the ``ovs`` package's IDL comes with the first thing it writes there).
"""
import json
import socket

from agent.errors import OvsdbUnavailable

OPENVSWITCH, BRIDGE = "openvswitch", "bridge"


def backend_of(text):
    """The backend named by network.conf's text (None: no file)."""
    value = (text or "").strip().lower()
    return BRIDGE if value == BRIDGE else OPENVSWITCH


def network_backend(path):
    """(backend, what network.conf at ``path`` says: its first word, or None when it cannot be read)."""
    try:
        with open(path) as f:
            text = f.read()
    except (IOError, OSError):
        return backend_of(None), None
    words = text.split()
    return backend_of(text), (words[0] if words else "")


def list_dbs(remote, timeout=2.0):
    """The database names OVSDB at ``remote`` (``unix:/PATH``) serves; OvsdbUnavailable
    when it does not answer within ``timeout`` seconds or answers something else."""
    path = remote[len("unix:"):] if remote.startswith("unix:") else remote
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(json.dumps({"method": "list_dbs", "params": [], "id": 0}).encode())
        reply = _read_reply(sock)
    except (OSError, ValueError) as exc:
        raise OvsdbUnavailable("OVSDB at %s does not answer: %s" % (remote, exc),
                               remote=remote)
    finally:
        sock.close()
    if not (isinstance(reply, dict) and reply.get("id") == 0 and reply.get("error") is None
            and isinstance(reply.get("result"), list)):
        raise OvsdbUnavailable("OVSDB at %s answered list_dbs with %r" % (remote, reply),
                               remote=remote)
    return reply["result"]


def _read_reply(sock, limit=1 << 20):
    """One JSON object from the stream (OVSDB sends no delimiter after it)."""
    decoder = json.JSONDecoder()
    data = b""
    while len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("connection closed after %d bytes" % len(data))
        data += chunk
        try:
            value, _end = decoder.raw_decode(data.decode("utf-8").lstrip())
        except ValueError:
            continue  # not complete yet
        return value
    raise ValueError("reply larger than %d bytes" % limit)
