"""The edge: what it knows about the visitor, for the consent record and the limits, and
how a URL carries a row's id."""

from __future__ import annotations

from flask import current_app, g, request
from werkzeug.routing import IntegerConverter, Map

from viihde.networks import client_of
from viihde.phone import PhoneError, parse_mobile

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


#: Where ``typed_number`` keeps what it made of the text, with the request it belongs to.
_TYPED = "viihde_typed_number"


def typed_number(text: str) -> str:
    """The mobile number typed as ``text`` in E.164 (``phone.parse_mobile`` with the allowed
    regions), or its PhoneError raised: worked out once per request, for the limits before
    the view and the form in it alike. Kept on ``g`` with the request and the text, since
    requests made inside one app context (a test's) share ``g``."""
    current = request._get_current_object()
    kept = g.get(_TYPED)
    if kept is None or kept[0] is not current or kept[1] != text:
        try:
            kept = (current, text, parse_mobile(text, current_app.config["ALLOWED_REGIONS"]))
        except PhoneError as error:
            kept = (current, text, error)
        setattr(g, _TYPED, kept)
    if isinstance(kept[2], PhoneError):
        raise kept[2]
    return kept[2]
