"""Answers made once per published object, and conditional GETs (ETag, If-None-Match).

The reconciler publishes the gateways' statuses as a tuple it never changes, and a round
that changes no status publishes the same tuple again. What the API derives from it (the
JSON body of /v1/gateways, the counts by state of /v1/health) is therefore made once per
tuple (``Memo``) and served from memory until a round publishes another one: a request
costs the same with 1 or 1,000 gateways.

A rendered body carries a strong ETag, a digest of its bytes: it changes exactly when the
body changes (a new tuple with the same content gives the same ETag). A client that sends
it back in If-None-Match gets 304 Not Modified and no body. Authentication runs before any
handler (agent.api.middleware), so an unauthenticated client learns nothing, not even
whether the content changed.
"""
import hashlib
import json

from aiohttp import web

_NOTHING = object()


class Memo(object):
    """``memo(source)`` is ``make(source)``, made again only when ``source`` is another
    object than the last one (identity: the source must never change in place)."""

    def __init__(self, make):
        self._make = make
        self._source = _NOTHING
        self._value = None

    def __call__(self, source):
        if source is not self._source:
            self._value = self._make(source)
            self._source = source
        return self._value


class Body(object):
    """A rendered JSON answer: its bytes and their strong ETag."""
    __slots__ = ("data", "etag")

    def __init__(self, data):
        self.data = data
        self.etag = '"%s"' % hashlib.sha256(data).hexdigest()[:32]


def dumps(value):
    """The API's JSON text (every answer looks alike: indented by one space)."""
    return json.dumps(value, indent=1)


def render(value):
    return Body(dumps(value).encode("utf-8"))


def none_match(header, etag):
    """Whether an If-None-Match ``header`` names ``etag`` (or is ``*``), with the weak
    comparison RFC 9110 prescribes for it (W/"x" names "x")."""
    if header.strip() == "*":
        return True
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def answer(request, body):
    """200 with ``body`` (a Body) and its ETag, or 304 without a body when the request's
    If-None-Match names it."""
    header = request.headers.get("If-None-Match")
    if header is not None and none_match(header, body.etag):
        return web.Response(status=304, headers={"ETag": body.etag})
    return web.Response(body=body.data, content_type="application/json", charset="utf-8",
                        headers={"ETag": body.etag})
