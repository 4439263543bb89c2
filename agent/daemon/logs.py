"""Logging: the journal with structured fields under systemd, plain stderr otherwise.

Call sites pass ``extra=reconciler.fields(bridge=..., gateway=..., network=...,
operation=...)``; the journal gets them as BRIDGE=, GATEWAY=, NETWORK= (the XAPI network
uuid of a gateway from XAPI; none for one from the config file) and OPERATION= (so
``journalctl BRIDGE=xapi1`` or ``journalctl NETWORK=<uuid>`` works), stderr gets the
message alone ("LEVEL logger: message" under systemd, whose journal adds the time).
"""
import logging
import os
import sys


class _JournalFields(logging.Filter):
    """Turn ``record.xgw_fields`` into the upper-case attributes JournalHandler sends."""

    def filter(self, record):
        for key, value in (getattr(record, "xgw_fields", None) or {}).items():
            if value is not None:
                setattr(record, key.upper(), str(value))
        return True


class _QuietLibraries(logging.Filter):
    """pyroute2 and asyncio log every netlink message at debug: keep their warnings only."""

    NOISY = ("pyroute2", "asyncio")

    def filter(self, record):
        return record.levelno >= logging.WARNING or not record.name.startswith(self.NOISY)


def setup(level="info", stream=None):
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = None
    if os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"):
        try:
            from systemd.journal import JournalHandler  # systemd-python, optional
            handler = JournalHandler(SYSLOG_IDENTIFIER="xapi-gateway")
            handler.addFilter(_JournalFields())
            handler.setFormatter(logging.Formatter("%(message)s"))
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        if os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"):
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        else:
            handler.setFormatter(logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_QuietLibraries())
    root.addHandler(handler)
    set_level(level)


def set_level(level):
    logging.getLogger().setLevel(getattr(logging, level.upper(), logging.INFO))
