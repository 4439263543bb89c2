"""The gratuitous ARP frames (the packets a takeover announces; sent for real in
tests/integration/test_pool_gateways.py, where a neighbour's ARP entry moves)."""
import ipaddress
import struct

from agent.adapters import arp

MAC = bytes([0x02, 0x11, 0x22, 0x33, 0x44, 0x55])


def test_an_announcement_is_a_request_and_a_reply_with_the_address_as_sender_and_target():
    request, reply = arp.frames(MAC, ipaddress.IPv4Address("172.16.1.1"))
    for frame, op, target_mac in ((request, 1, b"\x00" * 6), (reply, 2, b"\xff" * 6)):
        assert len(frame) == 42  # Ethernet header + ARP for IPv4 over Ethernet
        dst, src, ethertype = frame[:6], frame[6:12], struct.unpack("!H", frame[12:14])[0]
        assert (dst, src, ethertype) == (b"\xff" * 6, MAC, 0x0806)
        htype, ptype, hlen, plen, code, sha, spa, tha, tpa = struct.unpack(
            "!HHBBH6s4s6s4s", frame[14:])
        assert (htype, ptype, hlen, plen, code) == (1, 0x0800, 6, 4, op)
        assert (sha, tha) == (MAC, target_mac)
        assert spa == tpa == bytes([172, 16, 1, 1])


class _Socket(object):
    def __init__(self, opened):
        opened.append(self)
        self.sent, self.closed = [], False

    def sendto(self, frame, address):
        self.sent.append((frame, address))

    def close(self):
        self.closed = True


def test_one_socket_serves_every_announcement_until_closed():
    # a packet socket closed per announcement cost ~25 ms each (an RCU grace period in
    # the kernel): 1,000 gateways at a start-up were announced for 25 s
    opened = []
    announcer = arp.Announcer(socket_factory=lambda: _Socket(opened))
    ifindex = 1   # lo: a name and a sysfs address file on every Linux machine
    for _ in range(3):
        announcer(ifindex, ipaddress.IPv4Address("127.0.0.1"))
    assert len(opened) == 1
    assert [address for _frame, address in opened[0].sent] == [("lo", 0x0806)] * 6
    announcer.close()
    assert opened[0].closed
    announcer(ifindex, ipaddress.IPv4Address("127.0.0.1"))
    assert len(opened) == 2   # opened again after close


def test_an_interface_that_went_away_is_a_kernel_error():
    announcer = arp.Announcer(socket_factory=lambda: _Socket([]))
    try:
        announcer(999999, ipaddress.IPv4Address("10.0.0.1"))
    except arp.KernelError as exc:
        assert "999999" in str(exc)
    else:
        raise AssertionError("no error for a missing interface")
