"""agent.adapters.netlink without a kernel: the decoder, the dump reader and the mirror,
on rtnetlink messages recorded from a namespace (netlink_messages.json, made by
record_netlink.py: a bridge, a veth, an address with a label, routes in the main table
and in two others, deletions, a rename)."""
import ipaddress
import json
import os
import struct

import pytest

from agent.adapters import netlink as N
from agent.core.planner import Link, Route
from agent.errors import KernelError, NetlinkDumpInterrupted

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "netlink_messages.json")) as _f:
    RECORDED = json.load(_f)
STEPS = [step["step"] for step in RECORDED["events"]]
LO, BR0, VETH1, VETH0 = 1, 2, 3, 4   # interface indexes in the recording


def iface(text):
    return ipaddress.IPv4Interface(text)


def route(text, ifindex):
    return Route(ipaddress.IPv4Network(text), ifindex)


def events(step):
    """[(type, family, decoded item)] of the events one step made."""
    out = []
    for data in (bytes.fromhex(m) for m in _step(step)["messages"]):
        for header, start, end in N.messages(data):
            out.append((header.type, data[start], N.decode(header.type, data, start, end)))
    return out


def _step(name):
    return next(s for s in RECORDED["events"] if s["step"] == name)


NEW_LINK, DEL_LINK = N.RTM_NEWLINK, N.RTM_DELLINK
NEW_ADDR, DEL_ADDR = N.RTM_NEWADDR, N.RTM_DELADDR
NEW_ROUTE, DEL_ROUTE = N.RTM_NEWROUTE, N.RTM_DELROUTE

# step: the decoded events the daemon keeps, in order (None: ignored by the decoder)
DECODED = [
    ("bridge-created", [(NEW_LINK, Link(BR0, "br0", False, "bridge"))]),
    ("veth-created", [(NEW_LINK, Link(VETH1, "veth1", False, "veth")),
                      (NEW_LINK, Link(VETH0, "veth0", False, "veth"))]),
    ("bridge-up", [(NEW_LINK, Link(BR0, "br0", True, "bridge"))]),
    # the kernel's local and broadcast routes (table local) are not kept
    ("address-on-bridge", [(NEW_ADDR, (BR0, iface("172.16.1.1/24"))), (NEW_ROUTE, None),
                           (NEW_ROUTE, route("172.16.1.0/24", BR0)), (NEW_ROUTE, None)]),
    # the label (veth0:lab) changes nothing
    ("address-with-label", [(NEW_ADDR, (VETH0, iface("10.9.0.1/24"))), (NEW_ROUTE, None),
                            (NEW_ROUTE, route("10.9.0.0/24", VETH0)), (NEW_ROUTE, None)]),
    ("route-main-table", [(NEW_ROUTE, route("10.50.0.0/16", BR0))]),
    ("route-other-table", [(NEW_ROUTE, None)]),          # table 100 (in the header)
    ("route-other-table-big", [(NEW_ROUTE, None)]),      # table 1000 (RTA_TABLE only)
    ("route-deleted", [(DEL_ROUTE, route("10.50.0.0/16", BR0))]),
    ("address-deleted", [(DEL_ADDR, (VETH0, iface("10.9.0.1/24"))),
                         (DEL_ROUTE, route("10.9.0.0/24", VETH0)), (DEL_ROUTE, None),
                         (DEL_ROUTE, None)]),
    ("bridge-renamed", [(NEW_LINK, Link(BR0, "xapi9", False, "bridge")),
                        (NEW_ADDR, (BR0, iface("172.16.1.1/24")))]),
    ("veth-deleted", [(NEW_LINK, Link(VETH0, "veth0", False, "veth")),
                      (DEL_LINK, Link(VETH0, "veth0", False, "veth")),
                      (DEL_LINK, Link(VETH1, "veth1", False, "veth"))]),
    ("bridge-deleted", [(DEL_ADDR, (BR0, iface("172.16.1.1/24"))), (DEL_ROUTE, None),
                        (DEL_LINK, Link(BR0, "xapi9", False, "bridge"))]),
]


