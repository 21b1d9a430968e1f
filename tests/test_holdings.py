"""A holding is a record: each period one person holds a number is its own row, and what
happens between the change day and the sync, and after it, goes to the right one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from viihde.extensions import db
from viihde.jobs import purge as purge_job
from viihde.models import (
    ConsentEvent,
    Holding,
    InboundMessage,
    SmsMessage,
    Subscriber,
    Tombstone,
    Verification,
)
from viihde.register import access, consent, customers, erasure, holders, holdings
from viihde.register.holdings import Whose
from viihde.register.replies import handle_inbound

NUMBER = "+358401234567"
BEFORE = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
#: The number passed to a new holder on 20.11. (midnight in Helsinki, in UTC).
SINCE = datetime(2026, 11, 19, 22, 0, tzinfo=UTC)
BETWEEN = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)  # after the change, before the sync
SYNC = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIGNUP = consent.ConsentContext("signup")
LINK = consent.ConsentContext("preference_page")
BUYER = consent.ConsentContext("customer_import", actor="system")


def subscriber_id() -> int:
    return db.session.scalar(select(Subscriber.id).where(Subscriber.phone_e164 == NUMBER))


def granted() -> set[str]:
    return {p for p, on in consent.current_consent(subscriber_id()).items() if on}


def previous_holders_number(_context=None) -> int:
    """NUMBER signed up for offers and new_content on 1.10."""
    subscriber = consent.subscribe(NUMBER, ["offers", "new_content"], SIGNUP, BEFORE)
    db.session.commit()
    return subscriber.id


def sync() -> holders.Outcome:
    outcome = holders.change_holder(NUMBER, SINCE, SYNC)
    db.session.commit()
    return outcome


def test_the_database_refuses_a_second_open_holding(app_context):
    """At most one open holding per number, whatever the code does."""
    number = previous_holders_number(app_context)
    db.session.add(Holding(subscriber_id=number, started_at=SYNC))
    with pytest.raises(IntegrityError):
        db.session.flush()


def test_a_change_closes_one_holding_and_opens_the_next_and_none_is_left_in_force(app_context):
    number = previous_holders_number(app_context)
    outcome = sync()

    assert (outcome.changed, outcome.withdrawn) == (True, 2)
    earlier, current = holdings.of_number(number)
    assert (earlier.started_at, earlier.ended_at) == (BEFORE, SINCE)
    assert (current.started_at, current.ended_at) == (SINCE, None)
    assert not any(e.action == "grant" for e in consent.latest_in(earlier.id).values())
    assert granted() == set()
    assert holdings.holder_since(number) == SINCE


def test_the_new_holders_sign_up_between_the_change_and_the_sync_is_theirs(app, outbox, visitor):
    """The code was confirmed from the number after the change: the grants, the code and
    its SMS move to the new holding and stay in force; the previous holder's go."""
    with app.app_context():
        previous_holders_number(None)
    with freeze_time(BETWEEN):
        visitor.sign_up("040 123 4567")  # offers, new_content and competitions
    with app.app_context():
        sync()
        _, current = holdings.of_number(subscriber_id())
        assert granted() == {"offers", "new_content", "competitions"}
        ids = {
            model.__name__: db.session.scalars(select(model.holding_id)).all()
            for model in (Verification, SmsMessage)
        }
        assert ids == {"Verification": [current.id], "SmsMessage": [current.id, current.id]}
        signups = db.session.scalars(
            select(ConsentEvent.holding_id).where(ConsentEvent.created_at == BETWEEN)
        ).all()
        assert signups == [current.id] * 3
        data = access.export(NUMBER, Whose.CURRENT)
        assert [m["kind"] for m in data["sms_messages"]] == ["code", "welcome"]
        assert {e["created_at"] for e in data["consent_events"]} == {BETWEEN.isoformat()}


def test_a_grant_through_the_previous_holders_link_after_the_change_is_not_carried_over(
    app_context,
):
    """The gap between the change day and the sync: a link still worked, and what was
    granted through it cannot be told from the previous holder's. It is withdrawn with
    theirs; the new holder never gets marketing they did not ask for."""
    number = previous_holders_number(app_context)
    consent.set_consent(number, ["competitions"], True, LINK, BETWEEN)
    db.session.commit()

    assert sync().withdrawn == 3
    assert granted() == set()
    earlier, _ = holdings.of_number(number)
    assert {e.holding_id for e in db.session.scalars(select(ConsentEvent))} == {earlier.id}


def test_a_stop_from_the_number_after_the_change_is_the_new_holders_word(app_context):
    """STOP by SMS came from whoever held the number then: the new holder. It stays their
    refusal (a later purchase does not override it), shown to them without the basis and
    purchase day of the previous holder's grant it ended."""
    customers_grants = customers.grant_as_customer(NUMBER, date(2026, 3, 14), "fi", BUYER, BEFORE)
    db.session.commit()
    number = customers_grants.subscriber.id
    handle_inbound("twilio", "SMstop", NUMBER, "STOP", BETWEEN)
    db.session.commit()

    sync()
    data = access.export(NUMBER, Whose.CURRENT)
    assert [
        (e["action"], e["source"], e["basis"], e["purchased_on"]) for e in data["consent_events"]
    ] == [("withdraw", "sms_keyword", None, None)] * len(customers_grants.granted)
    assert "2026-03-14" not in str(data)
    assert [r["keyword"] for r in data["sms_replies"]] == ["stop"]
    assert db.session.scalar(select(InboundMessage.holding_id)) == holdings.current(number).id

    later = customers.grant_as_customer(NUMBER, date(2026, 11, 23), "fi", BUYER, SYNC)
    assert later.granted == [] and sorted(later.refused) == sorted(
        e.purpose for e in customers_grants.granted
    )


