"""Each of the register's words is one enum: the code writes and compares its members, the
database refuses any other value, and each member people read has its label."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from itertools import count

import pytest
from flask_babel import force_locale
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from viihde.extensions import db
from viihde.models import (
    AuditAction,
    AuditEntry,
    Campaign,
    CampaignMessage,
    ConsentActor,
    ConsentEvent,
    ConsentSource,
    ErasureSource,
    Holding,
    LawfulBasis,
    SmsKind,
    SmsMessage,
    Subscriber,
    Tombstone,
    Verification,
    VerificationKind,
)
from viihde.register import states
from viihde.web import labels

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NUMBERS = (f"+35840{n:07d}" for n in count(1))


def a_subscriber() -> int:
    return db.session.execute(
        insert(Subscriber)
        .values(
            phone_e164=next(NUMBERS),
            language="fi",
            link_key="k",
            created_at=NOW,
            confirmed_at=NOW,
        )
        .returning(Subscriber.id)
    ).scalar_one()


def a_holding() -> tuple[int, int]:
    """A subscriber and their open holding's ids."""
    subscriber_id = a_subscriber()
    holding_id = db.session.execute(
        insert(Holding).values(subscriber_id=subscriber_id, started_at=NOW).returning(Holding.id)
    ).scalar_one()
    return subscriber_id, holding_id


def a_campaign() -> int:
    return db.session.execute(
        insert(Campaign)
        .values(name="Talvi", purpose="offers", body_fi="", body_sv="", body_en="", created_at=NOW)
        .returning(Campaign.id)
    ).scalar_one()


def consent_event(column: str, value: str) -> None:
    source, actor = (value, ConsentActor.SUBJECT)
    if column == "actor":
        source, actor = (ConsentSource.STAFF, value)
    subscriber_id, holding_id = a_holding()
    db.session.execute(
        insert(ConsentEvent).values(
            subscriber_id=subscriber_id,
            holding_id=holding_id,
            seq=1,
            purpose="offers",
            action="grant",
            source=source,
            actor=actor,
            created_at=NOW,
            privacy_notice_version="1",
            consent_text_version="signup-1",
        )
    )
    states.refold([holding_id])  # written past the ledger's writer: its state too


def sms_message(column: str, value: str) -> None:
    db.session.execute(
        insert(SmsMessage).values(
            phone_e164="+358401234567",
            kind=value,
            body="Hei",
            segments=1,
            backend="file",
            status="sent",
            created_at=NOW,
            updated_at=NOW,
        )
    )


def audit_entry(column: str, value: str) -> None:
    db.session.execute(insert(AuditEntry).values(created_at=NOW, actor="cli:ops", action=value))


def tombstone(column: str, value: str) -> None:
    db.session.execute(insert(Tombstone).values(phone_hash="h", source=value, erased_at=NOW))


def campaign_message(column: str, value: str) -> None:
    db.session.execute(
        insert(CampaignMessage).values(
            campaign_id=a_campaign(), status="sent", language="fi", basis=value, created_at=NOW
        )
    )


def verification(column: str, value: str) -> None:
    db.session.execute(
        insert(Verification).values(
            phone_e164="+358401234567",
            kind=value,
            code_hash="h",
            language="fi",
            purposes="offers",
            privacy_notice_version="1",
            attempts=0,
            created_at=NOW,
            expires_at=NOW,
        )
    )


#: Each constrained column: how to write a row with a value in it, and its enum.
COLUMNS = {
    "consent_events.source": (consent_event, "source", ConsentSource),
    "consent_events.actor": (consent_event, "actor", ConsentActor),
    "sms_messages.kind": (sms_message, "kind", SmsKind),
    "audit_entries.action": (audit_entry, "action", AuditAction),
    "tombstones.source": (tombstone, "source", ErasureSource),
    "campaign_messages.basis": (campaign_message, "basis", LawfulBasis),
    "verifications.kind": (verification, "kind", VerificationKind),
}


def stored_values(enum: type[StrEnum]) -> list[str]:
    """What a column of ``enum`` holds: its members (a staff member as ``staff:<id>``)."""
    if enum is ConsentActor:
        return [*(a for a in ConsentActor if a != ConsentActor.STAFF), ConsentActor.staff_member(7)]
    return list(enum)


@pytest.mark.parametrize("column", COLUMNS)
def test_the_database_takes_every_member(app_context, column):
    """Each member (as the code writes it) passes the column's CHECK."""
    write, name, enum = COLUMNS[column]
    for value in stored_values(enum):
        write(name, value)
        db.session.commit()


@pytest.mark.parametrize("column", COLUMNS)
def test_the_database_refuses_any_other_value(app_context, column):
    """A value that is not one of the enum's members is refused, by the database itself."""
    write, name, _enum = COLUMNS[column]
    bad_values = ["staff", "staff7", "anyone"] if column == "consent_events.actor" else ["other"]
    for value in bad_values:
        with pytest.raises(IntegrityError):
            write(name, value)
            db.session.flush()
        db.session.rollback()


#: Each enum whose members people read, and its table of labels.
LABELLED = {
    "sources": (ConsentSource, labels.SOURCES),
    "bases": (LawfulBasis, labels.BASES),
    "sms kinds": (SmsKind, labels.SMS_KINDS),
}


@pytest.mark.parametrize("name", LABELLED)
def test_every_member_has_a_label_and_every_label_a_member(name):
    """A new member without a label (or a label left for a member gone) fails here."""
    enum, table = LABELLED[name]
    assert set(table) == set(enum)


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
@pytest.mark.parametrize("name", LABELLED)
def test_labels_read_as_words_in_every_language(app, name, language):
    """The label shown is a word in the page's language, never the member's key."""
    enum, table = LABELLED[name]
    with app.test_request_context(), force_locale(language):
        shown = {member: labels.label(table, member) for member in enum}
    assert all(text and text != member for member, text in shown.items()), shown
