"""agent.adapters.sysctl: ip_forward read through a descriptor kept open."""
import os

import pytest

from agent.adapters.sysctl import Sysctl
from agent.errors import KernelError


def test_each_read_sees_the_current_value_and_a_failure_is_clear(tmp_path):
    path = str(tmp_path / "ip_forward")
    with open(path, "w") as f:
        f.write("1\n")
    sysctl = Sysctl(path)
    assert sysctl.ip_forward() is True
    with open(path, "w") as f:   # rewritten in place, as the kernel's file is
        f.write("0\n")
    assert sysctl.ip_forward() is False
    sysctl.set_ip_forward(True)
    assert sysctl.ip_forward() is True
    sysctl.close()
    os.remove(path)
    with pytest.raises(KernelError, match="cannot read .*ip_forward"):
        sysctl.ip_forward()
    with open(path, "w") as f:   # back: the next read opens it anew
        f.write("0\n")
    assert sysctl.ip_forward() is False


def test_the_kernels_own_file_reads_twice_through_one_descriptor():
    sysctl = Sysctl()
    first = sysctl.ip_forward()
    fd = sysctl._fd
    assert sysctl.ip_forward() is first and sysctl._fd == fd
    sysctl.close()
