"""Errors of the service layer; the API maps each class to one HTTP status."""
from agent.errors import AgentError


class InvalidInput(AgentError):
    """A request value is wrong (400); ``details['field']`` names it."""
    code = "invalid_input"


class NotFound(AgentError):
    """The named object does not exist (404)."""
    code = "not_found"


class Conflict(AgentError):
    """The request conflicts with what exists: name taken, subnet overlap, in use (409)."""
    code = "conflict"


class XapiUnavailable(AgentError):
    """XAPI cannot be reached, or the connection was lost during a step (503); what the
    request had created is rolled back, at the latest once XAPI answers again."""
    code = "xapi_unavailable"


class XapiTimeout(XapiUnavailable):
    """XAPI did not answer a call within its timeout ([xapi] timeout): hung or overloaded
    (503)."""
    code = "xapi_timeout"


class XapiCallFailed(AgentError):
    """XAPI refused a step; everything the operation had created was undone (502)."""
    code = "xapi_error"


class Busy(AgentError):
    """Another change to the same XAPI pool held its lock for too long (503)."""
    code = "busy"
