"""Inside the gateway namespace: COUNT times, create bridge BRIDGE (up, as XAPI does),
wait until the daemon reports its gateway applied, delete it, wait until it reports it
absent. Prints JSON {cycles, seconds, timeouts}. Bounded: each wait gives up after 5 s.

usage: cycles.py STATUS_JSON BRIDGE GATEWAY_NAME COUNT
"""
import json
import sys
import time

from pyroute2 import IPRoute

status_path, bridge, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def state():
    try:
        with open(status_path) as f:
            data = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    for gw in data["gateways"]:
        if gw["name"] == name:
            return gw["state"]
    return None


def wait_state(wanted, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state() == wanted:
            return True
        time.sleep(0.001)
    return False


ipr = IPRoute()
timeouts = 0
start = time.monotonic()
for _ in range(count):
    ipr.link("add", ifname=bridge, kind="bridge")
    index = ipr.link_lookup(ifname=bridge)[0]
    ipr.link("set", index=index, state="up")
    if not wait_state("applied"):
        timeouts += 1
    ipr.link("del", index=index)
    if not wait_state("absent"):
        timeouts += 1
ipr.close()
print(json.dumps({"cycles": count, "seconds": time.monotonic() - start, "timeouts": timeouts}))
