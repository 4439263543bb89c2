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
