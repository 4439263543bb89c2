"""sd_notify without a dependency: READY=1, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1."""
import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier(object):
    def __init__(self, env=None):
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        self.watchdog_usec = None
        if usec and usec.isdigit() and (not pid or pid == str(os.getpid())):
            self.watchdog_usec = int(usec)

    @property
    def enabled(self):
        return self.address is not None

    def watchdog_interval(self):
        """Seconds between pings (half the watchdog timeout), or None."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def notify(self, **fields):
        if not self.address:
            return False
        message = "\n".join("%s=%s" % (k.upper(), v) for k, v in fields.items())
        address = self.address
        if address.startswith("@"):
            address = "\0" + address[1:]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            # Never block the event loop on a notification: if the receiver's queue is
            # full the message is dropped, as libsystemd's sd_notify would fail too.
            sock.setblocking(False)
            sock.sendto(message.encode("utf-8"), address)
            return True
        except (IOError, OSError) as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        finally:
            sock.close()
