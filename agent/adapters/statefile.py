"""The daemon's record of what it added, on disk, written atomically.

{"version": 1, "owned": {"xapi1": "172.16.1.1/24"}, "links": {"xapi1": 7},
 "links_of": "<boot id> <network namespace>", "ip_forward_was": false}

``owned`` lets the daemon (and ``--cleanup``) remove exactly the addresses it added, even
after a restart with a changed configuration; ``links`` says on which link (by index, so
that a renamed bridge is still found), valid only in the boot and network namespace
``links_of`` names: elsewhere the same number is another link, and the record falls back
to names. ``ip_forward_was`` remembers the value
before the daemon first enabled forwarding, so a full clean-up can put it back.
"""
import ipaddress
import json
import os
import tempfile

from agent.core.planner import Owned
from agent.errors import StateError

VERSION = 1


class StateFile(object):
    def __init__(self, directory, name="state.json"):
        self.directory = directory
        self.path = os.path.join(directory, name)

    def load(self):
        """(owned {bridge: Owned}, ip_forward_was or None). Missing file: empty."""
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (IOError, OSError) as exc:
            if getattr(exc, "errno", None) == 2:
                return {}, None
            raise StateError("cannot read %s: %s" % (self.path, exc), path=self.path)
        except ValueError as exc:
            raise StateError("state file %s is corrupt: %s" % (self.path, exc), path=self.path)
        links = data.get("links") if data.get("links_of") == links_scope() else None
        if not isinstance(links, dict):
            links = {}
        try:
            owned = {}
            for bridge, address in data.get("owned", {}).items():
                index = links.get(bridge)
                owned[str(bridge)] = Owned(ipaddress.IPv4Interface(address),
                                           index if isinstance(index, int) else None)
        except (ValueError, AttributeError) as exc:
            raise StateError("state file %s has a bad address: %s" % (self.path, exc),
                             path=self.path)
        was = data.get("ip_forward_was")
        return owned, (bool(was) if was is not None else None)

    def save(self, owned, ip_forward_was):
        data = {"version": VERSION,
                "owned": {b: str(rec.address) for b, rec in sorted(owned.items())},
                "links": {b: rec.ifindex for b, rec in sorted(owned.items())
                          if rec.ifindex is not None},
                "links_of": links_scope(),
                "ip_forward_was": ip_forward_was}
        write_atomic(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode=0o600)

    def remove(self):
        try:
            os.unlink(self.path)
        except OSError as exc:
            if exc.errno != 2:
                raise StateError("cannot remove %s: %s" % (self.path, exc.strerror))


def links_scope():
    """Where interface indexes mean the same links: this boot, this network namespace."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        netns = os.stat("/proc/self/ns/net")
    except (IOError, OSError):
        return None
    return "%s %d:%d" % (boot, netns.st_dev, netns.st_ino)


def write_atomic(path, text, mode=0o644, durable=True):
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half.
    ``text`` is a str, or an iterable of str written as it comes (a large document, such
    as a JSON encoder's chunks, is then never whole in memory).

    ``durable`` fsyncs before the rename (state that must survive a crash); runtime
    files on tmpfs do not need it."""
    directory = os.path.dirname(path) or "."
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
        try:
            with os.fdopen(fd, "w") as f:
                if isinstance(text, str):
                    f.write(text)
                else:
                    f.writelines(text)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.rename(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except (IOError, OSError) as exc:
        raise StateError("cannot write %s: %s" % (path, exc), path=path)


class JsonCache(object):
    """A JSON document on disk, written atomically (the last desired state from XAPI)."""

    def __init__(self, path):
        self.path = path

    def load(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except (IOError, OSError, ValueError):
            return None

    def save(self, data):
        write_atomic(self.path, json.dumps(data, sort_keys=True) + "\n", mode=0o600)
