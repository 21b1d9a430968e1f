"""The consent ledger: append-only, ordered, and the only source of the current state."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from viihde.extensions import db
from viihde.models import (
    EVIDENCE_FIELDS,
    TEXT_VERSION_FIELDS,
    AppendOnlyError,
    ConsentEvent,
    Holding,
    Subscriber,
    Verification,
)
from viihde.register import access, consent, states

from . import factories
from .helpers import folded_states, stored_states

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIGNUP = consent.ConsentContext("signup", evidence=consent.Evidence(utm_campaign="talvi"))
SOURCES = ["signup", "preference_page", "sms_keyword", "staff", "register_update"]


PURPOSES = ("offers", "new_content", "competitions")


@pytest.fixture
def subscriber_id(app, app_context) -> int:
    """+358401234567, who granted offers at sign-up."""
    return factories.subscriber(app, "+358401234567", ["offers"], at=NOW, context=SIGNUP)


def events(subscriber_id: int) -> list[ConsentEvent]:
    return list(
        db.session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subscriber_id == subscriber_id)
            .order_by(ConsentEvent.seq)
        )
    )


def test_subscribe_creates_the_subscriber_and_a_grant(subscriber_id):
    """One subscriber, one grant event with the signup context."""
    (event,) = events(subscriber_id)
    assert (event.action, event.purpose, event.source, event.utm_campaign) == (
        "grant",
        "offers",
        "signup",
        "talvi",
    )
    assert consent.current_consent(subscriber_id) == {
        "offers": True,
        "new_content": False,
        "competitions": False,
    }


def test_each_purpose_event_keeps_its_own_consent_text_version(subscriber_id):
    """A switch on the preference page records that purpose's own text version."""
    page = consent.ConsentContext("preference_page")
    (event,) = consent.set_consent(subscriber_id, ["competitions"], True, page, NOW)
    db.session.commit()
    assert event.consent_text_version == "competitions-1"


def test_signup_evidence_keeps_the_signup_text_version(app_context):
    """The sign-up box's version is recorded for every purpose it grants."""
    evidence = consent.Evidence(consent_text_version="signup-1")
    subscriber = consent.subscribe(
        "+358501234567", PURPOSES, consent.ConsentContext("signup", evidence=evidence), NOW
    )
    db.session.commit()
    assert {e.consent_text_version for e in events(subscriber.id)} == {"signup-1"}


def test_the_evidence_fields_are_declared_once(app_context):
    """``ConsentEvidence``'s columns are the evidence everywhere: of a code, of an event,
    of the value the code passes around, and (but the text versions) of the export."""
    assert [field.name for field in fields(consent.Evidence)] == list(EVIDENCE_FIELDS)
    for model in (ConsentEvent, Verification):
        assert set(EVIDENCE_FIELDS) <= set(model.__table__.columns.keys())
    assert set(access.CIRCUMSTANCES) == set(EVIDENCE_FIELDS) - set(TEXT_VERSION_FIELDS)
    given = consent.Evidence(**{name: f"{name}-1" for name in EVIDENCE_FIELDS})
    subscriber = consent.subscribe(
        "+358501234567", ["offers"], consent.ConsentContext("signup", evidence=given), NOW
    )
    db.session.commit()
    (event,) = events(subscriber.id)
    assert consent.Evidence.of(event) == given
    assert asdict(given).items() <= access.export("+358501234567")["consent_events"][0].items()


def test_stop_all_takes_effect_at_once_for_every_purpose(subscriber_id):
    """After STOP no purpose may be sent, without waiting for anything."""
    consent.set_consent(subscriber_id, PURPOSES, True, SIGNUP, NOW)
    db.session.commit()
    consent.withdraw_all(subscriber_id, consent.ConsentContext("sms_keyword"), NOW)
    db.session.commit()
    assert not any(consent.has_consent(subscriber_id, p) for p in PURPOSES)