def test_a_purchase_on_or_after_the_change_day_is_the_new_holders(app_context):
    """Imported before the sync, a purchase from the change day on proves the new holder:
    their customer grant moves over and stays; an older purchase is refused after it."""
    previous_holders_number(app_context)
    bought = customers.grant_as_customer(NUMBER, date(2026, 11, 20), "fi", BUYER, BETWEEN)
    db.session.commit()
    assert bought.renewed == [] and bought.already_granted  # offers was a consent already

    sync()
    assert granted() == {e.purpose for e in bought.granted}
    old = customers.grant_as_customer(NUMBER, date(2026, 11, 19), "fi", BUYER, SYNC)
    assert old.previous_holders


def test_each_holding_runs_out_on_its_own_clock(app, app_context):
    """The previous holder's proof is erased when its period is up, while the new holder
    stays; when the last holding's time comes, the whole number goes."""
    number = previous_holders_number(app_context)
    sync()
    consent.subscribe(NUMBER, ["offers"], SIGNUP, SYNC + timedelta(hours=1))
    db.session.commit()
    proof = timedelta(days=31 * app.config["RETENTION_PROOF_MONTHS"])

    report = purge_job.run(SYNC + proof)

    assert report.subscribers_erased == 1
    earlier, current = holdings.of_number(number)
    assert earlier.erased_at is not None and current.erased_at is None
    assert granted() == {"offers"}
    assert {e.holding_id for e in db.session.scalars(select(ConsentEvent))} == {current.id}
    assert db.session.scalar(select(Tombstone.holding_id)) == earlier.id
    assert access.export(NUMBER, Whose.EARLIER)["consent_events"] == []

    consent.withdraw_all(number, SIGNUP, SYNC + timedelta(days=2))
    db.session.commit()
    report = purge_job.run(SYNC + timedelta(days=3) + proof)

    assert report.subscribers_erased == 1
    assert subscriber_id() is None
    assert db.session.scalar(select(Holding.id)) is None
    assert len(db.session.scalars(select(Tombstone)).all()) == 2


def test_the_current_holder_erases_their_holding_and_can_sign_up_again(app_context):
    number = previous_holders_number(app_context)
    sync()
    consent.subscribe(NUMBER, ["offers"], SIGNUP, SYNC)
    db.session.commit()
    key = db.session.get(Subscriber, number).link_key

    erasure.erase_own(number, "subject", SYNC + timedelta(hours=1))
    db.session.commit()

    _, erased = holdings.of_number(number)
    assert erased.erased_at == erased.ended_at == SYNC + timedelta(hours=1)
    assert holdings.current(number) is None and granted() == set()
    assert db.session.get(Subscriber, number).link_key != key
    assert access.export(NUMBER, Whose.CURRENT)["consent_events"] == []

    consent.subscribe(NUMBER, ["competitions"], SIGNUP, SYNC + timedelta(days=1))
    db.session.commit()
    assert granted() == {"competitions"}
    assert len(holdings.of_number(number)) == 3


def test_erasing_again_with_nobody_holding_the_number_keeps_the_earlier_holders_proof(
    app_context,
):
    """The new holder erased their holding; a link reaches them again (the answer to
    HELP) and they erase again: what was written since goes (that answer, their HELP),
    the earlier holder's consent and messages stay as the proof they are."""
    number = previous_holders_number(app_context)
    sync()
    consent.subscribe(NUMBER, ["offers"], SIGNUP, SYNC)
    db.session.commit()
    erasure.erase_own(number, "subject", SYNC + timedelta(hours=1))
    db.session.commit()
    earlier = [
        (e.holding_id, e.action, e.purpose) for e in db.session.scalars(select(ConsentEvent))
    ]
    assert earlier and all(e[0] == holdings.of_number(number)[0].id for e in earlier)
    with freeze_time(SYNC + timedelta(days=1)):
        assert handle_inbound("twilio", "SM" + "1" * 32, NUMBER, "HELP", SYNC + timedelta(days=1))
        db.session.commit()
    assert db.session.scalar(select(SmsMessage).where(SmsMessage.kind == "reply")) is not None

    erasure.erase_own(number, "subject", SYNC + timedelta(days=2))
    db.session.commit()

    assert db.session.get(Subscriber, number) is not None
    after = [(e.holding_id, e.action, e.purpose) for e in db.session.scalars(select(ConsentEvent))]
    assert after == earlier
    assert db.session.scalar(select(SmsMessage).where(SmsMessage.kind == "reply")) is None
    assert db.session.scalar(select(InboundMessage)) is None
    assert len(holdings.of_number(number)) == 2
