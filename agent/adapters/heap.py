"""The process's heap: give memory freed in the middle of glibc's heaps back to the system.

glibc returns a freed chunk's pages only from the top of a heap; the chunks of a big
transient structure (libiptc's copy of a table, the start-up's parse of the
configuration) lie under objects made after them and stay resident until
``malloc_trim(0)`` releases every free page of every arena (0.1-0.3 ms). A C library
without it (musl) keeps them: then this does nothing.
"""
import ctypes

_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)


def trim():
    """malloc_trim(0): the free pages of every heap back to the system."""
    if _malloc_trim is not None:
        _malloc_trim(0)
