"""Bearer tokens for the audience API: created and revoked by admins, kept as keyed
hashes, shown in full only once."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from viihde.extensions import db
from viihde.hashing import keyed_hash
from viihde.models import ApiToken, StaffMember

PREFIX = "viihde_"  # recognisable in a leaked config file or a secret scanner


class TokenNameTaken(ValueError):
    """Another token already has this name."""


def create(name: str, created_by: StaffMember | None, now: datetime) -> tuple[ApiToken, str]:
    """A new token: the row, and the token itself (to show once; only its hash is kept).
    No commit: the caller commits it with its audit entry."""
    plain = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name.strip(),
        token_hash=keyed_hash("api-token", plain),
        created_by=created_by,
        created_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(token)
    except IntegrityError:
        raise TokenNameTaken(name) from None
    return token, plain


def authenticate(plain: str, now: datetime) -> ApiToken | None:
    """The live token ``plain`` stands for, if any (marks it used; no commit)."""
    if not plain.startswith(PREFIX):
        return None
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == keyed_hash("api-token", plain))
    )
    if token is None or token.revoked_at is not None:
        return None
    token.last_used_at = now
    return token


def revoke(token_id: int, now: datetime) -> ApiToken | None:
    """Stop a token working at once (kept, for the record; no commit)."""
    token = db.session.get(ApiToken, token_id)
    if token is not None and token.revoked_at is None:
        token.revoked_at = now
    return token


def all_tokens() -> list[ApiToken]:
    return list(db.session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())))
