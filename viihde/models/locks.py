"""Per-key transaction locks, for work on a row that may not exist yet.

PostgreSQL: an advisory lock held until the transaction ends. SQLite runs one
writer at a time already (every transaction begins IMMEDIATE), so there is
nothing more to take.
"""

from __future__ import annotations

from sqlalchemy import text

from viihde.extensions import db


def serialise(key: str) -> None:
    """Make twin transactions about ``key`` take turns until this one ends."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )
