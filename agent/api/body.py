"""The one place request bodies are read and parsed: JSON, no deeper than MAX_DEPTH, then
validated against the OpenAPI document's schema. Every refusal is an InvalidInput on the
field ``body`` (400), never a RecursionError: the nesting is measured before the parser
(which recurses) sees the text."""
import json
import re
from itertools import accumulate

from agent.api import openapi
from agent.service.errors import InvalidInput

# The deepest document the API takes (a topology: document, vms, a VM, nics... is 5).
MAX_DEPTH = 32

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def depth(text):
    """How deeply arrays and objects nest in the JSON ``text`` (brackets inside strings do
    not count); linear, without recursion."""
    brackets = _BRACKETS.sub("", _STRINGS.sub("", text))
    return max(accumulate(_STEP[c] for c in brackets), default=0)


def parse(raw, schema_name):
    """The body ``raw`` (bytes) as JSON, checked against the schema ``schema_name``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the body is not valid JSON: %s" % exc, field="body")
    deepest = depth(text)
    if deepest > MAX_DEPTH:
        raise InvalidInput("the body nests arrays and objects %d deep; the API takes at most "
                           "%d" % (deepest, MAX_DEPTH), field="body", max_depth=MAX_DEPTH)
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise InvalidInput("the body is not valid JSON: %s" % exc, field="body")
    try:
        openapi.validate(openapi.SCHEMAS[schema_name], body)
    except openapi.Invalid as exc:
        raise InvalidInput(str(exc), field=exc.field)
    return body
