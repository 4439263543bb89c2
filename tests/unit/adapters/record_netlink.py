"""Record the rtnetlink messages that tests/unit/adapters/netlink_messages.json holds.

    sudo .venv/bin/python -m tests.unit.adapters.record_netlink

Makes a network namespace (``xgwt-<pid>-0-record``), runs the steps below in it while a
socket subscribed to the daemon's groups (links, IPv4 addresses, IPv4 routes) records
every event, and takes one link, address and route dump half way through. Each message
is stored in hex, as the kernel sent it, so that the decoder's tests need no kernel. It
reads nothing of the netlink adapter: the file must show what the kernel says, not what
the code under test thinks. Only the namespace it made is touched, then deleted.
"""
import datetime
import json
import os
import platform
import socket
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "netlink_messages.json")

# (name, command in the namespace); the dumps are taken after "veth-out-of-bridge".
STEPS = [
    ("bridge-created", "ip link add br0 type bridge"),
    ("veth-created", "ip link add veth0 type veth peer name veth1"),
    ("veth-into-bridge", "ip link set veth0 master br0"),
    ("bridge-up", "ip link set br0 up"),
    ("veth-up", "ip link set veth0 up"),
    ("address-on-bridge", "ip addr add 172.16.1.1/24 dev br0"),
    ("address-with-label", "ip addr add 10.9.0.1/24 dev veth0 label veth0:lab"),
    ("route-main-table", "ip route add 10.50.0.0/16 dev br0"),
    ("route-other-table", "ip route add 10.60.0.0/16 dev br0 table 100"),
    ("route-other-table-big", "ip route add 10.70.0.0/16 dev br0 table 1000"),
    ("veth-out-of-bridge", "ip link set veth0 nomaster"),
    ("route-deleted", "ip route del 10.50.0.0/16 dev br0"),
    ("address-deleted", "ip addr del 10.9.0.1/24 dev veth0"),
    ("bridge-down", "ip link set br0 down"),
    ("bridge-renamed", "ip link set br0 name xapi9"),
    ("veth-deleted", "ip link del veth0"),
    ("bridge-deleted", "ip link del xapi9"),
]
DUMP_AFTER = "veth-out-of-bridge"

NLMSGHDR = struct.Struct("=IHHII")
GROUPS = 0x1 | 0x10 | 0x40  # RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE
DUMPS = {  # name: (request type, request body)
    "links": (18, struct.pack("=BxHiII", 0, 0, 0, 0, 0)
              + struct.pack("=HHI", 8, 29, 1 << 3)),  # IFLA_EXT_MASK: skip stats
    "addresses": (22, struct.pack("=BBBBi", 2, 0, 0, 0, 0)),
    "routes": (26, struct.pack("=BBBBBBBBI", 2, 0, 0, 0, 0, 0, 0, 0, 0)),
}


def split(data):
    offset, out = 0, []
    while offset + NLMSGHDR.size <= len(data):
        length = NLMSGHDR.unpack_from(data, offset)[0]
        out.append(data[offset:offset + length])
        offset += (length + 3) & ~3
    return out


def drain(sock, quiet=0.2):
    out = []
    sock.settimeout(quiet)
    while True:
        try:
            out.extend(split(sock.recv(1 << 16)))
        except socket.timeout:
            return out


def dump(request_type, body, seq):
    """The datagrams of one dump, whole (NLMSG_DONE included)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.bind((0, 0))
    port = sock.getsockname()[0]
    sock.send(NLMSGHDR.pack(NLMSGHDR.size + len(body), request_type, 0x301, seq, port) + body)
    datagrams = []
    while True:
        data = sock.recv(1 << 16)
        datagrams.append(data.hex())
        if any(NLMSGHDR.unpack_from(m)[1] == 3 for m in split(data)):
            sock.close()
            return {"seq": seq, "port": port, "datagrams": datagrams}


def inside():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.bind((0, GROUPS))
    subprocess.check_call(["ip", "link", "set", "lo", "up"])
    drain(sock)
    record = {"recorded": datetime.date.today().isoformat(), "kernel": platform.release(),
              "how": "python -m tests.unit.adapters.record_netlink", "events": [],
              "dumps": {}}
    for name, command in STEPS:
        subprocess.check_call(command.split())
        record["events"].append({"step": name, "command": command,
                                 "messages": [m.hex() for m in drain(sock)]})
        if name == DUMP_AFTER:
            for seq, (what, (kind, body)) in enumerate(sorted(DUMPS.items()), 100):
                record["dumps"][what] = dump(kind, body, seq)
    with open(OUT, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        return inside()
    name = "xgwt-%d-0-record" % os.getpid()
    subprocess.check_call(["ip", "netns", "add", name])
    try:
        subprocess.check_call(["ip", "netns", "exec", name, sys.executable, "-m",
                               "tests.unit.adapters.record_netlink", "--inside"])
    finally:
        subprocess.call(["ip", "netns", "del", name])
    print("wrote %s" % OUT)


if __name__ == "__main__":
    main()
