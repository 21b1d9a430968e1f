"""The audience API for the company's campaign tool: ``GET /api/v1/audience``.

Bearer tokens made by an admin in the console; cursor pagination over the same pages as
``flask audience export``; every page served is audit-logged under the token's name.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from viihde.clock import utcnow
from viihde.extensions import csrf, db
from viihde.models import AuditAction
from viihde.register import api_tokens, audience, audit
from viihde.register.purposes import configured_keys
from viihde.tokens import read_cursor, sign_cursor
from viihde.web.ratelimits import Rule, limited
from viihde.web.request import client_key

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # no cookies here: the bearer token is the authentication

MAX_LIMIT = 1000


def _problem(status: int, code: str, message: str):
    response = jsonify(error=code, message=message)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="viihde"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/audience")
@limited(Rule("120 per minute", "api", client_key), methods=("GET",))
def audience_page():
    """One page of the audience for ``purpose``: numbers, languages, preference links."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    token = api_tokens.authenticate(given.strip(), utcnow()) if scheme == "Bearer" else None
    if token is None:
        return _problem(401, "unauthorized", "A valid bearer token is needed.")
    purpose = request.args.get("purpose", "")
    if purpose not in configured_keys():
        return _problem(400, "bad_purpose", f"purpose is one of {', '.join(configured_keys())}")
    try:
        limit = min(max(int(request.args.get("limit", MAX_LIMIT)), 1), MAX_LIMIT)
    except ValueError:
        return _problem(400, "bad_limit", "limit is a whole number from 1 to 1000")
    after = 0
    if cursor := request.args.get("cursor"):
        position = read_cursor(cursor)
        if position is None:
            return _problem(400, "bad_cursor", "cursor is not one this API gave out")
        if position.get("p") != purpose:
            return _problem(400, "bad_cursor", "cursor belongs to another purpose")
        after = int(position["a"])
    page = audience.page(purpose, after, limit)
    audit.record(
        audit.Actor(f"api:{token.name}"),
        AuditAction.API_AUDIENCE,
        utcnow(),
        detail=f"{purpose} after {after}: {len(page.members)}",
    )
    db.session.commit()
    next_cursor = (
        sign_cursor({"p": purpose, "a": page.next_after}) if page.next_after is not None else None
    )
    response = jsonify(
        purpose=purpose,
        data=[member.as_dict() for member in page.members],
        next_cursor=next_cursor,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
