"""Signed preference links: the only module that knows ``itsdangerous``.

A token is ``<subscriber id>.<signature>``, both base64url. The signing salt
includes the subscriber's random ``link_key``, so rotating that key revokes
every link sent so far; the token carries no personal data and never expires
by time (people unsubscribe from old messages). The signature is an
HMAC-SHA256 truncated to 96 bits so that the whole link fits in 48 characters
on a 24-character host (``https://viihdepaketti.fi/`` + 23).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from base64 import urlsafe_b64encode
from collections.abc import Callable, Sequence

from flask import current_app
from itsdangerous import BadData, BadSignature, Signer, URLSafeSerializer
from itsdangerous.encoding import base64_decode, base64_encode, bytes_to_int, int_to_bytes
from itsdangerous.signer import HMACAlgorithm

PREFERENCE_SALT = "viihde.preference-link."
SIGNATURE_BYTES = 12
#: Ids are 32-bit database integers; a token naming a larger one is not ours.
MAX_SUBSCRIBER_ID = 2**31 - 1
#: What a token looks like; used by the URL converter so that other paths never match.
TOKEN_PATTERN = r"[A-Za-z0-9_-]{2,8}\.[A-Za-z0-9_-]{16}"  # noqa: S105  # nosec B105
_TOKEN = re.compile(TOKEN_PATTERN)
#: What the SMS log keeps in place of a link's token: a live link lets whoever reads it
#: act as the person, so only the person's phone (and the campaign tool) ever holds one.
LINK_PLACEHOLDER = "[link]"
_TOKEN_IN_LINK = re.compile(r"(?<=/)" + TOKEN_PATTERN + r"(?![A-Za-z0-9_-])")
_PLACEHOLDER_LINK = re.compile(r"https?://\S*?/" + re.escape(LINK_PLACEHOLDER))


class _TruncatedHMAC(HMACAlgorithm):
    """HMAC-SHA256 cut to 96 bits: plenty against online guessing, short enough for SMS."""

    def __init__(self) -> None:
        super().__init__(hashlib.sha256)

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return super().get_signature(key, value)[:SIGNATURE_BYTES]


def _signer(secret_keys: Sequence[str], link_key: str) -> Signer:
    return Signer(
        list(secret_keys),
        salt=PREFERENCE_SALT + link_key,
        key_derivation="hmac",
        digest_method=hashlib.sha256,
        algorithm=_TruncatedHMAC(),
    )


def preference_token(subscriber_id: int, link_key: str, secret_keys: Sequence[str]) -> str:
    """Sign a subscriber's id with the newest key (the last of ``secret_keys``): the token
    ``Signer(...).sign`` would make (itsdangerous' "hmac" key derivation, then the
    truncated HMAC), without building a Signer (tests/test_tokens.py holds the two equal)."""
    return _signed(_keyed(secret_keys), subscriber_id, link_key)


def _keyed(secret_keys: Sequence[str]) -> hmac.HMAC:
    """The newest key's HMAC, its padded keys hashed once (``copy`` starts from there)."""
    return hmac.new(secret_keys[-1].encode(), digestmod=hashlib.sha256)


_SALT = PREFERENCE_SALT.encode()


def _signed(keyed: hmac.HMAC, subscriber_id: int, link_key: str) -> str:
    # itsdangerous' "hmac" key derivation (the salt under the secret key), then the
    # signature of the payload under the derived key.
    derived = keyed.copy()
    derived.update(_SALT + link_key.encode())
    payload = base64_encode(int_to_bytes(subscriber_id))
    signature = hmac.digest(derived.digest(), payload, "sha256")[:SIGNATURE_BYTES]
    return f"{payload.decode()}.{urlsafe_b64encode(signature).decode()}"


def read_preference_token(
    token: str,
    secret_keys: Sequence[str],
    link_key_of: Callable[[int], str | None],
) -> int | None:
    """Return the subscriber id a valid, unrevoked token names, else None."""
    if not _TOKEN.fullmatch(token or ""):
        return None
    payload = token.split(".", 1)[0]
    try:
        subscriber_id = bytes_to_int(base64_decode(payload))
    except BadData:  # not base64 (a character lost in copying, say)
        return None
    if not 0 < subscriber_id <= MAX_SUBSCRIBER_ID:
        return None
    link_key = link_key_of(subscriber_id)
    if link_key is None:
        return None
    try:
        _signer(secret_keys, link_key).unsign(token)
    except BadSignature:
        return None
    return subscriber_id


def without_link_tokens(text: str) -> str:
    """``text`` with every preference link's token replaced by ``LINK_PLACEHOLDER``."""
    return _TOKEN_IN_LINK.sub(LINK_PLACEHOLDER, text)


def with_link(text: str, link: str) -> str:
    """Put a live preference ``link`` back where ``without_link_tokens`` left its placeholder."""
    return _PLACEHOLDER_LINK.sub(lambda _match: link, text)


def has_link_placeholder(text: str) -> bool:
    return LINK_PLACEHOLDER in text


def _cursors() -> URLSafeSerializer:
    return URLSafeSerializer(secret_keys(), salt="viihde.audience-cursor")


def sign_cursor(position: dict) -> str:
    """A page cursor the audience API hands out: where the next page starts, signed."""
    return _cursors().dumps(position)


def read_cursor(cursor: str) -> dict | None:
    """The position a cursor this app signed names, else None (forged or mangled)."""
    try:
        position = _cursors().loads(cursor)
    except BadData:
        return None
    return position if isinstance(position, dict) else None


def secret_keys() -> list[str]:
    """The app's signing keys, oldest first: SECRET_KEY_FALLBACKS, then SECRET_KEY."""
    config = current_app.config
    return [*config["SECRET_KEY_FALLBACKS"], config["SECRET_KEY"]]


def preference_url(subscriber_id: int, link_key: str) -> str:
    """The short link every SMS carries: ``<PUBLIC_BASE_URL>/<token>``."""
    token = preference_token(subscriber_id, link_key, secret_keys())
    return f"{current_app.config['PUBLIC_BASE_URL']}/{token}"


def preference_urls() -> Callable[[int, str], str]:
    """``preference_url`` for many links in a row (an export signs a million): the
    settings read and the key's HMAC set up once."""
    keyed, base = _keyed(secret_keys()), current_app.config["PUBLIC_BASE_URL"] + "/"
    return lambda subscriber_id, link_key: base + _signed(keyed, subscriber_id, link_key)
