"""The audience for marketing: every number whose current consent covers a purpose.

Read from the consent state stored beside the ledger, as plain rows (no ORM identity
map). The API reads it a page at a time, each page one statement; an export on
PostgreSQL streams it from one server-side cursor in constant memory, a snapshot of the
moment it started (a campaign checks consent again before each message). Links are signed
with the key's HMAC worked out once (``tokens.preference_urls``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, Select, func, select

from viihde.extensions import db
from viihde.models import ConsentState, Holding, LawfulBasis, Subscriber
from viihde.tokens import preference_urls

PAGE_SIZE = 1000
#: Rows an export's server-side cursor fetches at a time.
STREAM_BATCH = 5000
FIELDS = ("number", "language", "preference_link", "consent_since", "basis")


@dataclass(frozen=True)
class Member:
    """One number to market to, with what a message to it needs."""

    subscriber_id: int
    number: str
    language: str
    preference_link: str
    consent_since: datetime
    #: The basis of the grant in force (the first message to a customer says how to refuse).
    basis: LawfulBasis = LawfulBasis.CONSENT

    def as_dict(self) -> dict[str, str]:
        return {
            "number": self.number,
            "language": self.language,
            "preference_link": self.preference_link,
            "consent_since": self.consent_since.isoformat(),
            "basis": self.basis,
        }


@dataclass(frozen=True)
class Page:
    """Members after a subscriber id, and the id to continue after (None: the end)."""

    members: list[Member]
    next_after: int | None


def _granted(purpose: str) -> Select:
    """Everyone with ``purpose`` granted now, in subscriber id order."""
    return (
        select(
            Subscriber.id,
            Subscriber.phone_e164,
            Subscriber.language,
            Subscriber.link_key,
            ConsentState.changed_at,
            ConsentState.basis,
        )
        .join(Holding, (Holding.subscriber_id == Subscriber.id) & Holding.ended_at.is_(None))
        .join(
            ConsentState,
            (ConsentState.holding_id == Holding.id) & (ConsentState.purpose == purpose),
        )
        .where(ConsentState.granted)
        .order_by(Subscriber.id)
    )


def _members(rows: Iterable[Row]) -> Iterator[Member]:
    link = preference_urls()
    for row in rows:
        yield Member(
            row.id,
            row.phone_e164,
            row.language,
            link(row.id, row.link_key),
            consent_since=row.changed_at,
            basis=row.basis,
        )


def page(purpose: str, after: int = 0, size: int = PAGE_SIZE) -> Page:
    """Up to ``size`` subscribers after id ``after`` who have ``purpose`` granted now (one
    statement), and the id to continue after (None: the end)."""
    # The range said of the holdings too (the join implies it): without it PostgreSQL walks
    # the open holdings from the first for every page (81 ms a page half-way through a
    # register of 1,000,000, 5 ms with it: bench/scale.sh explain).
    rows = db.session.execute(
        _granted(purpose).where(Subscriber.id > after, Holding.subscriber_id > after).limit(size)
    ).all()
    return Page(list(_members(rows)), rows[-1].id if len(rows) == size else None)


def members(purpose: str, batch: int = STREAM_BATCH) -> Iterator[Member]:
    """Every member in constant memory. On PostgreSQL one statement on a server-side
    cursor, ``batch`` rows fetched at a time (a snapshot of the moment it started). On
    SQLite, whose every transaction holds the one write lock, in pages of ``batch``, each
    read ending its transaction so that sign-ups and opt-outs go on meanwhile."""
    if db.session.get_bind().dialect.name != "postgresql":
        after: int | None = 0
        while after is not None:
            current = page(purpose, after, batch)
            db.session.rollback()  # the write lock goes back between pages
            yield from current.members
            after = current.next_after
        return
    rows = db.session.execute(_granted(purpose).execution_options(yield_per=batch))
    try:
        yield from _members(rows)
    finally:
        rows.close()


def count(purpose: str) -> int:
    """How many subscribers have ``purpose`` granted now (the progress bar's length; a
    long export may end with fewer, as people opt out meanwhile)."""
    return db.session.scalar(
        select(func.count())
        .select_from(ConsentState)
        .join(Holding, Holding.id == ConsentState.holding_id)
        .where(Holding.ended_at.is_(None), ConsentState.purpose == purpose, ConsentState.granted)
    )


def write_csv(rows: Iterator[Member], out: io.TextIOBase) -> Iterator[Member]:
    """Write members as CSV (a header first), yielding each one after it is written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for member in rows:
        writer.writerow(member.as_dict().values())
        yield member


def write_jsonl(rows: Iterator[Member], out: io.TextIOBase) -> Iterator[Member]:
    """Write members as JSON Lines, yielding each one after it is written."""
    for member in rows:
        out.write(json.dumps(member.as_dict(), ensure_ascii=False) + "\n")
        yield member


WRITERS = {"csv": write_csv, "jsonl": write_jsonl}
