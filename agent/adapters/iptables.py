"""iptables through libiptc (agent.adapters.libiptc): legacy x_tables, as in Dom0.

Observation is cheap: instead of python-iptables' Rule objects (about 70 us per rule to
decode), we walk the table's raw entries and read only each rule's target, its
``comment`` match (the daemon's rule identity, see core.rules) and the few fields our rules
set (core.rules.match_of: addresses, interfaces, protocol, the tcp/udp destination port,
the addrtype destination type and a DNAT target's destination), so that a rule of ours
altered in place is seen as different. Every revision of the addrtype match and of the
DNAT target reads back the same, whichever one the daemon, python-iptables or an
``iptables-restore`` of saved rules chose. Writes go into one commit per table, under the xtables lock that
the iptables binaries also take, so concurrent ``iptables`` runs cannot interleave with
us. A new rule is handed to libiptc as the raw ``ipt_entry`` the iptables binary would
make (``encode_rule``, the mirror of ``decode_entry``, ~15 us a rule): building a
python-iptables Rule object cost ~0.4 ms a rule, 1.2 s for the 3,000 of 1,000 gateways.
The encoded bytes are not kept: a rule is encoded when it is added, once in its life
unless someone deletes it, and a memo of the 3,000 entries held ~2 MB for nothing.

libiptc's copy of a table (~1 KB a rule: ~3 MB for the 3,000 rules of 1,000 gateways)
lives only while it can serve: from a walk to the commit that follows it, in one round.
A commit uses it up, ``release`` (the end of a round) frees it, and ``apply`` loads the
table again when it has no copy (checking the fingerprint, as ever).

A periodic check on an unchanged table costs one copy of it, not a walk: the table's
fingerprint (its size, entry count and a digest of every entry without its counters, read
with the same getsockopt calls libiptc uses) is compared with the one of the last walk,
and an equal fingerprint returns that walk's observation. Any change to any entry, ours or
not, the same size or not, changes the digest; only the packet and byte counters do not.
"""
import array
import ctypes
import errno
import fcntl
import hashlib
import logging
import mmap
import os
import socket
import struct
import time

from agent.adapters import heap, libiptc
from agent.core import planner as P
from agent.core import rules as rulesmod
from agent.errors import KernelError, LockTimeout, TransientKernelError

log = logging.getLogger(__name__)

_ENTRY_SIZE = 112            # sizeof(struct ipt_entry): ipt_ip, then the fields below
# struct ipt_ip: src, dst, smsk, dmsk, iniface[16], outiface[16], iniface_mask[16],
# outiface_mask[16], proto, flags, invflags
_IPT_IP = struct.Struct("=4s4s4s4s16s16s16s16sHBB")
IPT_INV_VIA_IN, IPT_INV_VIA_OUT, IPT_INV_SRCIP, IPT_INV_DSTIP = 0x01, 0x02, 0x08, 0x10
IPT_INV_PROTO = 0x40
_PROTOCOLS = {6: "tcp", 17: "udp"}
_MATCH_HEADER = 32            # struct xt_entry_match: u16 size, char name[29], u8 revision
_TARGET_HEADER = 32           # struct xt_entry_target: the same layout
_COMMENT = b"comment"
# struct xt_tcp / xt_udp: u16 spts[2], u16 dpts[2] (host order), then for tcp option,
# flg_mask, flg_cmp, invflags, for udp invflags; XT_{TCP,UDP}_INV_DSTPT = 0x02.
_PORTS = struct.Struct("=HHHH")
_INVFLAGS_AT = {b"tcp": 11, b"udp": 8}
_INV_DSTPT = 0x02
# addrtype: revision 0 struct ipt_addrtype_info (u16 source, u16 dest, u32 invert_source,
# u32 invert_dest), revision 1 struct xt_addrtype_info_v1 (u16 source, u16 dest, u32
# flags with XT_ADDRTYPE_INVERT_DEST = 0x2). Type bits, lowest first:
_ADDRTYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST",
              "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")
# DNAT: revision 0 struct nf_nat_ipv4_multi_range_compat (u32 rangesize, then u32 flags,
# be32 min_ip, be32 max_ip, be16 min port, be16 max port), revisions 1 and 2 struct
# nf_nat_range(2) (u32 flags, 16-byte min and max addresses, be16 min and max port).
_NAT_V0 = struct.Struct("=4xI4s4s")
_NAT_V0_PORTS = struct.Struct("!HH")
_NAT_V1 = struct.Struct("=I16s16s")
_NAT_V1_PORTS = struct.Struct("!HH")
NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED = 0x1, 0x2
_libc = ctypes.CDLL(None, use_errno=True)