def test_subscribing_the_same_number_again_keeps_one_subscriber(subscriber_id):
    """The number is unique; a second confirmation appends to the same ledger."""
    again = consent.subscribe("+358401234567", ["offers"], SIGNUP, NOW + timedelta(days=1))
    db.session.commit()
    assert again.id == subscriber_id
    assert [e.seq for e in events(subscriber_id)] == [1, 2]


def test_withdraw_all_is_immediate_and_idempotent(subscriber_id):
    """STOP twice: one withdrawal, not subscribed."""
    stop = consent.ConsentContext(source="sms_keyword")
    assert len(consent.withdraw_all(subscriber_id, stop, NOW)) == 1  # only offers was on
    assert consent.withdraw_all(subscriber_id, stop, NOW) == []
    assert consent.is_subscribed(subscriber_id) is False


def test_unknown_purpose_is_refused(subscriber_id):
    """Only configured purposes can be granted."""
    with pytest.raises(ValueError):
        consent.set_consent(subscriber_id, ["astrology"], True, SIGNUP, NOW)
        db.session.commit()


@pytest.mark.parametrize("config_overrides", [{"CONSENT_PURPOSES": ["offers"]}])
def test_a_purpose_not_on_offer_cannot_be_granted(subscriber_id):
    """A purpose the installation does not offer cannot be switched on."""
    with pytest.raises(ValueError):
        consent.set_consent(subscriber_id, ["competitions"], True, SIGNUP, NOW)
        db.session.commit()


def test_set_consent_for_a_missing_subscriber_records_nothing(app_context):
    """An erased subscriber's stale page cannot write events."""
    assert consent.set_consent(999999, PURPOSES, False, SIGNUP, NOW) == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(PURPOSES), st.booleans(), st.sampled_from(SOURCES)),
        max_size=15,
    )
)
def test_current_state_is_always_the_fold_of_the_ledger(subscriber_id, steps):
    """Any sequence of grants and withdrawals, any purpose, any source: the state stored
    beside the ledger equals the ledger's fold after every step, row for row."""
    db.session.execute(
        text("DELETE FROM consent_events WHERE subscriber_id = :id AND seq > 1"),
        {"id": subscriber_id},
    )
    states.refold()  # the example starts from the sign-up alone
    db.session.commit()
    expected = {"offers": True, "new_content": False, "competitions": False}
    for purpose, granted, source in steps:
        written = consent.set_consent(
            subscriber_id, [purpose], granted, consent.ConsentContext(source), NOW
        )
        db.session.commit()
        assert len(written) == (1 if granted != expected[purpose] else 0)
        expected[purpose] = granted
        assert stored_states() == folded_states()
    ledger = events(subscriber_id)
    assert [e.seq for e in ledger] == list(range(1, len(ledger) + 1))
    for purpose in PURPOSES:
        mine = [e.action for e in ledger if e.purpose == purpose]
        assert all(a != b for a, b in pairwise(mine))  # no repeated grant or withdrawal
    folded = dict.fromkeys(PURPOSES, False) | {e.purpose: e.action == "grant" for e in ledger}
    assert consent.current_consent(subscriber_id) == folded == expected
    assert consent.is_subscribed(subscriber_id) is any(expected.values())


def test_consent_events_cannot_be_changed_through_the_orm(subscriber_id):
    """The ledger is append-only in the code."""
    (event,) = events(subscriber_id)
    event.action = "withdraw"
    with pytest.raises(AppendOnlyError):
        db.session.commit()
    db.session.rollback()


def test_consent_events_cannot_be_deleted_one_by_one(subscriber_id):
    """Deleting an event through the ORM is refused."""
    (event,) = events(subscriber_id)
    db.session.delete(event)
    with pytest.raises(AppendOnlyError):
        db.session.commit()
    db.session.rollback()


def test_the_database_refuses_updates_to_the_ledger(subscriber_id):
    """Even raw SQL cannot rewrite a consent event (a trigger)."""
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text("UPDATE consent_events SET action = 'withdraw'"))
    db.session.rollback()


