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


class XapiCallFailed(AgentError):
    """XAPI refused a step; everything the operation had created was undone (502)."""
    code = "xapi_error"
