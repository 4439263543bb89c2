"""iptables through libiptc (python-iptables): legacy x_tables, as in Dom0.

Observation is cheap: instead of python-iptables' Rule objects (about 70 us per rule to
decode), we walk the table's raw entries and read only each rule's target and its
``comment`` match, the daemon's rule identity (see core.rules). Writes build python-iptables
Rule objects and go into one commit per table, under the xtables lock that the iptables
binaries also take, so concurrent ``iptables`` runs cannot interleave with us.
"""
import ctypes
import errno
import fcntl
import logging
import os
import socket
import struct
import time

import iptc

from agent.core import planner as P
from agent.core import rules as rulesmod
from agent.errors import KernelError, LockTimeout, TransientKernelError

log = logging.getLogger(__name__)

_ENTRY_SIZE = ctypes.sizeof(iptc.ip4tc.ipt_entry)
# struct ipt_ip: src, dst, smsk, dmsk, iniface[16], outiface[16], iniface_mask[16],
# outiface_mask[16], proto, flags, invflags
_IPT_IP = struct.Struct("=4s4s4s4s16s16s16s16sHBB")
IPT_INV_VIA_IN, IPT_INV_VIA_OUT, IPT_INV_SRCIP, IPT_INV_DSTIP = 0x01, 0x02, 0x08, 0x10
_MATCH_HEADER = 32            # struct xt_entry_match: u16 size, char name[29], u8 revision
_COMMENT = b"comment"
_libc = ctypes.CDLL(None, use_errno=True)
_errno_location = _libc.__errno_location
_errno_location.restype = ctypes.POINTER(ctypes.c_int)

_TABLE_NAMES = {"nat": iptc.Table.NAT, "filter": iptc.Table.FILTER}


