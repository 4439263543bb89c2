"""IPv4 forwarding through /proc/sys (per network namespace, like the kernel's own)."""
import io

from agent.errors import KernelError

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


class Sysctl(object):
    def __init__(self, path=IP_FORWARD):
        self.path = path

    def ip_forward(self):
        try:
            with io.open(self.path) as f:
                return f.read().strip() == "1"
        except (IOError, OSError) as exc:
            raise KernelError("cannot read %s: %s" % (self.path, exc.strerror))

    def set_ip_forward(self, enabled):
        try:
            with io.open(self.path, "w") as f:
                f.write(u"1\n" if enabled else u"0\n")
        except (IOError, OSError) as exc:
            raise KernelError("cannot write %s: %s" % (self.path, exc.strerror))
