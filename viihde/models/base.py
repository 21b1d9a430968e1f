"""What every table shares: column types, CHECK conditions built from an enum, and the rule
that the ledgers only grow."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import DateTime, String, Text, TypeDecorator, event
from sqlalchemy.orm import Session

PHONE = String(16)  # E.164: "+" and at most 15 digits
VERSION = String(32)


class OutsideText(TypeDecorator):
    """Text that came from outside (forms, headers, webhooks): stored without NUL characters,
    which PostgreSQL refuses in text and nobody means to send."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return value.replace("\x00", "") if isinstance(value, str) else value


class OutsideLongText(OutsideText):
    """OutsideText without a length limit (the body of an inbound SMS)."""

    impl = Text
    cache_ok = True


ATTRIBUTION = OutsideText(100)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def one_of(column: str, values: Iterable[str]) -> str:
    """A CHECK condition: ``column`` holds one of ``values`` (an enum's members)."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class AppendOnly:
    """A ledger: its rows are added, never changed or deleted through the ORM (the
    database refuses it too, with triggers)."""


class AppendOnlyError(RuntimeError):
    """Something tried to change or delete a consent event or audit entry through the ORM."""


@event.listens_for(Session, "before_flush")
def _ledgers_are_append_only(session: Session, flush_context, instances) -> None:
    """The consent ledger and the audit log only grow (erasure deletes consent rows in bulk)."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AppendOnly) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyError(f"{type(obj).__name__} rows are never changed or deleted")
