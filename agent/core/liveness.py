"""Which pool hosts this host can reach, from heartbeats (pure: time is an argument).

``host_metrics.live`` turns false about 10 minutes after a host simply dies (without HA;
at once only for a shutdown through XAPI), so every daemon also sends a small UDP
heartbeat to the other pool members' management addresses (agent.adapters.heartbeat)
and feeds what it hears to a ``Detector``:

- a peer is **down** once ``hold_time`` seconds pass without a valid heartbeat from it;
- a down peer is **up** again only after ``hold_down`` seconds of steady heartbeats (no
  gap longer than ``hold_time``), so a flapping host never comes back: each gap starts its
  steady run again;
- a peer is judged only once it has been heard: until its first valid heartbeat it
  counts as up, whatever the silence. A daemon that just started therefore takes nothing
  over from a host it has not heard yet, and heartbeats that never arrive (the port
  closed in a firewall, a member without the daemon) leave liveness to XAPI instead of
  making every host see every other as dead. The price: a host that died before this
  daemon ever heard it is noticed only when XAPI marks it dead;
- this host is never a peer: a host never considers itself dead;
- a tick that comes more than half a hold time after the previous one judges no one:
  this host itself was not running (a loaded Dom0, a stopped process), and the
  heartbeats that waited in its socket meanwhile are read before the next tick.

Heartbeats are authenticated: HMAC-SHA256 with a key derived from the pool secret
(``/etc/xensource/ptoken``: every pool member has it, root-only, and it authenticates
xapi's own intra-pool calls; an outsider does not), truncated to 16 bytes. A heartbeat
carries the sender's host uuid, the sender's start time and a sequence number; a receiver
accepts from a sender only a (start, sequence) greater than the last it accepted, so a
replayed heartbeat is refused. Two keys are accepted at once (the secret's current and
previous value) so that a secret rotation (``pool.rotate_secret``) reaching hosts a moment
apart does not look like a dead pool.
"""
import hashlib
import hmac
import struct
from collections import namedtuple

MAGIC = b"XGW1"
_BODY = struct.Struct(">36sQQ")   # host uuid (ASCII), sender start (ms), sequence
MAC_LEN = 16
SIZE = len(MAGIC) + _BODY.size + MAC_LEN
_KEY_LABEL = b"xapi-gateway heartbeat v1\0"


class BadHeartbeat(ValueError):
    """A datagram that is no valid heartbeat (size, magic, MAC); says which."""


Heartbeat = namedtuple("Heartbeat", "host start seq")


def derive_key(secret):
    """The heartbeat key from the pool secret's bytes (never the secret itself on the
    wire or in a MAC)."""
    return hashlib.sha256(_KEY_LABEL + secret.strip()).digest()


def encode(key, host, start, seq):
    """The datagram for host uuid ``host`` (36 characters), ``start`` and ``seq``."""
    body = MAGIC + _BODY.pack(host.encode("ascii"), start, seq)
    return body + hmac.new(key, body, hashlib.sha256).digest()[:MAC_LEN]


def decode(keys, data):
    """The Heartbeat in ``data`` if its MAC is right under one of ``keys``; raises
    BadHeartbeat otherwise."""
    if len(data) != SIZE:
        raise BadHeartbeat("%d bytes, not %d" % (len(data), SIZE))
    if data[:len(MAGIC)] != MAGIC:
        raise BadHeartbeat("not a heartbeat (magic)")
    body, mac = data[:-MAC_LEN], data[-MAC_LEN:]
    if not any(hmac.compare_digest(hmac.new(k, body, hashlib.sha256).digest()[:MAC_LEN],
                                   mac) for k in keys if k):
        raise BadHeartbeat("wrong MAC (another pool secret, or forged)")
    host, start, seq = _BODY.unpack(body[len(MAGIC):])
    try:
        return Heartbeat(host.decode("ascii"), start, seq)
    except UnicodeDecodeError:
        raise BadHeartbeat("host uuid is not ASCII")


class _Peer(object):
    __slots__ = ("up", "heard", "run", "last")

    def __init__(self, now):
        self.up = True        # not judged before its first heartbeat
        self.heard = None     # last valid heartbeat, None: never heard
        self.run = None       # start of the current steady run of heartbeats
        self.last = (-1, -1)  # (start, seq) last accepted: replays are refused


class Detector(object):
    """Peer liveness with a hold time and a hold-down. Feed it ``members`` (the pool's
    other hosts), ``heard`` heartbeats and ``tick``; ``unreachable()`` is what placement
    gets. Times are seconds from any monotonic clock."""

    def __init__(self, me, hold_time, hold_down):
        if hold_time <= 0 or hold_down < 0:
            raise ValueError("hold_time must be > 0 and hold_down >= 0")
        self.me = me
        self.hold_time = hold_time
        self.hold_down = hold_down
        self._peers = {}
        self._last_tick = None

    def members(self, hosts, now):
        """The pool's hosts now (this host among them or not): new ones start up and
        unjudged until heard, gone ones are forgotten."""
        wanted = set(hosts) - {self.me}
        for host in list(self._peers):
            if host not in wanted:
                del self._peers[host]
        for host in wanted:
            if host not in self._peers:
                self._peers[host] = _Peer(now)

    def heard(self, beat, now):
        """A valid heartbeat arrived. Returns False (ignored) for a non-member, this host's
        own uuid, or a replay (not newer than the last accepted)."""
        peer = self._peers.get(beat.host)
        if peer is None or (beat.start, beat.seq) <= peer.last:
            return False
        peer.last = (beat.start, beat.seq)
        if peer.run is None or peer.heard is None or now - peer.heard > self.hold_time:
            peer.run = now   # a gap: the steady run starts again
        peer.heard = now
        return True

    def tick(self, now):
        """Apply the hold time and the hold-down; returns {host: up} for the peers whose
        state changed."""
        changed = {}
        stalled = self._last_tick is not None and now - self._last_tick > self.hold_time / 2
        self._last_tick = now
        if stalled:
            return changed
        for host, peer in self._peers.items():
            if peer.heard is None:
                continue
            if peer.up and now - peer.heard > self.hold_time:
                peer.up, peer.run = False, None
                changed[host] = False
            elif not peer.up and peer.run is not None and \
                    now - peer.heard <= self.hold_time and now - peer.run >= self.hold_down:
                peer.up = True
                changed[host] = True
        return changed

    def unreachable(self):
        """frozenset of the uuids of the peers that are down now."""
        return frozenset(h for h, p in self._peers.items() if not p.up)

    def views(self, now):
        """{host: {"reachable", "silent"}} for status: seconds since the last heartbeat
        (None: never heard, so not judged)."""
        return {h: {"reachable": p.up, "silent": None if p.heard is None else
                    round(max(0.0, now - p.heard), 3)}
                for h, p in sorted(self._peers.items())}
