"""Campaigns: marketing SMS written by an admin, and each recipient's row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from viihde.extensions import db
from viihde.models.base import OutsideLongText, OutsideText, UTCDateTime, one_of
from viihde.models.staff import StaffMember
from viihde.models.subscribers import LawfulBasis

#: A campaign's life: written, going out (or waiting for quiet hours to end), held by an
#: admin, gone through the whole audience, or stopped for good.
CAMPAIGN_STATUSES = ("draft", "sending", "paused", "finished", "cancelled")


class Campaign(db.Model):
    """A marketing SMS to everyone who has a purpose granted, written per language by an
    admin and sent by the campaign sender (throttled, never in quiet hours)."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(
            "status IN ('draft', 'sending', 'paused', 'finished', 'cancelled')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(OutsideText(100))
    purpose: Mapped[str] = mapped_column(String(32))
    # The text in each language, without the preference link (the sender appends it).
    body_fi: Mapped[str] = mapped_column(OutsideLongText)
    body_sv: Mapped[str] = mapped_column(OutsideLongText)
    body_en: Mapped[str] = mapped_column(OutsideLongText)
    status: Mapped[str] = mapped_column(String(16), server_default="draft")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_members.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The audience is everyone with an id up to this one (fixed when sending starts),
    # gone through in id order; the sender has done every id up to ``cursor``.
    last_subscriber_id: Mapped[int | None] = mapped_column(Integer)
    cursor: Mapped[int] = mapped_column(Integer, server_default="0")
    # Quiet hours: when the sender will go on (None when it is not waiting for them).
    resume_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_by: Mapped[StaffMember | None] = relationship()


class CampaignMessage(db.Model):
    """One recipient of a campaign: at most one per person and campaign, whatever retries
    or twin senders do. ``skipped`` when consent was gone at the moment of sending."""

    __tablename__ = "campaign_messages"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        CheckConstraint("status IN ('sent', 'skipped')", name="status"),
        CheckConstraint(one_of("basis", LawfulBasis), name="basis"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    # Erasure keeps the row (the campaign's figures) but not who it was.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    sms_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("sms_messages.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(5))
    # The LawfulBasis the message went under (a customer's first message says how to
    # refuse); None when it was skipped.
    basis: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