@pytest.mark.parametrize("step, expected", DECODED, ids=[c[0] for c in DECODED])
def test_decode_recorded_events(step, expected):
    assert [(kind, item) for kind, _family, item in events(step)] == expected


def test_bridge_copies_of_port_events_are_ignored():
    """A bridge also reports its ports as AF_BRIDGE messages; the RTM_DELLINK among them
    means 'veth0 left the bridge', not 'veth0 is gone'."""
    out = events("veth-out-of-bridge")
    bridge_copies = [(kind, item) for kind, family, item in out if family == 7]
    assert (DEL_LINK, None) in bridge_copies
    assert all(item is None for _kind, item in bridge_copies)
    assert (NEW_LINK, Link(VETH0, "veth0", True, "veth")) in [(k, i) for k, f, i in out]


DUMP_TYPES = {"links": N.RTM_NEWLINK, "addresses": N.RTM_NEWADDR, "routes": N.RTM_NEWROUTE}


def recorded_dump(what):
    dump = RECORDED["dumps"][what]
    datagrams = iter(bytes.fromhex(d) for d in dump["datagrams"])
    return N.collect(lambda: next(datagrams), dump["seq"], dump["port"], DUMP_TYPES[what])


def test_decode_recorded_dumps():
    assert recorded_dump("links") == [Link(LO, "lo", True, None), Link(BR0, "br0", True, "bridge"),
                                      Link(VETH1, "veth1", False, "veth"), Link(VETH0, "veth0", True, "veth")]
    assert recorded_dump("addresses") == [(LO, iface("127.0.0.1/8")),
                                          (BR0, iface("172.16.1.1/24")),
                                          (VETH0, iface("10.9.0.1/24"))]
    # table 100 and 1000 and the local table's routes are left out
    assert recorded_dump("routes") == [route("10.9.0.0/24", VETH0),
                                       route("10.50.0.0/16", BR0),
                                       route("172.16.1.0/24", BR0)]


def fold(view, upto):
    """Fold the recorded events of the steps up to and including ``upto`` into ``view``."""
    names = set()
    for step in STEPS[:STEPS.index(upto) + 1]:
        for kind, _family, item in events(step):
            if item is not None:
                names.add(view.apply(kind, item))
    return names


def dumped_view():
    view = N.NetlinkView()
    view.load(recorded_dump("links"), recorded_dump("addresses"), recorded_dump("routes"))
    return view.snapshot()[1:]


def test_events_and_dump_give_the_same_mirror():
    """One decoder: the mirror the events build is the one a dump taken then reads, also
    after a port left its bridge (its address and route stay)."""
    view = N.NetlinkView()
    view.load([Link(LO, "lo", True, None)], [(LO, iface("127.0.0.1/8"))], [])
    fold(view, "veth-out-of-bridge")
    assert view.snapshot()[1:] == dumped_view()


def test_mirror_follows_leaving_a_bridge_renames_and_deletions():
    view = N.NetlinkView()
    fold(view, "veth-out-of-bridge")
    _gen, links, addresses, routes = view.snapshot()
    assert links["veth0"] == Link(VETH0, "veth0", True, "veth")   # left br0, still there
    assert addresses[VETH0] == frozenset([iface("10.9.0.1/24")])
    assert route("10.9.0.0/24", VETH0) in routes
    fold_from(view, "route-deleted", "bridge-renamed")
    _gen, links, addresses, routes = view.snapshot()
    assert "br0" not in links and links["xapi9"] == Link(BR0, "xapi9", False, "bridge")
    assert addresses[BR0] == frozenset([iface("172.16.1.1/24")])
    # set down, br0 lost its connected route: the kernel said nothing of it
    assert route("172.16.1.0/24", BR0) not in routes and routes == set()
    fold_from(view, "veth-deleted", "bridge-deleted")
    _gen, links, addresses, routes = view.snapshot()
    assert sorted(links) == []   # lo was never announced: only what the events said
    assert routes == set() and not addresses.get(BR0)