# ---- raw entries for libiptc (linux/netfilter_ipv4/ip_tables.h, linux/netfilter/x_tables.h)
_MODULE_HEADER = struct.Struct("=H29sB")   # xt_entry_match / xt_entry_target: size, name, rev
_ENTRY_TAIL = struct.Struct("=IHHI16x")    # nfcache, target_offset, next_offset, comefrom,
#                                            counters (zero)
_PROTO_NUMBERS = {"tcp": 6, "udp": 17}
# xt_conntrack_mtinfo3 (revision 3): eight 16-byte addresses, expires_min/max, l4proto,
# four ports, then match_flags, invert_flags, state_mask, status_mask, four port_highs.
_CONNTRACK_V3 = struct.Struct("=128x8x2x8xHHHH8x")
XT_CONNTRACK_STATE = 0x1
_CTSTATES = {"INVALID": 0x1, "ESTABLISHED": 0x2, "RELATED": 0x4, "NEW": 0x8, "SNAT": 0x40,
             "DNAT": 0x80, "UNTRACKED": 0x100}
_TCP = struct.Struct("=HHHHBBBB")          # xt_tcp: spts, dpts, option, flg_mask/cmp, inv
_UDP = struct.Struct("=HHHHBx")            # xt_udp: spts, dpts, invflags
_ADDRTYPE_V1 = struct.Struct("=HHI")       # xt_addrtype_info_v1: source, dest, flags
_COMMENT_SIZE = 256                        # xt_comment_info: char comment[256]
_VERDICT = struct.Struct("=i")             # xt_standard_target's verdict (libiptc sets it)
_MASQUERADE = struct.Struct("=II4s4sHH")   # nf_nat_ipv4_multi_range_compat, rangesize 1
_NAT_RANGE2 = struct.Struct("=I16s16s2s2s2s")   # nf_nat_range2 (DNAT revision 2)


def _xt_align(size):
    return (size + 7) & ~7


def _module(name, revision, data):
    """One xt_entry_match or xt_entry_target: header, data, zero padding to XT_ALIGN."""
    size = _MATCH_HEADER + _xt_align(len(data))
    return (_MODULE_HEADER.pack(size, name, revision) + data
            + b"\0" * (size - _MATCH_HEADER - len(data)))


def _address(cidr):
    """(address, mask, inverted) of "[!]A.B.C.D/N" or None, packed."""
    if not cidr:
        return b"\0" * 4, b"\0" * 4, False
    inverted = cidr.startswith("!")
    address, _slash, prefix = cidr.lstrip("!").partition("/")
    bits = (0xFFFFFFFF << (32 - int(prefix or 32))) & 0xFFFFFFFF
    mask = struct.pack("!I", bits)
    value = struct.pack("!I", struct.unpack("!I", socket.inet_aton(address))[0] & bits)
    return value, mask, inverted


def _interface(name):
    """(name, mask, inverted) as iptables packs ``-i``/``-o`` NAME (exact name: the mask
    covers it and its terminating NUL; a trailing "+" matches the prefix)."""
    if not name:
        return b"\0" * 16, b"\0" * 16, False
    inverted = name.startswith("!")
    name = name.lstrip("!").encode("ascii")
    length = len(name) - 1 if name.endswith(b"+") else len(name) + 1
    return name.ljust(16, b"\0"), (b"\xff" * length).ljust(16, b"\0"), inverted


def _entry(ip_fields, matches, target):
    src, smsk, inv_src = _address(ip_fields.get("src"))
    dst, dmsk, inv_dst = _address(ip_fields.get("dst"))
    iniface, inmask, inv_in = _interface(ip_fields.get("in_iface"))
    outiface, outmask, inv_out = _interface(ip_fields.get("out_iface"))
    proto = ip_fields.get("proto")
    invflags = ((IPT_INV_SRCIP if inv_src else 0) | (IPT_INV_DSTIP if inv_dst else 0)
                | (IPT_INV_VIA_IN if inv_in else 0) | (IPT_INV_VIA_OUT if inv_out else 0))
    head = _IPT_IP.pack(src, dst, smsk, dmsk, iniface, outiface, inmask, outmask,
                        _PROTO_NUMBERS[proto] if proto else 0, 0, invflags)
    body = b"".join(matches)
    target_offset = _ENTRY_SIZE + len(body)
    return (head + _ENTRY_TAIL.pack(0, target_offset, target_offset + len(target), 0)
            + body + target)


def jump_entry(chain):
    """The raw entry of ``-j CHAIN`` with no match (our jump from a built-in chain)."""
    return _entry({}, [], _module(chain.encode("ascii"), 0, _VERDICT.pack(0)))


