"""Holdings: each period a number is held by one person is its own row.

A number's first holding opens when it enters the register; a holder change the
operator reports closes it and opens the next, at the day of the change. At most one is
open per number (the database refuses a second). Every row about a person (consent
events, codes, the SMS log, replies, tombstones) points at its holding, so what belongs
to whom is a filter by id.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, text
from sqlalchemy.orm import Mapped, mapped_column

from viihde.extensions import db
from viihde.models.base import UTCDateTime


class Holding(db.Model):
    """One person's holding of a number in the register: from ``started_at`` until
    ``ended_at`` (open: None). ``erased_at``: the holder erased it; only the row is left."""

    __tablename__ = "holdings"
    __table_args__ = (
        Index(
            "uq_holdings_one_open_per_subscriber",
            "subscriber_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ends_after_start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


def holding_column(*, required: bool = False):
    """The column that says whose a row is: required for consent events (deleted with
    their holding), optional for the rest (a code to a number not yet in the register has
    no holding; erasing a holding deletes its rows first)."""
    if required:  # indexed by the table, with the columns its queries need
        return mapped_column(Integer, ForeignKey("holdings.id", ondelete="CASCADE"))
    return mapped_column(
        Integer, ForeignKey("holdings.id", ondelete="SET NULL"), index=True, nullable=True
    )