class XtablesLock(object):
    """flock on the iptables lock file (``iptables -w`` waits on the same lock)."""

    def __init__(self, path, timeout=10.0):
        self.path = path
        self.timeout = timeout
        self._fd = None

    def __enter__(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise KernelError("cannot lock %s: %s" % (self.path, exc.strerror))
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout("the xtables lock %s stayed taken for %.0f s"
                                      % (self.path, self.timeout), path=self.path)
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        self._fd = fd
        return self

    def __exit__(self, *exc_info):
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class Iptables(object):
    """Observe and change the daemon's chains. Use from one thread only."""

    def __init__(self):
        self.commits = 0  # how many commits this adapter made (for status and benchmarks)
        self._decoded = {}  # raw entry head -> (comment, match): rules rarely change

    # ---- observation -------------------------------------------------------------------
    def observe(self, table_name):
        """{chain: [RuleView]} for the built-in chain and our chain of ``table_name``.

        Refreshes the table from the kernel first; call under the xtables lock when the
        observation is going to be followed by ``apply``.
        """
        table = self._table(table_name)
        table.refresh()
        chains = {}
        for t, builtin, chain in rulesmod.OWN_CHAINS:
            if t != table_name:
                continue
            chains[builtin] = self._walk(table, builtin)
            if table.is_chain(chain):
                chains[chain] = self._walk(table, chain)
        return chains

    def _walk(self, table, chain):
        views = []
        entry = table.first_rule(chain)
        position = 0
        while entry:
            target = table.get_target(entry)
            target = target.decode("ascii", "replace") if target else None
            comment, match = self._decode(entry)
            views.append(P.RuleView(position, comment, target, match))
            position += 1
            entry = table.next_rule(entry)
        return views

    def _decode(self, entry):
        """(comment, (src, dst, in_iface, out_iface)) of a raw entry, cached by its bytes
        up to the target (addresses, interfaces, matches; not the counters)."""
        raw = ctypes.string_at(ctypes.addressof(entry), entry.target_offset)
        head = raw[:_IPT_IP.size] + raw[_ENTRY_SIZE:]
        decoded = self._decoded.get(head)
        if decoded is None:
            if len(self._decoded) > 50000:
                self._decoded.clear()
            decoded = self._decoded[head] = (_comment_of(raw), _match_of(raw))
        return decoded

    # ---- changes -----------------------------------------------------------------------
    def apply(self, table_name, ops):
        """Apply ``ops`` (planner operations of this table) in one commit.

        Must follow ``observe(table_name)`` in the same locked section: positions in the
        operations refer to that observation. Raises TransientKernelError when another
        writer changed the table since (EAGAIN), KernelError otherwise.
        """
        if not ops:
            return
        table = self._table(table_name)
        try:
            for op in ops:
                if isinstance(op, P.EnsureChain):
                    if not table.is_chain(op.chain):
                        table.create_chain(op.chain)
                elif isinstance(op, P.FixJump):
                    for position in op.delete:
                        self._delete_num(table, op.builtin, position)
                    rule = iptc.Rule()
                    rule.target = iptc.Target(rule, op.chain)
                    iptc.Chain(table, op.builtin).insert_rule(rule, 0)
                elif isinstance(op, P.DeleteRule):
                    self._delete_num(table, op.chain, op.position)
                elif isinstance(op, P.AddRule):
                    iptc.Chain(table, op.chain).append_rule(build_rule(op.spec))
                else:
                    raise TypeError("not an iptables operation: %r" % (op,))
        except iptc.IPTCError as exc:
            table.refresh()  # drop the half-built change
            raise KernelError("iptables %s: %s" % (table_name, exc), table=table_name)
        self._commit(table, table_name)

    def _commit(self, table, table_name):
        rv = table._iptc.iptc_commit(table._handle)
        err = _errno_location()[0]
        self.commits += 1
        if rv == 1:
            return
        message = table._iptc.iptc_strerror(err)
        message = message.decode() if isinstance(message, bytes) else str(message)
        table.refresh()
        if err == errno.EAGAIN:
            raise TransientKernelError("iptables %s changed under us (EAGAIN)" % table_name,
                                       table=table_name)
        raise KernelError("iptables %s commit failed: %s (errno %d)" % (table_name, message, err),
                          table=table_name, errno=err)

    @staticmethod
    def _delete_num(table, chain, position):
        if table._iptc.iptc_delete_num_entry(chain.encode(), position, table._handle) != 1:
            raise iptc.IPTCError("cannot delete rule %d of %s: %s"
                                 % (position, chain, table.strerror()))

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
                    self._delete_num(table, builtin, position)
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

    @staticmethod
    def _table(table_name):
        table = iptc.Table(_TABLE_NAMES[table_name])
        table.autocommit = False
        return table


def build_rule(spec):
    """A new python-iptables Rule for a core.rules.RuleSpec.

    Always a new Rule: python-iptables match objects of the same extension share state,
    so re-using Rule objects across rules let one rule's comment leak into another's.
    """
    rule = iptc.Rule()
    if spec.src:
        rule.src = spec.src
    if spec.dst:
        rule.dst = spec.dst
    if spec.in_iface:
        rule.in_interface = spec.in_iface
    if spec.out_iface:
        rule.out_interface = spec.out_iface
    if spec.ctstate:
        match = rule.create_match("conntrack")
        match.ctstate = spec.ctstate
    match = rule.create_match("comment")
    match.comment = spec.key
    rule.target = iptc.Target(rule, spec.target)
    return rule


def _match_of(raw):
    """(src, dst, in_iface, out_iface) of a raw ipt_entry, in RuleSpec's notation."""
    src, dst, smsk, dmsk, iniface, outiface, _im, _om, _proto, _flags, inv = \
        _IPT_IP.unpack_from(raw)
    return (_cidr(src, smsk, inv & IPT_INV_SRCIP), _cidr(dst, dmsk, inv & IPT_INV_DSTIP),
            _iface(iniface, inv & IPT_INV_VIA_IN), _iface(outiface, inv & IPT_INV_VIA_OUT))


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


def _comment_of(raw):
    """The text of the first ``comment`` match of a raw ipt_entry (its bytes up to the
    target), or None."""
    target_offset = len(raw)
    offset = _ENTRY_SIZE
    while offset + _MATCH_HEADER <= target_offset:
        size = struct.unpack_from("=H", raw, offset)[0]
        if size < _MATCH_HEADER:
            return None  # malformed; never loop forever
        name = raw[offset + 2:offset + 31].split(b"\0", 1)[0]
        if name == _COMMENT:
            text = raw[offset + _MATCH_HEADER:offset + size].split(b"\0", 1)[0]
            return text.decode("utf-8", "replace")
        offset += size
    return None
