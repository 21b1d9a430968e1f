"""The consent ledger: append-only, ordered, and the only source of the current state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from viihde import consent
from viihde.extensions import db
from viihde.models import AppendOnlyError, ConsentEvent, Subscriber

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIGNUP = consent.ConsentContext("signup", evidence=consent.Evidence(utm_campaign="talvi"))
SOURCES = ["signup", "preference_page", "sms_keyword", "staff", "register_update"]


@pytest.fixture
def subscriber(app_context) -> Subscriber:
    subscriber = consent.subscribe("+358401234567", consent.PURPOSES, SIGNUP, NOW)
    db.session.commit()
    return subscriber


def events(subscriber_id: int) -> list[ConsentEvent]:
    return list(
        db.session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subscriber_id == subscriber_id)
            .order_by(ConsentEvent.seq)
        )
    )


def test_subscribe_creates_the_subscriber_and_a_grant(subscriber):
    """One subscriber, one grant event with the signup context."""
    (event,) = events(subscriber.id)
    assert (event.action, event.purpose, event.source, event.utm_campaign) == (
        "grant",
        "marketing",
        "signup",
        "talvi",
    )
    assert consent.current_consent(subscriber.id) == {"marketing": True}


def test_subscribing_the_same_number_again_keeps_one_subscriber(subscriber):
    """The number is unique; a second confirmation appends to the same ledger."""
    again = consent.subscribe("+358401234567", consent.PURPOSES, SIGNUP, NOW + timedelta(days=1))
    db.session.commit()
    assert again.id == subscriber.id
    assert [e.seq for e in events(subscriber.id)] == [1, 2]


def test_withdraw_all_is_immediate_and_idempotent(subscriber):
    """STOP twice: one withdrawal, not subscribed."""
    stop = consent.ConsentContext(source="sms_keyword")
    assert len(consent.withdraw_all(subscriber.id, stop, NOW)) == 1
    assert consent.withdraw_all(subscriber.id, stop, NOW) == []
    assert consent.is_subscribed(subscriber.id) is False


def test_unknown_purpose_is_refused(subscriber):
    """Only configured purposes can be granted."""
    with pytest.raises(ValueError):
        consent.set_consent(subscriber.id, ["astrology"], True, SIGNUP, NOW)


def test_set_consent_for_a_missing_subscriber_records_nothing(app_context):
    """An erased subscriber's stale page cannot write events."""
    assert consent.set_consent(999999, consent.PURPOSES, False, SIGNUP, NOW) == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.tuples(st.booleans(), st.sampled_from(SOURCES)), max_size=12))
def test_current_state_is_always_the_fold_of_the_ledger(subscriber, steps):
    """Any sequence of grants and withdrawals from any source: state == last event."""
    db.session.execute(
        text("DELETE FROM consent_events WHERE subscriber_id = :id AND seq > 1"),
        {"id": subscriber.id},
    )
    db.session.commit()
    expected = True
    for granted, source in steps:
        written = consent.set_consent(
            subscriber.id, consent.PURPOSES, granted, consent.ConsentContext(source=source), NOW
        )
        assert len(written) == (1 if granted != expected else 0)
        expected = granted
    ledger = events(subscriber.id)
    assert [e.seq for e in ledger] == list(range(1, len(ledger) + 1))
    assert all(a.action != b.action for a, b in pairwise(ledger))
    assert consent.current_consent(subscriber.id) == {"marketing": ledger[-1].action == "grant"}
    assert consent.is_subscribed(subscriber.id) is expected


def test_consent_events_cannot_be_changed_through_the_orm(subscriber):
    """The ledger is append-only in the code."""
    (event,) = events(subscriber.id)
    event.action = "withdraw"
    with pytest.raises(AppendOnlyError):
        db.session.commit()
    db.session.rollback()


def test_consent_events_cannot_be_deleted_one_by_one(subscriber):
    """Deleting an event through the ORM is refused."""
    (event,) = events(subscriber.id)
    db.session.delete(event)
    with pytest.raises(AppendOnlyError):
        db.session.commit()
    db.session.rollback()


def test_the_database_refuses_updates_to_the_ledger(subscriber):
    """Even raw SQL cannot rewrite a consent event (a trigger)."""
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text("UPDATE consent_events SET action = 'withdraw'"))
    db.session.rollback()


def test_two_events_cannot_take_the_same_place(subscriber):
    """(subscriber_id, seq) is unique: a twin writer can never interleave."""
    db.session.add(
        ConsentEvent(
            subscriber_id=subscriber.id,
            seq=1,
            purpose="marketing",
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


def test_action_must_be_grant_or_withdraw(subscriber):
    """A check constraint keeps the action to the two known values."""
    with pytest.raises(IntegrityError):
        db.session.execute(
            text(
                "INSERT INTO consent_events (subscriber_id, seq, purpose, action, source, actor,"
                " privacy_notice_version, consent_text_version, created_at)"
                " VALUES (:id, 9, 'marketing', 'maybe', 'staff', 'x', 'x', 'x', :now)"
            ),
            {"id": subscriber.id, "now": NOW.replace(tzinfo=None)},
        )
    db.session.rollback()


def test_the_number_is_unique_in_the_register(subscriber):
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