def encode_rule(spec):
    """The raw ipt_entry (bytes) of a core.rules.RuleSpec, as ``iptables -A`` makes it:
    the same matches in the same order (addrtype, tcp/udp, conntrack, comment) and the
    same revisions python-iptables picks on the kernels of Dom0 (addrtype 1, conntrack
    3, DNAT 2). decode_entry reads it back as core.rules.match_of(spec)."""
    matches = []
    if spec.dst_type:
        inverted = spec.dst_type.startswith("!")
        bits = 0
        for name in spec.dst_type.lstrip("!").split(","):
            bits |= 1 << _ADDRTYPES.index(name)
        matches.append(_module(b"addrtype", 1, _ADDRTYPE_V1.pack(0, bits, 0x2 if inverted
                                                                  else 0)))
    if spec.dport is not None:
        port = int(spec.dport)
        if spec.proto == "tcp":
            data = _TCP.pack(0, 0xFFFF, port, port, 0, 0, 0, 0)
        else:
            data = _UDP.pack(0, 0xFFFF, port, port, 0)
        matches.append(_module(spec.proto.encode("ascii"), 0, data))
    if spec.ctstate:
        mask = 0
        for state in spec.ctstate.split(","):
            mask |= _CTSTATES[state]
        matches.append(_module(b"conntrack", 3, _CONNTRACK_V3.pack(XT_CONNTRACK_STATE, 0,
                                                                   mask, 0)))
    comment = spec.key.encode("utf-8")
    if len(comment) >= _COMMENT_SIZE:
        raise KernelError("iptables: the rule comment %r is too long" % spec.key)
    matches.append(_module(_COMMENT, 0, comment.ljust(_COMMENT_SIZE, b"\0")))
    if spec.target == "MASQUERADE":
        target = _module(b"MASQUERADE", 0, _MASQUERADE.pack(1, 0, b"\0" * 4, b"\0" * 4, 0, 0))
    elif spec.target == "DNAT":
        address, _colon, port = spec.to_destination.partition(":")
        ip = socket.inet_aton(address).ljust(16, b"\0")
        flags = NF_NAT_RANGE_MAP_IPS | (NF_NAT_RANGE_PROTO_SPECIFIED if port else 0)
        port = struct.pack("!H", int(port)) if port else b"\0\0"
        target = _module(b"DNAT", 2, _NAT_RANGE2.pack(flags, ip, ip, port, port, b"\0\0"))
    else:  # a standard verdict (ACCEPT...) or a chain: libiptc resolves the name
        target = _module(spec.target.encode("ascii"), 0, _VERDICT.pack(0))
    return _entry({"src": spec.src, "dst": spec.dst, "in_iface": spec.in_iface,
                   "out_iface": spec.out_iface, "proto": spec.proto}, matches, target)

# getsockopt(SOL_IP) on a raw socket, as libiptc reads a table (linux/netfilter_ipv4/
# ip_tables.h): IPT_SO_GET_INFO fills struct ipt_getinfo (name[32], valid_hooks,
# hook_entry[5], underflow[5], num_entries, size); IPT_SO_GET_ENTRIES fills struct
# ipt_get_entries (name[32], size, then the entries, 8-byte aligned) with ``size`` bytes.
IPT_SO_GET_INFO, IPT_SO_GET_ENTRIES = 64, 65
_GETINFO = struct.Struct("=32sI5I5III")
_GET_ENTRIES_HEAD = 40
# struct ipt_entry: ipt_ip, nfcache (u32), target_offset, next_offset (u16), comefrom
# (u32), then struct xt_counters (two u64) that change with every packet.
_TARGET_OFFSET_AT = _IPT_IP.size + 4
_NEXT_OFFSET_AT = _IPT_IP.size + 6
_OFFSETS = struct.Struct("=HH")
_COUNTERS_AT = _IPT_IP.size + 12
# The decoding cache's key of an entry (Iptables._decode): ipt_ip and both offsets, the
# target (a standard one's header only: its verdict is a jump offset that moves with the
# table), then the matches without their trailing zeros (the comment's 256-byte field is
# mostly padding: ~220 bytes less a rule, ~0.7 MB at 1,000 gateways, for ~0.3 us a rule
# of a walk). The offsets keep it exact: they give the target's and the matches' lengths
# back, and a standard target is told from another by its empty name.
_KEY_FIXED = _IPT_IP.size + 8
# MAP_POPULATE (Linux; mmap.MAP_POPULATE from Python 3.10) faults the buffer's pages in
# with the mapping, in one go: ~3x cheaper than faulting them one by one as the kernel
# copies the table
_MAP_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0x8000)
_getsockopt = _libc.getsockopt
_getsockopt.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                        ctypes.POINTER(ctypes.c_uint32))