def fold_from(view, first, last):
    for step in STEPS[STEPS.index(first):STEPS.index(last) + 1]:
        for kind, _family, item in events(step):
            if item is not None:
                view.apply(kind, item)


# ---- the dump reader: sequence, port, interruptions, errors --------------------------------
def message(kind, flags, seq, port, body=b""):
    length = 16 + len(body)
    return struct.pack("=IHHII", length, kind, flags, seq, port) + body + b"\0" * (
        -length % 4)


def link_body(index, name, flags=0):
    raw = name.encode() + b"\0"
    attr = struct.pack("=HH", 4 + len(raw), N.IFLA_IFNAME) + raw + b"\0" * (-len(raw) % 4)
    return struct.pack("=BxHiII", 0, 1, index, flags, 0) + attr


def feeder(*datagrams):
    it = iter(datagrams)
    return lambda: next(it)


def test_collect_skips_replies_of_other_requests_and_sockets():
    multi = N.NLM_F_MULTI
    recv = feeder(message(16, multi, 7, 99, link_body(5, "stale")) +     # another port
                  message(16, multi, 6, 42, link_body(6, "old")) +       # another request
                  message(16, multi, 7, 42, link_body(7, "xapi1", 1)),
                  message(3, multi, 6, 42, b"\0" * 4) +                  # another's DONE
                  message(3, multi, 7, 42, b"\0" * 4))
    assert N.collect(recv, 7, 42, N.RTM_NEWLINK) == [Link(7, "xapi1", True, None)]


def test_collect_reports_an_interrupted_dump():
    recv = feeder(message(16, N.NLM_F_MULTI, 1, 42, link_body(7, "xapi1")),
                  message(16, N.NLM_F_MULTI | N.NLM_F_DUMP_INTR, 1, 42, link_body(8, "xapi2")),
                  message(3, N.NLM_F_MULTI | N.NLM_F_DUMP_INTR, 1, 42, b"\0" * 4))
    with pytest.raises(NetlinkDumpInterrupted):
        N.collect(recv, 1, 42, N.RTM_NEWLINK)


def test_collect_reports_an_error_reply():
    recv = feeder(message(2, 0, 1, 42, struct.pack("=i", -1) + b"\0" * 16))
    with pytest.raises(KernelError) as info:
        N.collect(recv, 1, 42, N.RTM_NEWLINK)
    assert info.value.details["errno"] == 1


def test_messages_refuse_a_truncated_datagram():
    data = message(16, 0, 1, 42, link_body(7, "xapi1"))
    with pytest.raises(KernelError):
        list(N.messages(data[:-8]))


class FakeSocket(object):
    """A netlink socket that answers each dump request with the next scripted reply:
    a list of (header flags, [links])."""

    replies = []
    opened = []

    def __init__(self, *args):
        self.port, self.seq, self.out = 4242, None, []
        FakeSocket.opened.append(self)

    def settimeout(self, timeout):
        self.timeout = timeout

    def bind(self, address):
        pass

    def getsockname(self):
        return (self.port, 0)

    def send(self, data):
        self.seq = struct.unpack_from("=IHHII", data)[3]
        flags, links = FakeSocket.replies.pop(0)
        body = b"".join(message(16, N.NLM_F_MULTI | flags, self.seq, self.port,
                                link_body(i, n)) for i, n in links)
        self.out = [body, message(3, N.NLM_F_MULTI | flags, self.seq, self.port, b"\0" * 4)]

    def recv(self, size):
        return self.out.pop(0)

    def close(self):
        pass


