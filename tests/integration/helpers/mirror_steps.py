"""Inside a namespace: the netlink mirror (NetlinkView kept by NetlinkMonitor's events)
against fresh dumps, step by step. After each command, waits up to 2 s for the mirror to
equal a dump taken then. Prints JSON {step: [mirror, dump]} of the steps where it never
did (empty when the events kept the mirror exact).

usage: mirror_steps.py
"""
import json
import subprocess
import time

from agent.adapters.netlink import Netlink, NetlinkMonitor, NetlinkView

STEPS = [
    "ip link add br0 type bridge",
    "ip link add veth0 type veth peer name veth1",
    "ip link set veth0 master br0",
    "ip link set br0 up",
    "ip link set veth0 up",
    "ip addr add 172.16.1.1/24 dev br0",
    "ip addr add 10.9.0.1/24 dev veth0 label veth0:lab",
    "ip route add 10.50.0.0/16 dev br0",
    "ip route add 10.60.0.0/16 dev br0 table 100",
    "ip link set veth0 nomaster",
    "ip link set br0 down",
    "ip link set br0 name xapi9",
    "ip link set xapi9 up",
    "ip link del veth0",
    "ip link del xapi9",
]


def comparable(links, addresses, routes):
    return (sorted(links, key=lambda l: l.index),
            sorted((i, str(a)) for i, a in addresses),
            sorted((str(r.network), r.ifindex) for r in routes))


def mirror(view):
    _gen, links, addresses, routes = view.snapshot()
    return comparable(links.values(), [(i, a) for i, s in addresses.items() for a in s],
                      routes)


netlink = Netlink()
view = NetlinkView()
NetlinkMonitor(view, on_change=lambda names: None, on_overflow=lambda: None).start()
view.load(*netlink.dump())
diverged = {}
for command in STEPS:
    subprocess.check_call(command.split())
    deadline = time.monotonic() + 2.0
    while True:
        have, want = mirror(view), comparable(*netlink.dump())
        if have == want:
            break
        if time.monotonic() > deadline:
            diverged[command] = [repr(have), repr(want)]
            break
        time.sleep(0.02)
print(json.dumps(diverged))