class TableReader(object):
    """Reads a table's entries straight from the kernel, for ``fingerprint``.

    The digest covers every byte of every entry but its counters, which are zeroed in the
    copy first. Zeroing them one entry at a time was a Python loop over every entry
    (~1.5 ms for 3,000); instead the counters' places are grouped into arithmetic
    progressions (the entries of one size: a chain of rules of the same shape is one
    progression) and each progression is zeroed by one strided slice assignment. The
    places come from the table's layout at the last reading: when the table kept its
    size and entry count they are used as they are, and a digest equal to the last one
    proves the layout unchanged (the first entry's next_offset is outside the zeroed
    places, so it is the same, and so on for each entry); any other digest makes the
    reader read the table again and work the layout out anew."""

    # A table whose entries take at most this many bytes is read into a buffer kept for
    # it: after the daemon was idle for a while, mapping and faulting in fresh pages for
    # a table of 50 gateways took ~0.15 ms of a new bridge's latency (2 tables: 0.3 ms).
    # A larger one (1,000 gateways: ~0.7 MB a table) gets a mapping of its own, unmapped
    # after the digest, so that it is not resident between two checks.
    KEPT = 64 * 1024

    def __init__(self):
        self._sock = None
        self._layouts = {}   # table -> ((size, entries), counter places, digest) of the last
        self._kept = {}      # table -> bytearray for its entries while it is small

    def _fd(self):
        """The raw socket, opened once and kept (a round needs no new descriptor)."""
        if self._sock is None:
            try:
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                           socket.IPPROTO_RAW)
            except OSError as exc:
                raise KernelError("iptables: cannot open a raw socket to read the table: %s"
                                  % (exc.strerror or exc), errno=exc.errno)
        return self._sock.fileno()

    def _get(self, optname, buf):
        size = ctypes.c_uint32(len(buf))
        if _getsockopt(self._fd(), socket.SOL_IP, optname, buf, ctypes.byref(size)) != 0:
            err = ctypes.get_errno()
            raise KernelError("iptables: reading the table failed: %s" % os.strerror(err),
                              errno=err)
        return size.value

    def _read(self, name):
        """(size, entry count, buffer whose entries start at _GET_ENTRIES_HEAD)."""
        info = ctypes.create_string_buffer(name, _GETINFO.size)
        self._get(IPT_SO_GET_INFO, info)
        fields = _GETINFO.unpack(info.raw)
        num_entries, size = fields[-2], fields[-1]
        buf = self._entries(name, size)
        if buf is None:   # replaced by a table of another size in between
            raise TransientKernelError("iptables: the table changed while it was read",
                                       errno=errno.EAGAIN)
        return size, num_entries, buf

    def _entries(self, name, size):
        """A buffer whose entries (``size`` bytes of them) start at _GET_ENTRIES_HEAD, or
        None when the table's entries no longer take ``size`` bytes (the kernel says
        EAGAIN)."""
        total = _GET_ENTRIES_HEAD + size
        if size <= self.KEPT:
            buf = self._kept.get(name)
            if buf is None or len(buf) < total:
                buf = self._kept[name] = bytearray(max(total, 4096))
        else:
            self._kept.pop(name, None)
            # An anonymous mapping, unmapped when the caller drops it: malloc would keep
            # the ~1.4 MB of 1,000 gateways' tables resident between two checks (its
            # chunks lie under objects made later), for ~0.3 ms of page faults a check less.
            buf = mmap.mmap(-1, total, flags=_MAP_FLAGS)
        # exactly the header and the entries: the kernel refuses any other length
        view = (ctypes.c_char * total).from_buffer(buf)
        if isinstance(buf, bytearray):
            # the kernel leaves some bytes of an entry as it finds them (padding): zeroed
            # first, a kept buffer holds what fresh memory would (the digest covers them)
            ctypes.memset(view, 0, total)
        struct.pack_into("=32sI", buf, 0, name, size)
        try:
            self._get(IPT_SO_GET_ENTRIES, view)
        except KernelError as exc:
            if exc.details.get("errno") == errno.EAGAIN:
                return None
            raise
        finally:
            del view   # the mapping can be closed once nothing exports it
        return buf

    def fingerprint(self, table_name, changed=False):
        """(size, entry count, digest of the entries without their counters: ``_digest``)
        of ``table_name`` as the kernel holds it now.

        When the table was read before, its entries are asked for at the size they had
        then, in one request: the kernel answers EAGAIN when the size is another, and an
        unchanged digest means the same entries (so the same count). Otherwise (and the
        first time) the size and count are asked for first, and the layout worked out;
        ``changed`` says the caller knows the table changed (it just committed it)."""
        name = table_name.encode("ascii")
        last = None if changed else self._layouts.get(table_name)
        if last is not None:
            size, num_entries = last[0]
            buf = self._entries(name, size)
            if buf is not None and _digest(buf, size, last[1], size <= self.KEPT) == last[2]:
                return size, num_entries, last[2]
            # another size, or zeroed at the old places: read anew
        size, num_entries, buf = self._read(name)
        places = _counter_places(table_name, buf, size)
        digest = _digest(buf, size, places, size <= self.KEPT)
        self._layouts[table_name] = ((size, num_entries), places, digest)
        return size, num_entries, digest

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _counter_places(table_name, buf, size):
    """Where the counters of each entry are, in 8-byte words from the first entry, as
    (start, stop, step, zeros) slices: arithmetic progressions of the entries of one size
    (each entry has two words of counters: the slice and the one after it)."""
    next_at = struct.Struct("=H").unpack_from
    by_size = {}
    offset = 0
    while offset < size:
        step = next_at(buf, _GET_ENTRIES_HEAD + offset + _NEXT_OFFSET_AT)[0]
        if step < _ENTRY_SIZE or step % 8:
            raise KernelError("iptables %s: malformed entry at %d" % (table_name, offset))
        by_size.setdefault(step, []).append((offset + _COUNTERS_AT) // 8)
        offset += step
    places = []
    for words in by_size.values():
        i = 0
        while i < len(words):
            j = i
            if i + 1 < len(words):
                d = words[i + 1] - words[i]
                j = i + 1
                while j + 1 < len(words) and words[j + 1] - words[j] == d:
                    j += 1
            else:
                d = 1
            count = j - i + 1
            places.append((words[i], words[j] + 1, d, array.array("Q", bytes(8 * count))))
            i = j + 1
    return places


def _digest(buf, size, places, exact):
    """The entries in ``buf`` with the counter words at ``places`` zeroed: a copy of them
    when ``exact`` (a table of at most TableReader.KEPT bytes), else a 64-bit keyed hash
    of them.

    A small table's digest is its entries themselves: the copy and the comparison with
    the last one cost ~2.5 us for the 57 KB of 50 gateways' filter table, where SHA-1
    took ~33 us (both tables are read at each new bridge, on its latency). A copy of a
    large one would stay resident (~1.4 MB at 1,000 gateways): it gets the interpreter's
    own hash of bytes (SipHash, keyed anew in each process, so that no edit can be made
    to collide on purpose), 0.35 ms for the 1.5 MB of 1,000 gateways' tables where SHA-1
    took 0.83 ms of each idle check. Python 3.6 and 3.7 cannot hash a buffer without
    copying it (memoryview.toreadonly is 3.8+): SHA-1 there."""
    entries = memoryview(buf).cast("B")[_GET_ENTRIES_HEAD:_GET_ENTRIES_HEAD + size]
    words = entries.cast("Q")
    for start, stop, step, zeros in places:
        words[start:stop:step] = zeros
        words[start + 1:stop + 1:step] = zeros
    if exact:
        return entries.tobytes()
    if _READONLY is not None:
        return hash(_READONLY(entries))
    return hashlib.sha1(entries).digest()


_READONLY = getattr(memoryview, "toreadonly", None)   # Python 3.8+


class XtablesLock(object):
    """flock on the iptables lock file (``iptables -w`` waits on the same lock).

    The file stays open between rounds: a round must never need a new descriptor to take
    the lock (a flood of connections to the API could have used them all). It is opened
    again only when the path names another file (removed and made anew)."""

    def __init__(self, path, timeout=10.0):
        self.path = path
        self.timeout = timeout
        self.polled = None   # monotonic time of the last try to take the lock
        self._fd = None      # open file while we hold the lock
        self._file = None    # the open lock file, kept

    def _open(self):
        fd = self._file
        if fd is not None:
            try:
                now, kept = os.stat(self.path), os.fstat(fd)
                if (now.st_dev, now.st_ino) == (kept.st_dev, kept.st_ino):
                    return fd
            except OSError:
                pass
            self.close()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                         0o600)
        except OSError as exc:
            raise KernelError("cannot open the xtables lock %s: %s"
                              % (self.path, exc.strerror or exc), path=self.path)
        self._file = fd
        return fd

    def close(self):
        fd, self._file = self._file, None
        if fd is not None:
            os.close(fd)

    def __enter__(self):
        fd = self._open()
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            self.polled = time.monotonic()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise KernelError("cannot lock %s: %s" % (self.path, exc.strerror))
                if time.monotonic() >= deadline:
                    raise LockTimeout("the xtables lock %s stayed taken for %.1f s"
                                      % (self.path, self.timeout), path=self.path)
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        self._fd = fd
        return self

    def __exit__(self, *exc_info):
        fd, self._fd = self._fd, None
        self.polled = None
        fcntl.flock(fd, fcntl.LOCK_UN)


