"""What this browser has shown us, kept in the signed session cookie (no personal data).

- the pending verification (sign-up or step-up) whose code it may type;
- the subscriber whose preference link it opened, with that link's key, so a
  revoked link also ends the sessions it started;
- when it last proved it holds the subscriber's number (a confirmed sign-up or
  step-up code), which unlocks seeing, downloading and erasing the data.

The cookie is Flask's own, its signing serializer built once per app and key.
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import lru_cache

from flask import Flask, current_app, g, session
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf


class SessionCookie(SecureCookieSessionInterface):
    """Flask's signed session cookie. Flask builds its serializer anew twice a request (to
    read the cookie and to write it); here once, until SECRET_KEY or its fallbacks change."""

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        built = app.extensions.get("viihde.session_serializer")
        if built is None or built[0] != keys:
            built = (keys, super().get_signing_serializer(app))
            app.extensions["viihde.session_serializer"] = built
        return built[1]


PENDING = "verification"
LINK = "link"
CONFIRMED = "confirmed"


def remember_pending(verification_id: int) -> None:
    """This browser may type the code of this verification."""
    session[PENDING] = verification_id


def pending_id() -> int | None:
    """The verification whose code this browser may type."""
    value = session.get(PENDING)
    return value if isinstance(value, int) else None


def forget_pending() -> None:
    session.pop(PENDING, None)


def remember_link(subscriber_id: int, link_key: str) -> None:
    """This browser opened the subscriber's link (or confirmed their sign-up)."""
    session[LINK] = {"s": subscriber_id, "k": link_key}


def linked() -> tuple[int, str] | None:
    """The subscriber id and link key this browser holds, if any."""
    link = session.get(LINK)
    if not isinstance(link, dict) or not isinstance(link.get("s"), int):
        return None
    return link["s"], str(link.get("k"))


def remember_confirmation(subscriber_id: int, now: datetime) -> None:
    """This browser proved, just now, that it holds the subscriber's number."""
    session[CONFIRMED] = {"s": subscriber_id, "at": int(now.timestamp())}


def recently_confirmed(subscriber_id: int, now: datetime) -> bool:
    """Did this browser prove the number within STEP_UP_SECONDS?"""
    confirmed = session.get(CONFIRMED)
    if not isinstance(confirmed, dict) or confirmed.get("s") != subscriber_id:
        return False
    age = now.timestamp() - float(confirmed.get("at", 0))
    return 0 <= age <= current_app.config["STEP_UP_SECONDS"]


def forget_subscriber() -> None:
    """After erasure or signing out the links, this browser holds nothing of the person."""
    for key in (LINK, CONFIRMED, PENDING):
        session.pop(key, None)


#: How long one signed form token is handed out again to the same session in a process.
FORM_TOKEN_REUSE_SECONDS = 60


def form_token() -> str:
    """Flask-WTF's form token for this session, signed at most once a minute per session
    in this process (the preference page's views), where Flask-WTF signs one anew on every
    request: building its serializer and signing were a tenth of the page over HTTP. The
    token is Flask-WTF's own, checked as any; it expires at most a minute before one signed
    for the view would. A session without the token's secret gets one as Flask-WTF makes
    it (that answer writes the session)."""
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    secret = session.get(field)
    if secret is None:
        return generate_csrf()
    window = int(time.time() // FORM_TOKEN_REUSE_SECONDS)
    key = current_app.config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
    token = _signed(secret, window, key)
    setattr(g, field, token)  # Flask-WTF's per-request token: csrf_token() gives the same
    return token


@lru_cache(maxsize=1024)
def _signed(secret: str, window: int, key: str) -> str:
    """A token signed by Flask-WTF for the session whose secret is ``secret`` (the key and
    the minute are part of what it is kept under, not used here)."""
    return generate_csrf()
