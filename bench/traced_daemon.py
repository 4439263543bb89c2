"""Run xapi-gateway-agent marking when each start-up step ends, for bench/trace_startup.py.

    python bench/traced_daemon.py OUT.json -c CONFIG

Each mark is (step, CLOCK_MONOTONIC seconds), rewritten to OUT.json as it is made: the
interpreter up (this file's first line), the daemon's modules imported, the configuration
parsed, the kernel state dumped, the first round's steps (tables observed, networks and
rules planned, iptables committed, addresses added: the gateways applied), and after
them what the first round still does before READY=1. CLOCK_MONOTONIC is system-wide: the
caller compares the marks with its own time before the spawn. A mark costs ~5 us, and the
wrappers change nothing else but one order: the kernel adapters (which the daemon imports
once its configuration is parsed) are imported here before it, to be wrapped. Bench-only.
"""
import time

_MARKS = [("interpreter up", time.monotonic())]

import functools  # noqa: E402 - after the first mark on purpose
import json  # noqa: E402
import sys  # noqa: E402

_OUT = sys.argv[1]


def mark(step):
    _MARKS.append((step, time.monotonic()))
    with open(_OUT, "w") as f:
        json.dump(_MARKS, f)


def wrap(owner, name, step, first_only=True, start=None):
    """Mark ``step`` when owner.name returns (and ``start`` when it is called), the first
    call only unless ``first_only`` is False."""
    original = getattr(owner, name)
    calls = [0]

    @functools.wraps(original)
    def marked(*args, **kwargs):
        calls[0] += 1
        counted = not first_only or calls[0] == 1
        if counted and start:
            mark(start)
        result = original(*args, **kwargs)
        if counted:
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
    wrap(reconciler.Reconciler, "run_round", "first round over (status recorded)",
         start="first round begins")
    wrap(iptables.Iptables, "observe", "a table observed", first_only=False)
    wrap(planner, "plan_network", "networks planned")
    wrap(planner, "plan", "rules planned")
    wrap(iptables.Iptables, "apply", "a table committed", first_only=False)
    wrap(netlink.Netlink, "apply", "addresses added (gateways applied)")
    sys.argv = ["xapi-gateway-agent"] + out_args
    return daemon_main.main()


if __name__ == "__main__":
    sys.exit(main())