class Iptables(object):
    """Observe and change the daemon's chains. Use from one thread only."""

    def __init__(self):
        self.commits = 0  # how many commits this adapter made (for status and benchmarks)
        # table -> {raw entry head -> (comment, match)} of the rules seen by the last
        # observe: rules rarely change, and what is gone is forgotten (a re-added rule's
        # bytes may differ, so a cache of every head ever seen grew by megabytes an hour)
        self._decoded = {}
        self.walks = 0    # how many observations walked a table (for benchmarks)
        self._reader = TableReader()
        self._seen = {}   # table -> (fingerprint, observation) of the last walk
        # table -> the observation once this round's commit is in, when the commit only
        # appended rules to chains the observation has (``settle``), else None
        self._after = {}
        # table -> monotonic time until which a settled observation stands in for a walk
        self._settled = {}
        self.clock = time.monotonic
        # tables whose libiptc copy is used up (committed) or was never loaded: loaded
        # again before the next apply. A copy loaded by the walk behind the last
        # observation and not committed since is the table the fingerprint describes.
        self._stale = set(rulesmod.TABLES)
        self._tables = {}    # table name -> libiptc.Table
        self._names = {}     # a target's name as libiptc gives it (bytes) -> str

    # ---- observation -------------------------------------------------------------------
    def observe(self, table_name):
        """{chain: [RuleView]} for our chains of ``table_name`` (those that exist) and
        the built-in chains that jump to them.

        Reads the table from the kernel first; call under the xtables lock when the
        observation is going to be followed by ``apply``. When the table's fingerprint
        is the one of the last walk, that walk's observation is returned (the caller
        must not change it).
        """
        self._after.pop(table_name, None)
        fingerprint = self._reader.fingerprint(table_name)
        last = self._seen.get(table_name)
        if last is not None and last[0] == fingerprint:
            until = self._settled.get(table_name)
            if until is None or self.clock() < until:
                return last[1]
            # a settled observation has stood in long enough: walk once to confirm it
        self._settled.pop(table_name, None)
        table = self._table(table_name)
        table.refresh()
        self._stale.discard(table_name)
        self.walks += 1
        chains = {}
        known, seen = self._decoded.get(table_name, {}), {}
        for t, builtin, chain in rulesmod.OWN_CHAINS:
            if t != table_name:
                continue
            chains[builtin] = self._walk(table, builtin, known, seen)
            if table.is_chain(chain):
                chains[chain] = self._walk(table, chain, known, seen)
        self._decoded[table_name] = seen
        # The fingerprint read before the walk: a change in between makes the next
        # check walk again, never the reverse.
        self._seen[table_name] = (fingerprint, chains)
        return chains

    def _walk(self, table, chain, known=None, seen=None):
        views = []
        entry = table.first_rule(chain)
        position = 0
        names = self._names
        while entry:
            target = table.get_target(entry)
            if target:
                # one str per target name (a handful), not one per rule
                name = names.get(target)
                if name is None:
                    if len(names) > 1024:
                        names.clear()
                    name = names[target] = target.decode("ascii", "replace")
                target = name
            else:
                target = None
            comment, match = self._decode(entry, known or {}, {} if seen is None else seen)
            views.append(P.RuleView(position, comment, target, match))
            position += 1
            entry = table.next_rule(entry)
        return views

    def _decode(self, entry, known, seen):
        """(comment, core.rules.match_of tuple) of a raw entry (its address in libiptc's
        copy), looked up in ``known`` and kept in ``seen`` by its bytes:
        addresses, interfaces, matches and an extension target's data, not the counters
        (nor a standard target's verdict, a jump offset that moves with the table)."""
        target_offset, next_offset = _OFFSETS.unpack(
            ctypes.string_at(entry + _TARGET_OFFSET_AT, _OFFSETS.size))
        raw = ctypes.string_at(entry, next_offset)
        standard = raw[target_offset + 2:target_offset + 3] in (b"", b"\0")
        head = (raw[:_KEY_FIXED] + raw[target_offset:target_offset + _TARGET_HEADER
                                       if standard else None]
                + raw[_ENTRY_SIZE:target_offset].rstrip(b"\0"))
        decoded = seen.get(head) or known.get(head)
        if decoded is None:
            decoded = decode_entry(raw, target_offset)
        seen[head] = decoded
        return decoded

    # ---- changes -----------------------------------------------------------------------
    def apply(self, table_name, ops):
        """Apply ``ops`` (planner operations of this table) in one commit.

        Must follow ``observe(table_name)`` in the same locked section: positions in the
        operations refer to that observation. Raises TransientKernelError when another
        writer changed the table since (EAGAIN), KernelError otherwise. ``settle``, in
        the same locked section, spares the next observe the walk of what it committed.
        """
        self._after.pop(table_name, None)
        if not ops:
            return
        table = self._table(table_name)
        if table_name in self._stale:
            # the copy is used up: load the table the observation described (a change
            # since makes the fingerprints differ, and the round start again). A copy the
            # walk loaded and nothing committed or released since needs neither: the
            # fingerprint read before that walk and the one of this round's observe are
            # the same, so the table the copy holds is the one observed (~0.1 ms per
            # table at 50 gateways; ``release`` ends each copy with its round, though)
            table.refresh()
            self._stale.discard(table_name)
            seen = self._seen.get(table_name)
            if seen is None or self._reader.fingerprint(table_name) != seen[0]:
                raise TransientKernelError("iptables %s changed under us" % table_name,
                                           table=table_name)
        appended = []   # (chain, target, raw entry) while the ops are appends alone
        try:
            for op in ops:
                if isinstance(op, P.AddRule):
                    raw = encode_rule(op.spec)
                    table.append_entry(op.chain, raw)
                    if appended is not None:
                        appended.append((op.chain, op.spec.target, raw))
                    continue
                appended = None
                if isinstance(op, P.EnsureChain):
                    if not table.is_chain(op.chain):
                        table.create_chain(op.chain)
                elif isinstance(op, P.FixJump):
                    for position in op.delete:
                        table.delete_num_entry(op.builtin, position)
                    table.insert_entry(op.builtin, jump_entry(op.chain), 0)
                elif isinstance(op, P.DeleteRule):
                    table.delete_num_entry(op.chain, op.position)
                elif isinstance(op, P.RemoveChain):
                    for position in op.delete:
                        table.delete_num_entry(op.builtin, position)
                    table.flush_entries(op.chain)
                    table.delete_chain(op.chain)
                else:
                    raise TypeError("not an iptables operation: %r" % (op,))
        except libiptc.LibiptcError as exc:
            table.refresh()  # drop the half-built change
            self._stale.add(table_name)
            raise KernelError("iptables %s: %s" % (table_name, exc), table=table_name)
        self._commit(table, table_name)
        self._after[table_name] = self._appended(table_name, appended)

    def _appended(self, table_name, appended):
        """The observation a walk of ``table_name`` would give now that ``appended``
        ((chain, target, raw entry), in order) were appended to the observation the
        commit was planned on, or None (other operations, or a chain it does not have)."""
        last = self._seen.get(table_name)
        if not appended or last is None:
            return None
        chains = dict(last[1])
        for chain, target, raw in appended:
            views = chains.get(chain)
            if views is None:
                return None
            if views is last[1][chain]:
                views = chains[chain] = list(views)
            comment, match = decode_entry(raw, _OFFSETS.unpack_from(raw, _TARGET_OFFSET_AT)[0])
            views.append(P.RuleView(len(views), comment, target, match))
        return chains

    # A settled observation stands in for a walk this long at the most; the first
    # observe after it walks once to confirm it (``confirm`` does sooner, when idle).
    SETTLED = 1.0

    def settle(self):
        """Right after this round's commits, under the same xtables lock: a table whose
        commit only appended rules gets its fingerprint read now and the observation a
        walk would give (the one the commit was planned on, with those rules), so that
        the next observe (the round the daemon's own events bring, the next bridge of a
        burst) finds it unchanged and walks nothing: ~0.7 ms a table at 50 gateways,
        ~8 ms at 1,000. Any other commit leaves the next observe to walk, as before.

        The fingerprint is read after the state it stands for: a writer that ignores the
        xtables lock (python-iptables does) and changes the table in that instant would
        go unseen, where a walk (fingerprint first) can only walk once too often. So the
        observation stands in until ``confirm`` walks the table once the rounds have
        stopped (the Engine's idle release, off any bridge's latency), and for SETTLED
        seconds at the most while they keep coming."""
        after, self._after = self._after, {}
        for table_name, chains in after.items():
            if chains is None:
                continue
            self._seen[table_name] = (self._reader.fingerprint(table_name, changed=True),
                                      chains)
            self._settled[table_name] = self.clock() + self.SETTLED
            # and libiptc's copy loaded again, as a walk leaves it (fingerprint first):
            # the next commit, a new bridge's, then needs no load nor a second
            # fingerprint on its latency (~0.3 ms at 50 gateways)
            self._table(table_name).refresh()
            self._stale.discard(table_name)

    def confirm(self):
        """Walk each table whose observation was settled rather than walked; True when a
        walk found another one (someone changed the table around our commit: the caller
        runs a round). Between rounds; no lock needed, nothing is written."""
        changed = False
        for table_name in list(self._settled):
            settled = self._seen.get(table_name)
            self._settled[table_name] = 0.0   # expired: observe walks
            if settled is None or self.observe(table_name) != settled[1]:
                changed = True
        return changed

    def _commit(self, table, table_name):
        err = table.commit()
        self.commits += 1
        self._stale.add(table_name)   # libiptc's copy is used up, committed or not
        if not err:
            table.free()   # used up by the commit; the next walk (or apply) loads anew
            return
        message = libiptc.strerror(err)
        table.refresh()
        if err == errno.EAGAIN:
            raise TransientKernelError("iptables %s changed under us (EAGAIN)" % table_name,
                                       table=table_name)
        raise KernelError("iptables %s commit failed: %s (errno %d)" % (table_name, message, err),
                          table=table_name, errno=err)

    # ---- removal of everything ---------------------------------------------------------
    def remove_all(self):
        """Remove our jumps and chains from every table (``--cleanup``). Returns a count
        of removed rules (jumps plus rules in our chains)."""
        removed = 0
        for table_name in rulesmod.TABLES:
            table = self._table(table_name)
            table.refresh()
            changed = False
            for t, builtin, chain in rulesmod.OWN_CHAINS:
                if t != table_name:
                    continue
                jumps = [v.position for v in self._walk(table, builtin) if v.target == chain]
                for position in sorted(jumps, reverse=True):
                    table.delete_num_entry(builtin, position)
                    removed += 1
                    changed = True
                if table.is_chain(chain):
                    removed += len(self._walk(table, chain))
                    table.flush_entries(chain)
                    table.delete_chain(chain)
                    changed = True
            if changed:
                self._commit(table, table_name)
        return removed

    def _free(self, table_name):
        table = self._tables.get(table_name)
        if table is not None:
            table.free()
        self._stale.add(table_name)

    def release(self, trim=False):
        """Free libiptc's copies of the tables (the round is over: the next one observes
        again, and a walk or ``apply`` loads what it needs). With ``trim``, when a copy
        was freed, give the freed pages back to the system (malloc_trim): glibc keeps
        them otherwise, the copies' chunks lying under objects made after them, ~3 MB of
        resident memory at 1,000 gateways. The caller asks for it when the round wrote
        nothing: the next round is likely far, and a walk then pays the pages' faults
        again (~0.6 ms for 3,000 rules), the trim itself 0.1-0.3 ms."""
        freed = [name for name, table in self._tables.items() if table.loaded]
        for table_name in freed:
            self._free(table_name)
        if freed and trim:
            heap.trim()

    def _table(self, table_name):
        """This adapter's libiptc copy of ``table_name`` (refresh loads it anew)."""
        table = self._tables.get(table_name)
        if table is None:
            table = self._tables[table_name] = libiptc.Table(table_name)
        return table


