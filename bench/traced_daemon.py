"""Run xapi-gateway-agent marking when its steps end, for bench/trace_startup.py and
bench/trace_latency.py.

    python bench/traced_daemon.py OUT.json -c CONFIG

Each mark is [step, CLOCK_MONOTONIC seconds, thread], kept in memory (~1 us a mark) and
written to OUT.json when the daemon exits (SIGTERM: it exits 0). The start-up's steps:
the interpreter up (this file's first line), the daemon's modules imported, the
configuration parsed, the kernel state dumped; each round's: an event read by the netlink
monitor, the round's start, the xtables lock taken, each table observed, the networks and
the rules planned, each table committed, the addresses added (the gateways' stamp, their
since_monotonic), the round's end. CLOCK_MONOTONIC is system-wide: the caller compares
the marks with its own clock. The wrappers change nothing else but one order: the
kernel adapters (which the daemon imports once its configuration is parsed) are imported
here before it, to be wrapped. Bench-only.
"""
import time

_MARKS = [["interpreter up", time.monotonic(), 0]]

import atexit  # noqa: E402 - after the first mark on purpose
import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

_OUT = sys.argv[1]


def mark(step):
    _MARKS.append([step, time.monotonic(), threading.current_thread().ident])


@atexit.register
def _write():
    with open(_OUT, "w") as f:
        json.dump(_MARKS, f)


def wrap(owner, name, step, start=None):
    """Mark ``step`` when owner.name returns (and ``start`` when it is called)."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def marked(*args, **kwargs):
        if start:
            mark(start)
        result = original(*args, **kwargs)
        mark(step)
        return result

    setattr(owner, name, marked)


def main():
    out_args = sys.argv[2:]
    import agent.daemon.main as daemon_main
    mark("daemon modules imported")
    from agent.core import config, planner
    from agent.adapters import iptables, netlink
    from agent.daemon import reconciler
    mark("kernel adapters imported")
    wrap(config, "load", "configuration parsed")
    wrap(netlink.NetlinkView, "resync", "kernel state dumped (links, addresses, routes)",
         start="event monitor up")
    read = netlink.NetlinkMonitor._read

    @functools.wraps(read)
    def event_read(self, sock, flags=0):
        data = read(self, sock, flags)
        if data is not None:
            mark("event read")
        return data

    netlink.NetlinkMonitor._read = event_read
    wrap(reconciler.Reconciler, "run_round", "round over (status recorded)",
         start="round begins")
    wrap(iptables.XtablesLock, "__enter__", "xtables lock taken")
    wrap(iptables.Iptables, "observe", "a table observed")
    wrap(planner, "plan_network", "networks planned")
    wrap(planner, "plan", "rules planned")
    wrap(iptables.Iptables, "apply", "a table committed")
    wrap(netlink.Netlink, "apply", "addresses added (gateways applied)")
    sys.argv = ["xapi-gateway-agent"] + out_args
    return daemon_main.main()


if __name__ == "__main__":
    sys.exit(main())
