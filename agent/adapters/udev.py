"""Bridge add/remove events from udev (pyudev).

With udevd running, the daemon listens to udev's own broadcast filtered by the tag the
rule in hooks/ puts on ``xapi*`` net devices: udev's BPF filter drops everything else in
the kernel. Without udevd (a minimal container, early boot) it listens to kernel uevents
for the ``net`` subsystem instead. pyudev is imported by ``open``: a daemon with ``udev =
off`` never loads it.
"""
import logging
import os

log = logging.getLogger(__name__)

TAG = "xapi-gateway"
UDEV_CONTROL = "/run/udev/control"


class UdevEvents(object):
    """A non-blocking source of (action, interface name) for network devices."""

    def __init__(self, mode="auto", tag=TAG):
        self.mode = mode
        self.tag = tag
        self.source = None
        self._monitor = None

    def open(self):
        import pyudev
        context = pyudev.Context()
        source = self.mode
        if source == "auto":
            source = "udev" if os.path.exists(UDEV_CONTROL) else "kernel"
        monitor = pyudev.Monitor.from_netlink(context, source=source)
        if source == "udev":
            monitor.filter_by_tag(self.tag)
        monitor.filter_by(subsystem="net")
        monitor.start()
        self._monitor = monitor
        self.source = source
        log.info("listening to %s events for network devices%s", source,
                 " tagged %s" % self.tag if source == "udev" else "")
        return self

    def fileno(self):
        return self._monitor.fileno()

    def drain(self):
        """Every event waiting now, as (action, name); never blocks."""
        events = []
        while True:
            device = self._monitor.poll(timeout=0)
            if device is None:
                return events
            events.append((device.action, device.sys_name))

    def close(self):
        if self._monitor is not None:
            # pyudev has no close(); dropping the monitor closes its socket.
            self._monitor = None