def decode_entry(raw, target_offset):
    """(comment, match) of a raw ipt_entry (its bytes up to next_offset): the comment
    text or None, and core.rules.match_of's tuple (src, dst, in_iface, out_iface, proto,
    dport, dst_type, to_destination) in RuleSpec's notation."""
    src, dst, smsk, dmsk, iniface, outiface, _im, _om, proto, _flags, inv = \
        _IPT_IP.unpack_from(raw)
    comment = dport = dst_type = None
    for name, revision, data in _matches(raw, target_offset):
        if name == _COMMENT and comment is None:
            comment = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif name in _INVFLAGS_AT and dport is None:
            dport = _dport(data, data[_INVFLAGS_AT[name]] & _INV_DSTPT)
        elif name == b"addrtype" and dst_type is None:
            dst_type = _addrtype(data, revision)
    return comment, (
        _cidr(src, smsk, inv & IPT_INV_SRCIP), _cidr(dst, dmsk, inv & IPT_INV_DSTIP),
        _iface(iniface, inv & IPT_INV_VIA_IN), _iface(outiface, inv & IPT_INV_VIA_OUT),
        _proto(proto, inv & IPT_INV_PROTO), dport, dst_type, _dnat(raw[target_offset:]))


def _matches(raw, target_offset):
    """(name, revision, data) of each match of a raw ipt_entry."""
    offset = _ENTRY_SIZE
    while offset + _MATCH_HEADER <= target_offset:
        size = struct.unpack_from("=H", raw, offset)[0]
        if size < _MATCH_HEADER:
            return  # malformed; never loop forever
        yield (raw[offset + 2:offset + 31].split(b"\0", 1)[0], raw[offset + 31],
               raw[offset + _MATCH_HEADER:offset + size])
        offset += size


