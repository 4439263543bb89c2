"""Inside a namespace: NetlinkMonitor.held() for real. Adds a bridge's address while the
monitor is held, then leaves the hold. Prints JSON: what the mirror and on_change showed
while held and after.

usage: monitor_held.py
"""
import ipaddress
import json
import subprocess
import threading
import time

from agent.adapters.netlink import Netlink, NetlinkMonitor, NetlinkView

ADDRESS = ipaddress.IPv4Interface(u"172.16.7.1/24")
subprocess.check_call("ip link add br7 type bridge".split())
subprocess.check_call("ip link set br7 up".split())
netlink = Netlink()
view = NetlinkView()
changed = []
seen = threading.Event()


def on_change(names):
    changed.append(sorted(names))
    seen.set()


monitor = NetlinkMonitor(view, on_change=on_change, on_overflow=lambda: None)
monitor.start()
view.load(*netlink.dump())
index = view.snapshot()[1]["br7"].index


def has_address():
    return ADDRESS in view.snapshot()[2].get(index, ())


result = {}
with monitor.held():
    netlink.add_address(index, ADDRESS)
    time.sleep(0.5)   # ample for an unheld monitor (it folds events in microseconds)
    result["held"] = {"mirror": has_address(), "on_change": list(changed)}
deadline = time.monotonic() + 5
while not has_address() and time.monotonic() < deadline:
    seen.wait(0.05)
result["after"] = {"mirror": has_address(), "on_change": list(changed)}
print(json.dumps(result))
