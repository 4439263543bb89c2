"""Gratuitous ARP: telling a segment's neighbours that an address now lives here.

When a pool host takes a gateway over, the VMs on the segment still have the old host's
MAC for the gateway address in their ARP cache and would keep sending there until the
entry goes stale and is probed again (tens of seconds). An announcement updates every
existing entry at once: an ARP request and an ARP reply, both with the gateway address as
sender and target and the bridge's MAC as sender (RFC 5227's announcement; what
keepalived and `arping -U` / `-A` send), broadcast on the bridge through a raw
AF_PACKET socket. Sending changes no kernel state: it is a packet, not a write.
"""
import errno
import socket
import struct

from agent.errors import KernelError

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6
REQUEST, REPLY = 1, 2


def frames(mac, address):
    """The two announcement frames for IPv4 ``address`` from ``mac`` (6 bytes)."""
    ip = socket.inet_aton(str(address))
    out = []
    for op, target_mac in ((REQUEST, b"\x00" * 6), (REPLY, BROADCAST)):
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac, ip, target_mac, ip)
        out.append(BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + arp)
    return out


class Announcer(object):
    """Sends announcements through one AF_PACKET socket, opened at the first one and kept
    until ``close``.

    A packet socket per announcement cost ~25 ms: closing one waits for an RCU grace
    period in the kernel (``packet_release`` calls ``synchronize_net``), so the 1,000
    announcements of a start-up took 25 s. The socket is opened with protocol 0, so the
    kernel hands it no incoming frame (it only sends), and each frame is addressed to its
    interface with ``sendto``."""

    def __init__(self, socket_factory=None):
        self._factory = socket_factory or (
            lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
        self._sock = None

    def __call__(self, ifindex, address):
        """Broadcast the announcement of ``address`` (an IPv4 address) on interface
        ``ifindex``; KernelError when it cannot be sent (the interface went away: the
        caller's next round sees that)."""
        try:
            name = socket.if_indextoname(ifindex)
            with open("/sys/class/net/%s/address" % name) as f:
                mac = bytes(int(part, 16) for part in f.read().strip().split(":"))
            if self._sock is None:
                self._sock = self._factory()
            for frame in frames(mac, address):
                self._sock.sendto(frame, (name, ETH_P_ARP))
        except (OSError, IOError, ValueError) as exc:
            code = getattr(exc, "errno", None) or errno.EIO
            raise KernelError("gratuitous ARP for %s on interface %d: %s"
                              % (address, ifindex, exc), errno=code)

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
