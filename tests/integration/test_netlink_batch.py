"""The netlink adapter's batched writes, for real in a namespace: many address and route
requests go out in one send, each is acknowledged on its own, and a request that fails in
the middle of a batch fails alone (the others land) and is reported for its own operation."""
import json
import sys

from tests.integration import netns as N

# Run inside the namespace: argv[1] is JSON [[kind, bridge, address-or-network, source]],
# each applied as the planner's operation on that bridge's index; prints, per operation,
# the error's errno (or null) and the message.
SCRIPT = r'''
import ipaddress, json, socket, sys
from agent.adapters.netlink import Netlink, BATCH
from agent.core import planner as P

ops = []
for kind, bridge, what, source in json.loads(sys.argv[1]):
    index = socket.if_nametoindex(bridge)
    if kind == "add":
        ops.append(P.AddAddress(bridge, index, ipaddress.IPv4Interface(what)))
    elif kind == "remove":
        ops.append(P.RemoveAddress(bridge, index, ipaddress.IPv4Interface(what)))
    else:
        ops.append(P.AddRoute(bridge, index, ipaddress.IPv4Network(what),
                              ipaddress.IPv4Address(source)))
netlink = Netlink()
results = netlink.apply(ops)
again = netlink.apply(ops)   # idempotent: what is already so is success
netlink.close()
print(json.dumps({"batch": BATCH,
                  "first": [None if e is None else [e.details["errno"], str(e)] for e in results],
                  "again": [None if e is None else e.details["errno"] for e in again]}))
'''


def run_ops(ns, ops):
    proc = ns.run([sys.executable, "-c", SCRIPT, json.dumps(ops)], check=False,
                  env=dict(N.os.environ, PYTHONPATH=N.REPO))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def make_bridges(ns, names):
    for name in names:
        ns.run(["ip", "link", "add", name, "type", "bridge"])
        ns.run(["ip", "link", "set", name, "up"])


def test_a_failure_in_the_middle_of_a_batch_fails_alone():
    """xapi2's route names a source address the host does not have (the kernel says
    EINVAL): xapi1's and xapi3's addresses, sent before and after it in the same datagram,
    still land, and only the route's operation carries the error."""
    ns = N.Netns("nlbatch")
    try:
        make_bridges(ns, ["xapi1", "xapi2", "xapi3"])
        out = run_ops(ns, [["add", "xapi1", "10.201.1.1/24", None],
                           ["route", "xapi2", "10.201.2.0/24", "10.250.0.9"],
                           ["add", "xapi3", "10.201.3.1/24", None],
                           ["remove", "xapi3", "10.201.9.1/24", None]])
        first = out["first"]
        assert first[0] is None and first[2] is None and first[3] is None, first
        assert first[1][0] == 22, first      # EINVAL
        assert "add route 10.201.2.0/24" in first[1][1], first
        assert ns.addresses("xapi1") == ["10.201.1.1/24"]
        assert ns.addresses("xapi3") == ["10.201.3.1/24"]
        assert ns.addresses("xapi2") == []
        assert not [r for r in ns.routes() if r.startswith("10.201.2.0/24")]
        # again: the addresses exist (EEXIST is success), the route still fails
        assert out["again"] == [None, 22, None, None]
    finally:
        ns.delete()


def test_more_requests_than_one_send_carries_all_land():
    """More operations than BATCH: several sends, every acknowledgement read, every
    address and its connected route in place, broadcast address as ``ip`` would set it;
    a removed route put back by AddRoute has scope link and the gateway's source."""
    ns = N.Netns("nlbatch")
    try:
        names = ["xapi%d" % i for i in range(150)]
        make_bridges(ns, names)
        ops = [["add", name, "10.202.%d.1/24" % i, None] for i, name in enumerate(names)]
        out = run_ops(ns, ops)
        assert out["batch"] < len(ops)
        assert out["first"] == [None] * len(ops)
        for i, name in enumerate(names):
            assert ns.addresses(name) == ["10.202.%d.1/24" % i]
        shown = ns.run(["ip", "-4", "-o", "addr", "show", "dev", "xapi7"]).stdout
        assert "brd 10.202.7.255" in shown
        ns.run(["ip", "route", "del", "10.202.7.0/24", "dev", "xapi7"])
        out = run_ops(ns, [["route", "xapi7", "10.202.7.0/24", "10.202.7.1"],
                           ["remove", "xapi8", "10.202.8.1/24", None]])
        assert out["first"] == [None, None]
        route = [r for r in ns.routes() if r.startswith("10.202.7.0/24")]
        assert route and "dev xapi7" in route[0] and "scope link" in route[0] and \
            "src 10.202.7.1" in route[0], route
        assert ns.addresses("xapi8") == []
    finally:
        ns.delete()
