"""libiptc (libip4tc), the library the iptables-legacy binaries use, through ctypes.

The iptables adapter needs a dozen of its calls: load a table, walk a chain's entries,
append, insert and delete raw entries, create and delete a chain, commit. python-iptables
offers them too, but importing it (libxtables, its extension parsers, setuptools'
pkg_resources) took ~0.3 s of every start and ~10 MB; the rules are built as raw entries
by the adapter anyway (``iptables.encode_rule``), so nothing of libxtables is needed.
"""
import ctypes
import errno
import logging
import os
import subprocess

from agent.errors import KernelError

log = logging.getLogger(__name__)

_NAMES = ("libip4tc.so.2", "libip4tc.so", "libip4tc.so.0", "libiptc.so.0")
_lib = None


class LibiptcError(Exception):
    """A libiptc call failed; ``errno`` is what it left in errno."""

    def __init__(self, message, err):
        super(LibiptcError, self).__init__(message)
        self.errno = err


def library():
    """The loaded libip4tc, its functions' types declared (loaded on first use)."""
    global _lib
    if _lib is not None:
        return _lib
    lib, tried = None, list(_NAMES)
    for name in _NAMES + (None,):
        if name is None:
            # ctypes.util (~5 ms to import) runs ldconfig -p (~3 ms): only when no usual
            # name loads
            from ctypes.util import find_library
            name = find_library("ip4tc")
            if name is None:
                break
        try:
            lib = ctypes.CDLL(name, use_errno=True)
            break
        except OSError:
            continue
    if lib is None:
        raise KernelError("iptables: libip4tc (the iptables-legacy library) not found "
                          "(tried %s)" % ", ".join(tried))
    handle, entry, name = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p
    for func, restype, argtypes in (
            ("iptc_init", handle, (name,)),
            ("iptc_free", None, (handle,)),
            ("iptc_is_chain", ctypes.c_int, (name, handle)),
            ("iptc_first_rule", entry, (name, handle)),
            ("iptc_next_rule", entry, (entry, handle)),
            ("iptc_get_target", name, (entry, handle)),
            ("iptc_append_entry", ctypes.c_int, (name, entry, handle)),
            ("iptc_insert_entry", ctypes.c_int, (name, entry, ctypes.c_uint, handle)),
            ("iptc_delete_num_entry", ctypes.c_int, (name, ctypes.c_uint, handle)),
            ("iptc_flush_entries", ctypes.c_int, (name, handle)),
            ("iptc_create_chain", ctypes.c_int, (name, handle)),
            ("iptc_delete_chain", ctypes.c_int, (name, handle)),
            ("iptc_commit", ctypes.c_int, (handle,)),
            ("iptc_strerror", name, (ctypes.c_int,))):
        function = getattr(lib, func)
        function.restype = restype
        function.argtypes = argtypes
    _lib = lib
    return lib


def strerror(err):
    message = library().iptc_strerror(err)
    return message.decode("utf-8", "replace") if message else os.strerror(err)


class Table(object):
    """One table's libiptc copy: loaded by ``refresh``, changed in memory, written to the
    kernel by ``commit``. Use from one thread only."""

    def __init__(self, name):
        self.name = name
        self._bname = name.encode("ascii")
        self._lib = library()
        self._handle = None

    def _check(self, ok, what):
        if not ok:
            err = ctypes.get_errno()
            raise LibiptcError("%s: %s" % (what, strerror(err)), err)

    def refresh(self):
        """Load the table as the kernel holds it now (dropping any change not committed)."""
        self.free()
        handle = self._lib.iptc_init(self._bname)
        if not handle and ctypes.get_errno() in (errno.ENOPROTOOPT, errno.ENOENT):
            _load_module()  # ip_tables not loaded yet: what python-iptables did at import
            handle = self._lib.iptc_init(self._bname)
        self._check(handle, "cannot load the %s table" % self.name)
        self._handle = handle

    @property
    def loaded(self):
        return self._handle is not None

    def free(self):
        handle, self._handle = self._handle, None
        if handle:
            self._lib.iptc_free(handle)

    def is_chain(self, chain):
        return bool(self._lib.iptc_is_chain(chain.encode(), self._handle))

    def first_rule(self, chain):
        """Address of the chain's first entry, or None."""
        return self._lib.iptc_first_rule(chain.encode(), self._handle)

    def next_rule(self, entry):
        return self._lib.iptc_next_rule(entry, self._handle)

    def get_target(self, entry):
        """The entry's target name as libiptc shows it (a chain, ACCEPT...), bytes."""
        return self._lib.iptc_get_target(entry, self._handle)

    def append_entry(self, chain, entry):
        """Append a raw ipt_entry (bytes; libiptc copies it)."""
        self._check(self._lib.iptc_append_entry(chain.encode(), entry, self._handle) == 1,
                    "cannot append a rule to %s" % chain)

    def insert_entry(self, chain, entry, position):
        self._check(self._lib.iptc_insert_entry(chain.encode(), entry, position,
                                                self._handle) == 1,
                    "cannot insert a rule into %s" % chain)

    def delete_num_entry(self, chain, position):
        self._check(self._lib.iptc_delete_num_entry(chain.encode(), position,
                                                    self._handle) == 1,
                    "cannot delete rule %d of %s" % (position, chain))

    def create_chain(self, chain):
        self._check(self._lib.iptc_create_chain(chain.encode(), self._handle) == 1,
                    "cannot create chain %s" % chain)

    def flush_entries(self, chain):
        self._check(self._lib.iptc_flush_entries(chain.encode(), self._handle) == 1,
                    "cannot flush chain %s" % chain)

    def delete_chain(self, chain):
        self._check(self._lib.iptc_delete_chain(chain.encode(), self._handle) == 1,
                    "cannot delete chain %s" % chain)

    def commit(self):
        """Write the table to the kernel; returns 0, or the errno of the failure. The
        copy is used up either way (libiptc's rule): load it again with refresh."""
        ok = self._lib.iptc_commit(self._handle) == 1
        err = 0 if ok else (ctypes.get_errno() or errno.EIO)
        return err


def _load_module():
    """modprobe ip_tables, once, as python-iptables did; a failure is left to the retry."""
    try:
        subprocess.run(["modprobe", "ip_tables"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("modprobe ip_tables: %s", exc)
