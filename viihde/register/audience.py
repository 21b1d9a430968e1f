"""The audience for marketing: every number whose current consent covers a purpose.

Read in pages of subscribers in id order, one query per page, as plain rows (no ORM
identity map), so that a register of any size streams in constant memory. Each page is
read at the moment it is needed: someone who opts out while an export runs drops out of
every page not read yet, and a campaign checks consent again before each message.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from viihde.extensions import db
from viihde.models import ConsentState, Holding, LawfulBasis, Subscriber
from viihde.tokens import preference_url

PAGE_SIZE = 1000
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


def page(purpose: str, after: int = 0, size: int = PAGE_SIZE) -> Page:
    """Up to ``size`` subscribers after id ``after`` who have ``purpose`` granted now (the
    state stored beside the ledger: one statement), and the id to continue after."""
    rows = db.session.execute(
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
        .where(ConsentState.granted, Subscriber.id > after)
        .order_by(Subscriber.id)
        .limit(size)
    ).all()
    members = [
        Member(
            row.id,
            row.phone_e164,
            row.language,
            preference_url(row.id, row.link_key),
            consent_since=row.changed_at,
            basis=row.basis,
        )
        for row in rows
    ]
    return Page(members, rows[-1].id if len(rows) == size else None)


def members(purpose: str, size: int = PAGE_SIZE) -> Iterator[Member]:
    """Every member, page by page (each page read when the previous one is used up)."""
    after: int | None = 0
    while after is not None:
        current = page(purpose, after, size)
        db.session.rollback()  # end the read: the next page sees opt-outs made meanwhile
        yield from current.members
        after = current.next_after


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
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    writer.writeheader()
    for member in rows:
        writer.writerow(member.as_dict())
        yield member


def write_jsonl(rows: Iterator[Member], out: io.TextIOBase) -> Iterator[Member]:
    """Write members as JSON Lines, yielding each one after it is written."""
    for member in rows:
        out.write(json.dumps(member.as_dict(), ensure_ascii=False) + "\n")
        yield member


WRITERS = {"csv": write_csv, "jsonl": write_jsonl}
