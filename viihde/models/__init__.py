"""The register: tables, constraints and indexes.

Only the mobile number is personal data. Consent is an append-only ledger
(``ConsentEvent``); a subscriber's current consent is always derived from it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask_login import UserMixin
from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    func,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from viihde.extensions import db

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


class Subscriber(db.Model):
    """A mobile number in the register: one whose owner confirmed a code, or a buyer
    imported from the customer register (``confirmed_at`` is then the import's time)."""

    __tablename__ = "subscribers"
    __table_args__ = (
        # Support's look-up by the last digits (PostgreSQL; migration 0008).
        Index(
            "ix_subscribers_phone_reversed",
            func.reverse(text("phone_e164")),
            postgresql_ops={"reverse(phone_e164)": "text_pattern_ops"},
        ).ddl_if(dialect="postgresql"),
        # AUTOINCREMENT: an erased subscriber's id is never handed to someone else on SQLite.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_e164: Mapped[str] = mapped_column(PHONE, unique=True)
    language: Mapped[str] = mapped_column(String(5))
    # Random; part of every preference link's signing salt. Rotating it revokes the links.
    link_key: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the number last passed to a new holder, as the operator's register said
    # (``holders``): records from before it are a previous holder's, kept as proof but
    # never shown to the person holding the number now.
    holder_since: Mapped[datetime | None] = mapped_column(UTCDateTime)

    consent_events: Mapped[list[ConsentEvent]] = relationship(
        back_populates="subscriber",
        order_by="ConsentEvent.seq",
        viewonly=True,
    )


class ConsentEvidence:
    """What proves a consent: the ad it came from, the texts it was given under, the browser.

    Kept on a pending ``Verification`` and copied to its ``ConsentEvent`` on confirmation.
    """

    utm_source: Mapped[str | None] = mapped_column(ATTRIBUTION)
    utm_medium: Mapped[str | None] = mapped_column(ATTRIBUTION)
    utm_campaign: Mapped[str | None] = mapped_column(ATTRIBUTION)
    click_id: Mapped[str | None] = mapped_column(OutsideText(255))
    privacy_notice_version: Mapped[str] = mapped_column(VERSION)
    consent_text_version: Mapped[str] = mapped_column(VERSION)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(OutsideText(255))


class ConsentEvent(ConsentEvidence, db.Model):
    """One grant or withdrawal of consent: who, when, from where, under which texts."""

    __tablename__ = "consent_events"
    __table_args__ = (
        # Per-subscriber order; two concurrent writers can never take the same place.
        UniqueConstraint("subscriber_id", "seq"),
        CheckConstraint("action IN ('grant', 'withdraw')", name="action"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        CheckConstraint("basis IN ('consent', 'customer')", name="basis"),
        Index("ix_consent_events_subscriber_purpose_seq", "subscriber_id", "purpose", "seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(8))
    # Where it came from: signup, preference_page, sms_keyword, staff, register_update, cli,
    # customer_import.
    source: Mapped[str] = mapped_column(String(32))
    # Who did it: "subject" (the person), "staff:<id>", "system".
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The lawful basis of a grant: "consent" (the person said yes), or "customer" (an
    # existing customer relationship: the company's own similar products, until the
    # person refuses). Withdrawals keep the basis of what they end.
    basis: Mapped[str] = mapped_column(String(16), server_default="consent")
    # The customer basis rests on a purchase: its day (Helsinki), as the import gave it.
    purchased_on: Mapped[date | None] = mapped_column(Date)

    subscriber: Mapped[Subscriber] = relationship(back_populates="consent_events")


class Verification(ConsentEvidence, db.Model):
    """One one-time code sent to a number, with the consent it will confirm."""

    __tablename__ = "verifications"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint("kind IN ('signup', 'step_up')", name="kind"),
        Index("ix_verifications_phone_created", "phone_e164", "created_at"),
        Index("ix_verifications_consumed_at", "consumed_at"),
        # The sign-up breaker counts each network's last hour of codes (``budget``).
        Index("ix_verifications_network_created", "network", "created_at"),
        Index("ix_verifications_wide_network_created", "wide_network", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_e164: Mapped[str] = mapped_column(PHONE)
    # signup (confirms a sign-up) or step_up (proves the number again before a right is used)
    kind: Mapped[str] = mapped_column(String(16), server_default="signup")
    # HMAC of the code under HASH_KEY; the code itself is never stored.
    code_hash: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(5))
    purposes: Mapped[str] = mapped_column(String(255))  # comma-separated purpose keys
    # A step-up confirms no consent text.
    consent_text_version: Mapped[str | None] = mapped_column(VERSION)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The networks a sign-up came from (``networks``: a /24 and /16, or a /48 and /32), so
    # the sign-up breaker can tighten where unconfirmed codes come from.
    network: Mapped[str | None] = mapped_column(String(43))
    wide_network: Mapped[str | None] = mapped_column(String(43))
    # The SMS that carried the code, so the code page can tell if it could not be sent.
    sms_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("sms_messages.id", ondelete="SET NULL")
    )


#: A message's statuses in the order they can happen; a late callback never moves it back.
SMS_STATUSES = ("queued", "sending", "sent", "delivered", "undelivered", "failed")
SMS_FINAL_STATUSES = ("delivered", "undelivered", "failed")
#: Marketing sent by the campaign sender (and an admin's test of it): not part of the
#: sign-up budget, which guards the one-time codes against SMS pumping.
CAMPAIGN_SMS_KIND, CAMPAIGN_TEST_SMS_KIND = "campaign", "campaign_test"


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
        # The budget breaker counts the last hour's and day's messages on every code.
        Index("ix_sms_messages_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_e164: Mapped[str] = mapped_column(PHONE, index=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))  # code, welcome, ...
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
    body: Mapped[str] = mapped_column(OutsideLongText)
    # stop, start, help, or None for any other text
    keyword: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Tombstone(db.Model):
    """The only trace an erasure leaves: a keyed hash of the number and when."""

    __tablename__ = "tombstones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(32))
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AppendOnlyError(RuntimeError):
    """Something tried to change or delete a consent event or audit entry through the ORM."""


@event.listens_for(Session, "before_flush")
def _ledgers_are_append_only(session: Session, flush_context, instances) -> None:
    """The consent ledger and the audit log only grow (erasure deletes consent rows in bulk)."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, ConsentEvent | AuditEntry) and (
            obj in session.deleted or session.is_modified(obj)
        ):
            raise AppendOnlyError(f"{type(obj).__name__} rows are never changed or deleted")


class StaffMember(UserMixin, db.Model):
    """A named person who may use the support console (no sign-up: created by CLI)."""

    __tablename__ = "staff_members"
    __table_args__ = (CheckConstraint("role IN ('support', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # argon2id (argon2-cffi's defaults); never the password itself.
    password_hash: Mapped[str] = mapped_column(String(255))
    # The TOTP secret (base32), once enrolled; and the last time step accepted, so a
    # code works only once.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # Bumped by logout-everywhere, disabling and resets: live sessions end at once.
    session_version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def get_id(self) -> str:
        """Flask-Login's session key: id and session version, so a bump logs out."""
        return f"{self.id}:{self.session_version}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class AuditEntry(db.Model):
    """One read or action on a person's data, or on staff accounts. Append-only."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_subject_hash", "subject_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_members.id"))
    # Who: the staff member's email, or "cli:<os user>" for the command line.
    actor: Mapped[str] = mapped_column(String(254))
    # What: search, view_card, export, withdraw, send_link, erase, login, ...
    action: Mapped[str] = mapped_column(String(32), index=True)
    # Whose number: the same keyed hash an erasure leaves, and a masked form to read.
    subject_hash: Mapped[str | None] = mapped_column(String(64))
    subject_masked: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(OutsideText(500))
    ip: Mapped[str | None] = mapped_column(String(45))


class ApiToken(db.Model):
    """A bearer token for the company's campaign tool, created by an admin. Only a keyed
    hash of the token is kept: it is shown once, when created."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_members.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_by: Mapped[StaffMember | None] = relationship()


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
    # The basis the message went under (a customer's first message says how to refuse).
    basis: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
