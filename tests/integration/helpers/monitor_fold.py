"""Inside a namespace: NetlinkMonitor.fold_pending() for real, as a round the monitor's
own thread runs uses it. When the monitor reports a new bridge, its on_change (in the
monitor's thread) sets the bridge up, then folds what is queued: from another thread
(nothing happens), then from its own. Prints JSON: whether the mirror had the bridge up
before, after the other thread's call and after its own, and the on_change calls.

usage: monitor_fold.py
"""
import json
import subprocess
import threading
import time

from agent.adapters.netlink import Netlink, NetlinkMonitor, NetlinkView

netlink = Netlink()
view = NetlinkView()
calls = []
result = {}
finished = threading.Event()


def up():
    link = view.snapshot()[1].get("br8")
    return bool(link is not None and link.up)


def on_change(names):
    calls.append(sorted(names))
    if "br8" not in names or result:
        return
    result["thread"] = threading.current_thread().name
    subprocess.check_call("ip link set br8 up".split())
    time.sleep(0.3)   # ample for a monitor that reads (it folds events in microseconds)
    result["before"] = up()
    other = threading.Thread(target=monitor.fold_pending)
    other.start()
    other.join()
    result["other_thread"] = up()
    monitor.fold_pending()
    result["after"] = up()
    result["calls"] = list(calls)
    finished.set()


monitor = NetlinkMonitor(view, on_change=on_change, on_overflow=lambda: None)
monitor.start()
view.load(*netlink.dump())
subprocess.check_call("ip link add br8 type bridge".split())
finished.wait(10)
print(json.dumps(result))
