"""The daemon (agent.daemon.main, argv after ``--``) with one injection point: right
after its netlink dump number DUMP returns, and before the daemon swaps it into its
mirror, create bridge BRIDGE (up) and wait until the daemon's netlink monitor has folded
the bridge's event in. That event is then older than the swap and newer than the dump:
the race of a bridge that XAPI creates while the daemon re-reads the kernel.

usage: resync_race.py BRIDGE DUMP -- DAEMON_ARGS...
"""
import subprocess
import sys
import threading

from agent.adapters import netlink
from agent.daemon import main

bridge, wanted = sys.argv[1], int(sys.argv[2])
daemon_args = sys.argv[sys.argv.index("--") + 1:]
seen = threading.Event()
calls = []

real_monitor_init = netlink.NetlinkMonitor.__init__
real_dump = netlink.Netlink.dump


def monitor_init(self, view, on_change, on_overflow):
    def changed(names):
        on_change(names)
        if bridge in names:
            seen.set()
    real_monitor_init(self, view, changed, on_overflow)


def dump(self):
    result = real_dump(self)
    calls.append(1)
    if len(calls) == wanted:
        subprocess.check_call(["ip", "link", "add", bridge, "up", "type", "bridge"])
        if not seen.wait(5):
            sys.stderr.write("resync_race: the monitor never reported %s\n" % bridge)
        sys.stderr.write("resync_race: %s created during dump %d\n" % (bridge, wanted))
    return result


netlink.NetlinkMonitor.__init__ = monitor_init
netlink.Netlink.dump = dump
sys.exit(main.main(daemon_args))