@pytest.mark.usefixtures("needs_postgresql")
@pytest.mark.parametrize(
    "statement", ["TRUNCATE consent_events, consent_states", "TRUNCATE subscribers CASCADE"]
)
def test_the_database_refuses_to_truncate_the_ledger(subscriber_id, statement):
    """TRUNCATE passes no row trigger: a statement trigger refuses it, also by cascade."""
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text(statement))
    db.session.rollback()
    assert len(events(subscriber_id)) == 1


def test_two_events_cannot_take_the_same_place(subscriber_id):
    """(subscriber_id, seq) is unique: a twin writer can never interleave."""
    db.session.add(
        ConsentEvent(
            subscriber_id=subscriber_id,
            seq=1,
            purpose="offers",
            action="withdraw",
            source="staff",
            actor="staff:1",
            privacy_notice_version="x",
            consent_text_version="x",
            created_at=NOW,
        )
    )
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_action_must_be_grant_or_withdraw(subscriber_id):
    """A check constraint keeps the action to the two known values."""
    with pytest.raises(IntegrityError):
        db.session.execute(
            text(
                "INSERT INTO consent_events (subscriber_id, seq, purpose, action, source, actor,"
                " privacy_notice_version, consent_text_version, created_at)"
                " VALUES (:id, 9, 'offers', 'maybe', 'staff', 'x', 'x', 'x', :now)"
            ),
            {"id": subscriber_id, "now": NOW.replace(tzinfo=None)},
        )
    db.session.rollback()


def test_the_number_is_unique_in_the_register(subscriber_id):
    """Two subscriber rows for one number are impossible."""
    db.session.add(
        Subscriber(
            phone_e164="+358401234567",
            language="fi",
            link_key="k",
            created_at=NOW,
            confirmed_at=NOW,
        )
    )
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_the_ledger_and_its_state_are_written_together_on_either_database(subscriber_id):
    """``states.record`` (one statement on PostgreSQL, two on SQLite): the events come back
    in ledger order with their ids and UTC times; what comes from outside is
    stored as the ORM would store it (no NUL); a purpose changed twice in one append
    ends in its last event's state; the stored state still equals the ledger's fold."""
    holding_id = db.session.scalar(
        select(Holding.id).where(Holding.subscriber_id == subscriber_id, Holding.ended_at.is_(None))
    )
    evidence = {name: None for name in EVIDENCE_FIELDS} | {
        "utm_campaign": "tal\x00vi",
        "privacy_notice_version": "2026-05",
        "consent_text_version": "offers-2",
    }
    later = NOW + timedelta(minutes=5)
    rows = [
        {"subscriber_id": subscriber_id, "holding_id": holding_id, "seq": seq,
         "purpose": purpose, "action": action, "source": "staff", "actor": "staff:1",
         "created_at": later, "basis": basis, "purchased_on": bought, **evidence}
        for seq, purpose, action, basis, bought in [
            (2, "new_content", "grant", "customer", date(2026, 11, 1)),
            (3, "offers", "withdraw", "consent", None),
            (4, "new_content", "withdraw", "customer", date(2026, 11, 1)),
        ]
    ]  # fmt: skip
    written = states.record(rows)
    db.session.commit()
    assert [(e.seq, e.purpose, e.action) for e in written] == [
        (2, "new_content", "grant"), (3, "offers", "withdraw"), (4, "new_content", "withdraw"),
    ]  # fmt: skip
    assert all(e.id is not None for e in written)
    db.session.expire_all()
    stored = events(subscriber_id)[1:]
    assert [e.id for e in stored] == [e.id for e in written]
    assert {e.utm_campaign for e in stored} == {"talvi"}
    assert [e.purchased_on for e in stored] == [date(2026, 11, 1), None, date(2026, 11, 1)]
    assert {e.created_at for e in stored} == {later} and later.tzinfo is UTC
    assert stored_states() == folded_states()
    assert consent.current_consent(subscriber_id) == dict.fromkeys(PURPOSES, False)
