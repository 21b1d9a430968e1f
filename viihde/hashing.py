"""Keyed hashes: one-time codes and erased numbers are kept only in this form."""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app


def hash_key() -> bytes:
    """The key for keyed hashes: HASH_KEY, else SECRET_KEY."""
    config = current_app.config
    return (config.get("HASH_KEY") or config["SECRET_KEY"]).encode()


def keyed_hash(purpose: str, value: str, key: bytes | None = None) -> str:
    """HMAC-SHA256 of ``value`` under the hash key, separated by purpose."""
    message = f"viihde.{purpose}\x00{value}".encode()
    return hmac.new(key or hash_key(), message, hashlib.sha256).hexdigest()


def hashes_match(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(expected.encode(), given.encode())
