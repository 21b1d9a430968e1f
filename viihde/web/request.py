"""The edge: what it knows about the visitor, for the consent record and the limits, and
how a URL carries a row's id."""

from __future__ import annotations

from flask import request
from werkzeug.routing import IntegerConverter, Map

from viihde.networks import client_of

USER_AGENT_LENGTH = 255
#: The largest id an INTEGER column holds (PostgreSQL's int4; SQLite's are wider).
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<id:...>``: a row's id (or its number in a sequence), 1 to ``MAX_ID`` in ASCII
    digits; any other value is a 404 before a query sees it (PostgreSQL would refuse a
    larger number with an error)."""

    regex = r"[0-9]+"  # werkzeug's \d+ also takes fullwidth and other Unicode digits

    def __init__(self, map: Map) -> None:
        super().__init__(map, min=1, max=MAX_ID)


def client_ip() -> str | None:
    """The visitor's address (behind a proxy, ProxyFix makes this the real one)."""
    return request.remote_addr


def client_key() -> str:
    """The visitor as the per-client limits count them: the IPv4 address or IPv6 /64."""
    return client_of(request.remote_addr)


def client_user_agent() -> str | None:
    """The browser's user agent, cut to the column size."""
    return (request.user_agent.string or "")[:USER_AGENT_LENGTH] or None