@pytest.fixture
def fake_socket(monkeypatch):
    FakeSocket.opened = []
    monkeypatch.setattr(N.socket, "socket", FakeSocket)
    return FakeSocket


def test_an_interrupted_dump_is_taken_again(fake_socket):
    fake_socket.replies = [(N.NLM_F_DUMP_INTR, [(7, "xapi1")]),
                           (N.NLM_F_DUMP_INTR, [(7, "xapi1"), (8, "xapi2")]),
                           (0, [(7, "xapi1"), (8, "xapi2"), (9, "xapi3")])]
    assert [l.name for l in N.dump_links()] == ["xapi1", "xapi2", "xapi3"]
    assert len(fake_socket.opened) == 3
    seqs = [s.seq for s in fake_socket.opened]
    assert len(set(seqs)) == 3    # each take is its own request


def test_a_dump_interrupted_every_time_fails_clearly(fake_socket):
    fake_socket.replies = [(N.NLM_F_DUMP_INTR, [(7, "xapi1")])] * N.DUMP_ATTEMPTS
    with pytest.raises(NetlinkDumpInterrupted):
        N.dump_links()
    assert len(fake_socket.opened) == N.DUMP_ATTEMPTS


# ---- resync: no event lost -----------------------------------------------------------------
def test_an_event_during_a_resync_survives_the_swap():
    """The dump was read before xapi1 appeared; its event arrived before the swap."""
    view = N.NetlinkView()
    view.load([Link(LO, "lo", True, None)], [], [])
    stale_dump = ([Link(LO, "lo", True, None)], [(LO, iface("127.0.0.1/8"))], [])

    def dump():
        view.apply(N.RTM_NEWLINK, Link(12, "xapi1", True, "bridge"))
        view.apply(N.RTM_NEWADDR, (12, iface("172.16.1.1/24")))
        return stale_dump

    view.resync(dump)
    _gen, links, addresses, _routes = view.snapshot()
    assert links == {"lo": Link(LO, "lo", True, None), "xapi1": Link(12, "xapi1", True, "bridge")}
    assert addresses == {LO: frozenset([iface("127.0.0.1/8")]),
                         12: frozenset([iface("172.16.1.1/24")])}
    # events after the resync are not replayed again at the next one
    view.resync(lambda: ([Link(LO, "lo", True, None)], [], []))
    assert list(view.snapshot()[1]) == ["lo"]


def test_a_replayed_event_the_dump_already_shows_changes_nothing():
    view = N.NetlinkView()

    def dump():
        view.apply(N.RTM_NEWLINK, Link(12, "xapi1", False, "bridge"))
        view.apply(N.RTM_NEWLINK, Link(12, "xapi1", True, "bridge"))
        return [Link(12, "xapi1", True, "bridge")], [], []

    view.resync(dump)
    assert view.snapshot()[1] == {"xapi1": Link(12, "xapi1", True, "bridge")}


def test_a_failed_resync_keeps_the_mirror_and_stops_buffering():
    view = N.NetlinkView()
    view.load([Link(LO, "lo", True, None)], [], [])

    def dump():
        raise KernelError("netlink dump: no reply")

    with pytest.raises(KernelError):
        view.resync(dump)
    view.apply(N.RTM_NEWLINK, Link(12, "xapi1", True, "bridge"))
    assert sorted(view.snapshot()[1]) == ["lo", "xapi1"]
    view.resync(lambda: ([Link(LO, "lo", True, None)], [], []))   # nothing left over to replay
    assert sorted(view.snapshot()[1]) == ["lo"]


class SilentSocket(FakeSocket):
    def send(self, data):
        pass

    def recv(self, size):
        raise N.socket.timeout("timed out")


def test_a_kernel_that_does_not_answer_is_an_error_not_a_hang(monkeypatch):
    monkeypatch.setattr(N.socket, "socket", SilentSocket)
    with pytest.raises(KernelError) as info:
        N.dump_links()
    assert "no reply" in str(info.value)