def _proto(number, inverted):
    if number == 0 and not inverted:
        return None
    return ("!" if inverted else "") + _PROTOCOLS.get(number, str(number))


def _dport(data, inverted):
    """The destination port of a tcp/udp match: an int, "LO:HI" for a range, None for
    any port; "!" in front when inverted."""
    if len(data) < _PORTS.size:
        return "?"
    lo, hi = _PORTS.unpack_from(data)[2:]
    if (lo, hi) == (0, 0xFFFF) and not inverted:
        return None
    text = lo if lo == hi else "%d:%d" % (lo, hi)
    return "!%s" % text if inverted else text


def _addrtype(data, revision):
    """The destination types of an addrtype match, "!"-prefixed when inverted."""
    if len(data) < 8:
        return "?"
    dest = struct.unpack_from("=H", data, 2)[0]
    if revision == 0:
        inverted = len(data) >= 12 and struct.unpack_from("=I", data, 8)[0] != 0
    else:
        inverted = bool(struct.unpack_from("=I", data, 4)[0] & 0x2)
    if not dest:
        return None
    names = ",".join(n for bit, n in enumerate(_ADDRTYPES) if dest & (1 << bit))
    return ("!" if inverted else "") + names


def _dnat(target):
    """"ADDRESS:PORT" (or ranges) of a DNAT target, None for any other target."""
    if len(target) < _TARGET_HEADER:
        return None
    if target[2:31].split(b"\0", 1)[0] != b"DNAT":
        return None
    revision, data = target[31], target[_TARGET_HEADER:]
    if revision == 0 and len(data) >= _NAT_V0.size + _NAT_V0_PORTS.size:
        flags, lo_ip, hi_ip = _NAT_V0.unpack_from(data)
        lo_port, hi_port = _NAT_V0_PORTS.unpack_from(data, _NAT_V0.size)
    elif revision in (1, 2) and len(data) >= _NAT_V1.size + _NAT_V1_PORTS.size:
        flags, lo_ip, hi_ip = _NAT_V1.unpack_from(data)
        lo_ip, hi_ip = lo_ip[:4], hi_ip[:4]
        lo_port, hi_port = _NAT_V1_PORTS.unpack_from(data, _NAT_V1.size)
    else:
        return "?"  # a layout we do not know: never equal to what we want
    text = ""
    if flags & NF_NAT_RANGE_MAP_IPS:
        text = socket.inet_ntoa(lo_ip)
        if hi_ip != lo_ip:
            text += "-" + socket.inet_ntoa(hi_ip)
    if flags & NF_NAT_RANGE_PROTO_SPECIFIED:
        text += ":%d" % lo_port + ("-%d" % hi_port if hi_port != lo_port else "")
    others = flags & ~(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED)
    return text + (" flags=0x%x" % others if others else "")


def _cidr(address, mask, inverted):
    prefix = bin(struct.unpack("!I", mask)[0]).count("1")
    if prefix == 0 and not inverted:
        return None
    return "%s%s/%d" % ("!" if inverted else "", socket.inet_ntoa(address), prefix)


def _iface(name, inverted):
    name = name.split(b"\0", 1)[0].decode("ascii", "replace")
    if not name:
        return None
    return ("!" if inverted else "") + name
