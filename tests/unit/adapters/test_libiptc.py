"""Loading libip4tc: the usual sonames first; ctypes.util's search (ldconfig) only when
none of them loads."""
import pytest

from agent.adapters import libiptc
from agent.errors import KernelError


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(libiptc, "_lib", None)
    return monkeypatch


def test_a_usual_name_loads_without_searching(fresh):
    import ctypes.util
    fresh.setattr(ctypes.util, "find_library",
                  lambda name: pytest.fail("searched although a usual name loads"))
    try:
        lib = libiptc.library()
    except KernelError as exc:  # a host without iptables-legacy's library
        pytest.skip(str(exc))
    assert lib.iptc_init is not None


def test_the_search_finds_it_under_another_name(fresh):
    fresh.setattr(libiptc, "_NAMES", ("libip4tc-not-here.so.9",))
    import ctypes.util
    if ctypes.util.find_library("ip4tc") is None:
        pytest.skip("libip4tc is not installed here")
    assert libiptc.library().iptc_commit is not None


def test_none_found_is_a_clear_error(fresh):
    fresh.setattr(libiptc, "_NAMES", ("libip4tc-not-here.so.9",))
    import ctypes.util
    fresh.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(KernelError, match="libip4tc-not-here.so.9"):
        libiptc.library()
