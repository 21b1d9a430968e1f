"""The SMS log (the outbox), delivery status callbacks, and the replies people send."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from viihde.extensions import db
from viihde.models.base import PHONE, OutsideLongText, OutsideText, UTCDateTime, one_of
from viihde.models.holdings import holding_column


class SmsKind(StrEnum):
    """What a message is (``SmsMessage.kind``)."""

    CODE = "code"  # a one-time code
    WELCOME = "welcome"  # the preference link, after a confirmed sign-up
    LINK = "link"  # the preference link again, or a new one after "sign out my links"
    REPLY = "reply"  # the answer to a text the person sent (a keyword)
    TEST = "test"  # ``flask sms send-test``
    CAMPAIGN = "campaign"  # marketing, from the campaign sender
    CAMPAIGN_TEST = "campaign_test"  # an admin's test of a campaign, to their own phone


#: Marketing sent by the campaign sender (and an admin's test of it): not part of the
#: sign-up budget, which guards the one-time codes against SMS pumping.
CAMPAIGN_KINDS = (SmsKind.CAMPAIGN, SmsKind.CAMPAIGN_TEST)
#: Every other kind: what the sign-up budget counts (``SmsBudgetCount``). Migration 0018
#: writes them into the database's triggers: a new kind needs a migration that says
#: whether the budget counts it.
BUDGETED_KINDS = tuple(kind for kind in SmsKind if kind not in CAMPAIGN_KINDS)
#: A message's statuses in the order they can happen; a late callback never moves it back.
SMS_STATUSES = ("queued", "sending", "sent", "delivered", "undelivered", "failed")
#: A message in these states is not yet with the provider (the outbox's; a partial index).
UNSENT = SMS_STATUSES[:2]
_UNSENT_ROWS = text(f"status IN {UNSENT!r}")  # status IN ('queued', 'sending')
SMS_FINAL_STATUSES = ("delivered", "undelivered", "failed")


class SmsMessage(db.Model):
    """One SMS sent (or attempted). One-time codes are never stored in the body."""

    __tablename__ = "sms_messages"
    __table_args__ = (
        CheckConstraint("segments >= 1", name="segments_positive"),
        CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed')",
            name="status",
        ),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint(one_of("kind", SmsKind), name="kind"),
        # The retention purge finds old messages by age.
        Index("ix_sms_messages_created_at", "created_at"),
        # The few not yet handed to the provider: the outbox sweep's and the backlog
        # gauge's (``sms.outbox``), which would otherwise read the whole log each minute.
        Index(
            "ix_sms_messages_waiting",
            "created_at",
            postgresql_where=_UNSENT_ROWS,
            sqlite_where=_UNSENT_ROWS,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_e164: Mapped[str] = mapped_column(PHONE, index=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    # Whose it is (``models.holdings``); None while the number is not in the register.
    holding_id: Mapped[int | None] = holding_column()
    kind: Mapped[str] = mapped_column(String(32))  # an SmsKind
    body: Mapped[str] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[str | None] = mapped_column(String(32))
    # Hand-overs to the provider tried so far (a retried job adds one).
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BudgetSpan(StrEnum):
    """How long one of the SMS budget's counts is."""

    MINUTE = "minute"
    HOUR = "hour"


class SmsBudgetCount(db.Model):
    """The messages the SMS budget counts (``BUDGETED_KINDS``, not failed) created in one
    minute or one hour (UTC), kept by the database itself: triggers on ``sms_messages``
    (migration 0018) add a message when it is written, and take it away when it fails or
    is deleted, in the transaction that does it (on PostgreSQL when it commits, so that
    the count's row is locked only for the commit). The check before every code reads at
    most a day's 24 hours and two hours' minutes instead of counting the day's messages
    (``register.budget``). The retention purge forgets them with the log they count."""

    __tablename__ = "sms_budget_counts"
    __table_args__ = (CheckConstraint(one_of("span", BudgetSpan), name="span"),)

    span: Mapped[str] = mapped_column(String(6), primary_key=True)  # a BudgetSpan
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    sent: Mapped[int] = mapped_column(Integer)


class SmsStatusEvent(db.Model):
    """One delivery status callback; a repeated callback is the same row."""

    __tablename__ = "sms_status_events"
    __table_args__ = (UniqueConstraint("message_sid", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_sid: Mapped[str] = mapped_column(OutsideText(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(OutsideText(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InboundMessage(db.Model):
    """A reply someone sent to our number; processed once per provider message id."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("provider", "message_sid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    message_sid: Mapped[str] = mapped_column(OutsideText(64))
    phone_e164: Mapped[str] = mapped_column(PHONE, index=True)
    # Whose it is (``models.holdings``); None when the number is not in the register.
    holding_id: Mapped[int | None] = holding_column()
    body: Mapped[str] = mapped_column(OutsideLongText)
    # stop, start, help, or None for any other text
    keyword: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
