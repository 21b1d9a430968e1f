"""The hash key the register's hashes are made with, remembered by its fingerprint.

Tombstones, audit entries' subjects, API tokens and codes are keyed hashes (``hashing``).
Under another HASH_KEY none of them matches any more, silently: an erased person's number
is no longer known as erased, and a customer import brings them back. So the register
keeps the key's fingerprint (a keyed hash of a constant), recorded by the first check
after migration 0019, and every later check compares: an instance with another key is not
ready (``/readyz``), a worker does not start, the commands that make or match hashes stop.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from viihde.extensions import db
from viihde.hashing import hashes_match, keyed_hash
from viihde.models import RegisterKey
from viihde.models.statements import insert_once

HASH_KEY = "HASH_KEY"
MISMATCH = (
    "HASH_KEY is not the key this register's hashes were made with: erasures, audit "
    "subjects and API tokens would stop matching. Set the key it was made with."
)


def fingerprint() -> str:
    """This process's hash key's fingerprint."""
    return keyed_hash("key-fingerprint", "viihde register")


def hash_key_problem(now: datetime) -> str | None:
    """None when this process's hash key is the register's (recorded when the register
    knows none yet: the caller commits it); else what is wrong."""
    stored = _stored()
    if stored is None:
        inserted = insert_once(
            RegisterKey,
            {"name": HASH_KEY, "fingerprint": fingerprint(), "recorded_at": now},
            unique=("name",),
        )
        if inserted is not None:
            return None
        stored = _stored()  # a twin's, committed first
    return None if hashes_match(stored, fingerprint()) else MISMATCH


def _stored() -> str | None:
    return db.session.scalar(select(RegisterKey.fingerprint).where(RegisterKey.name == HASH_KEY))
