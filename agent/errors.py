"""Errors of xapi-gateway: one base class with a stable code, a subclass per condition.

Callers branch on the class (or ``code``), never on the message text. ``details`` carries
machine-readable context (the offending field, the conflicting gateway...) that the API
will put into its error body.
"""


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""

    code = "agent_error"

    def __init__(self, message, **details):
        super(AgentError, self).__init__(message)
        self.message = message
        self.details = details

    def __str__(self):
        return self.message

    def to_dict(self):
        return {"code": self.code, "message": self.message, "details": dict(self.details)}


class ConfigError(AgentError):
    """The configuration file (or one value in it) is invalid."""

    code = "config_invalid"


class GatewayInvalid(AgentError):
    """A gateway definition has a bad value (address, bridge name, boolean...)."""

    code = "gateway_invalid"


class KernelError(AgentError):
    """A netlink, iptables or sysctl operation failed."""

    code = "kernel_error"


class TransientKernelError(KernelError):
    """A kernel operation failed in a way worth retrying at once (EAGAIN on commit...)."""

    code = "kernel_busy"


class NetlinkDumpInterrupted(TransientKernelError):
    """The kernel flagged a netlink dump as inconsistent (NLM_F_DUMP_INTR): the tables
    changed while it was read, so it must be taken again."""

    code = "netlink_dump_interrupted"


class LockTimeout(TransientKernelError):
    """The xtables lock stayed taken by another process for too long."""

    code = "xtables_lock_timeout"


class StateError(AgentError):
    """The daemon's state file could not be read or written."""

    code = "state_error"


class OvsdbUnavailable(AgentError):
    """Open vSwitch's database did not answer on its socket (or answered nonsense)."""

    code = "ovsdb_unavailable"
