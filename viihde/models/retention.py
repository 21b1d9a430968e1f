"""What outlives the purge and erasure: daily sign-up totals, tombstones and refusals."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from viihde.extensions import db
from viihde.models.base import ATTRIBUTION, UTCDateTime, one_of
from viihde.models.holdings import holding_column


class ErasureSource(StrEnum):
    """Who erased a number (``Tombstone.source``)."""

    SUBJECT = "subject"  # the person, from their link
    STAFF = "staff"  # customer service, in the console
    CLI = "cli"  # customer service, at the command line
    RETENTION = "retention"  # the purge: the proof period ended


class SignupTotal(db.Model):
    """A day's sign-up figures for one campaign, kept when purge deletes the codes they
    were counted from (the dashboard adds the live codes to these)."""

    __tablename__ = "signup_totals"
    __table_args__ = (
        UniqueConstraint("day", "campaign"),
        CheckConstraint("started >= 0 AND confirmed >= 0", name="counts_non_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date)  # in Helsinki
    campaign: Mapped[str] = mapped_column(ATTRIBUTION, server_default="")  # "": none
    started: Mapped[int] = mapped_column(Integer, server_default="0")
    confirmed: Mapped[int] = mapped_column(Integer, server_default="0")


class Tombstone(db.Model):
    """The only trace an erasure leaves: a keyed hash of the number and when."""

    __tablename__ = "tombstones"
    __table_args__ = (CheckConstraint(one_of("source", ErasureSource), name="source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(32))  # an ErasureSource
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The holding it erased, while its row stands (a holder erasing their own holding);
    # None when the whole number went.
    holding_id: Mapped[int | None] = holding_column()


class Refusal(db.Model):
    """A STOP texted to us: a keyed hash of the number and when, kept as a tombstone is (a
    purchase from before it must not bring marketing, for as long as a purchase can be
    imported, whether or not the register held the number); a START from it lifts it."""

    __tablename__ = "refusals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    refused_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RegisterKey(db.Model):
    """The fingerprint of a key the register's hashes are made with (``register.keys``):
    a keyed hash of a constant, so that another key is noticed before it makes a hash."""

    __tablename__ = "register_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
