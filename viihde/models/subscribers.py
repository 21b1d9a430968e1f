"""Subscribers and their consent ledger: who gave or withdrew what, when, from where, under
which texts and on which basis.

Only the mobile number is personal data. Consent is an append-only ledger
(``ConsentEvent``), the proof; its current state per holding and purpose is stored beside
it (``ConsentState``), written with each event and always equal to the ledger's fold.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    ScalarSelect,
    String,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from viihde.extensions import db
from viihde.models.base import (
    ATTRIBUTION,
    PHONE,
    VERSION,
    AppendOnly,
    OutsideText,
    UTCDateTime,
    one_of,
)
from viihde.models.holdings import Holding, holding_column


class ConsentSource(StrEnum):
    """Where a consent event came from (``ConsentEvent.source``)."""

    SIGNUP = "signup"
    PREFERENCE_PAGE = "preference_page"
    SMS_KEYWORD = "sms_keyword"  # a reply (STOP, START), or the provider's opt-out report
    STAFF = "staff"  # customer service, in the console
    CLI = "cli"  # customer service, at the command line
    REGISTER_UPDATE = "register_update"  # the number passed to a new holder (``holders``)
    CUSTOMER_IMPORT = "customer_import"
    CUSTOMER_RELATIONSHIP_ENDED = "customer_relationship_ended"  # the purchase grew too old


class ConsentActor(StrEnum):
    """Who gave or withdrew a consent (``ConsentEvent.actor``). A staff member is stored
    with their id, ``staff:<id>`` (``ConsentActor.staff_member``), so the card names who it was."""

    SUBJECT = "subject"  # the person
    SYSTEM = "system"  # the register's own rules: an import, a lapse, a holder change
    PROVIDER = "provider"  # the SMS provider reporting that the number opted out
    STAFF = "staff"  # only as the prefix of ``staff:<id>``

    @classmethod
    def staff_member(cls, staff_id: int) -> str:
        """The actor value of one staff member: ``staff:<id>``."""
        return f"{cls.STAFF}:{staff_id}"


class LawfulBasis(StrEnum):
    """The lawful basis of a grant (``ConsentEvent.basis``)."""

    CONSENT = "consent"  # the person said yes
    # An existing customer relationship: the company's own similar products, until the
    # person refuses.
    CUSTOMER = "customer"


#: The actor CHECK: one of the fixed actors, or a staff member's ``staff:<id>``.
ACTOR_CHECK = (
    one_of("actor", (actor for actor in ConsentActor if actor != ConsentActor.STAFF))
    + f" OR actor LIKE '{ConsentActor.STAFF}:%'"
)


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

    consent_events: Mapped[list[ConsentEvent]] = relationship(
        back_populates="subscriber",
        order_by="ConsentEvent.seq",
        viewonly=True,
    )


def open_holding_of(phone_e164: str) -> ScalarSelect:
    """The number's open holding, as a subquery to write into a new row about the number:
    a row belongs to whoever holds the number when it is written (NULL: nobody in the
    register). One INSERT, no look-up first."""
    return (
        select(Holding.id)
        .join(Subscriber, Subscriber.id == Holding.subscriber_id)
        .where(Subscriber.phone_e164 == phone_e164, Holding.ended_at.is_(None))
        .scalar_subquery()
    )


class ConsentEvidence:
    """What proves a consent: the ad it came from, the texts it was given under, the browser.

    Kept on a pending ``Verification`` and copied to its ``ConsentEvent`` on confirmation.
    The one declaration of these fields: ``EVIDENCE_FIELDS`` lists them for the rest.
    """

    utm_source: Mapped[str | None] = mapped_column(ATTRIBUTION)
    utm_medium: Mapped[str | None] = mapped_column(ATTRIBUTION)
    utm_campaign: Mapped[str | None] = mapped_column(ATTRIBUTION)
    click_id: Mapped[str | None] = mapped_column(OutsideText(255))
    privacy_notice_version: Mapped[str] = mapped_column(VERSION)
    consent_text_version: Mapped[str] = mapped_column(VERSION)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(OutsideText(255))


#: The evidence's fields, in the order ``ConsentEvidence`` declares them.
EVIDENCE_FIELDS: tuple[str, ...] = tuple(ConsentEvidence.__annotations__)
#: Of those, the texts a consent was given under; the others are the person's circumstances.
TEXT_VERSION_FIELDS = ("privacy_notice_version", "consent_text_version")


class ConsentEvent(ConsentEvidence, AppendOnly, db.Model):
    """One grant or withdrawal of consent: who, when, from where, under which texts."""

    __tablename__ = "consent_events"
    __table_args__ = (
        # Per-subscriber order; two concurrent writers can never take the same place.
        UniqueConstraint("subscriber_id", "seq"),
        CheckConstraint("action IN ('grant', 'withdraw')", name="action"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        CheckConstraint(one_of("basis", LawfulBasis), name="basis"),
        CheckConstraint(one_of("source", ConsentSource), name="source"),
        CheckConstraint(ACTOR_CHECK, name="actor"),
        Index("ix_consent_events_subscriber_purpose_seq", "subscriber_id", "purpose", "seq"),
        # The last event per holding and purpose (retention, the customer relationships).
        Index("ix_consent_events_holding_purpose_seq", "holding_id", "purpose", "seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    # Whose word it is: the holding of the number it belongs to (``models.holdings``).
    holding_id: Mapped[int] = holding_column(required=True)
    seq: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(32))  # a ConsentSource
    actor: Mapped[str] = mapped_column(String(64))  # a ConsentActor, or "staff:<id>"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A LawfulBasis. Withdrawals keep the basis of what they end.
    basis: Mapped[str] = mapped_column(String(16), server_default=LawfulBasis.CONSENT.value)
    # The customer basis rests on a purchase: its day (Helsinki), as the import gave it.
    purchased_on: Mapped[date | None] = mapped_column(Date)

    subscriber: Mapped[Subscriber] = relationship(back_populates="consent_events")


class ConsentState(db.Model):
    """What the ledger says now of one purpose in one holding: its last event's action,
    basis, text version and time, with that event's id as the proof. Written in the transaction and
    under the subscriber's lock of each ledger append (``register.consent``); the pages,
    the audience and campaigns read it instead of folding the ledger."""

    __tablename__ = "consent_states"
    __table_args__ = (
        CheckConstraint(one_of("basis", LawfulBasis), name="basis"),
        # Who holds a purpose now, in holding order (the audience, campaign recipients).
        Index(
            "ix_consent_states_granted_purpose_holding",
            "purpose",
            "holding_id",
            sqlite_where=text("granted"),
            postgresql_where=text("granted"),
        ),
    )

    holding_id: Mapped[int] = mapped_column(
        ForeignKey("holdings.id", ondelete="CASCADE"), primary_key=True
    )
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    # The event the state rests on (erasing the ledger takes the state with it).
    event_id: Mapped[int] = mapped_column(
        ForeignKey("consent_events.id", ondelete="CASCADE"), index=True
    )
    basis: Mapped[str] = mapped_column(String(16))
    # The wording the grant was given under (the page says when a newer one exists).
    consent_text_version: Mapped[str] = mapped_column(VERSION)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
