"""Named network namespaces that stand in for a host, a VM's NIC or the world outside, for
the tests, the benchmark and the demo (``ip netns``; root).

Only namespaces made through this class are ever changed or deleted, and deleting one
first kills what still runs inside it.
"""
import os
import signal
import subprocess
import time


class CommandFailed(AssertionError):
    """A command exited with a non-zero status (its output is in the message)."""


class TimedOut(AssertionError):
    """What ``wait_for`` waited for did not come."""


def wait_for(predicate, timeout=10.0, interval=0.02, message="condition"):
    """Poll ``predicate`` until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimedOut("timed out after %ss waiting for %s (last: %r)" % (timeout, message, last))


def stop(proc, timeout=10.0):
    """Terminate a child, and kill it if it has not exited after ``timeout`` seconds, so
    that a clean-up (namespaces, directories) always runs after it. Returns False when it
    had to be killed."""
    if proc is None or proc.poll() is not None:
        return True
    proc.terminate()
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def run(cmd, check=True, input=None, timeout=60, env=None):
    proc = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise CommandFailed("%s failed (%d): %s%s" % (" ".join(cmd), proc.returncode,
                                                      proc.stdout, proc.stderr))
    return proc


def names():
    """The named network namespaces that exist now."""
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


class Netns(object):
    """A named network namespace; ``ns.run([...])`` runs a command inside it."""

    def __init__(self, name):
        self.name = name

    def create(self):
        run(["ip", "netns", "add", self.name])
        self.run(["ip", "link", "set", "lo", "up"])
        return self

    def exists(self):
        return self.name in names()

    def run(self, cmd, **kw):
        return run(["ip", "netns", "exec", self.name] + list(cmd), **kw)

    def bridge_veth(self, bridge, port, other, dev):
        """A machine's NIC on Linux bridge ``bridge`` here: a veth whose end ``port`` is a
        port of the bridge and whose other end ``dev`` is in namespace ``other`` (a
        Netns), both set up; the caller addresses ``dev``. (On Open vSwitch:
        ``agent.xapisim.ovs.Ovs.plug_veth``.)"""
        self.run(["ip", "link", "add", port, "type", "veth", "peer", "name", dev,
                  "netns", other.name])
        self.run(["ip", "link", "set", port, "master", bridge])
        self.run(["ip", "link", "set", port, "up"])
        other.run(["ip", "link", "set", dev, "up"])

    def popen(self, cmd, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name] + list(cmd), **kw)

    def delete(self):
        for pid in run(["ip", "netns", "pids", self.name], check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        run(["ip", "netns", "del", self.name], check=False)
