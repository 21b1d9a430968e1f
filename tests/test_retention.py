"""Retention: ``flask register purge`` removes what the privacy notice says is not kept."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from viihde.clock import months_before
from viihde.extensions import db
from viihde.jobs import purge as purge_job
from viihde.models import (
    AuditEntry,
    Campaign,
    CampaignMessage,
    ConsentEvent,
    InboundMessage,
    SmsMessage,
    SmsStatusEvent,
    Subscriber,
    Tombstone,
    Verification,
)
from viihde.phone import mask
from viihde.register import codes as verification
from viihde.register import confirmation, consent, customers, expiry, holdings, retention
from viihde.register.erasure import tombstone_hash
from viihde.register.replies import handle_inbound
from viihde.sms import commit_then_send, send_sms
from viihde.sms.delivery import record_status

from . import factories
from .factories import number
from .helpers import number_in_clear

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
PENDING_AGE = timedelta(hours=24)  # RETENTION_PENDING_HOURS
SMS_LOG_AGE = timedelta(days=365)  # RETENTION_SMS_LOG_DAYS
PROOF_CUTOFF = datetime(2023, 11, 25, 12, 0, tzinfo=UTC)  # NOW less RETENTION_PROOF_MONTHS (36)
LONG_AGO = datetime(2016, 1, 1, tzinfo=UTC)
#: What a subscriber here granted at sign-up, unless a test says otherwise.
GRANTED = ("offers", "competitions")
TABLES = (
    Verification,
    SmsMessage,
    SmsStatusEvent,
    InboundMessage,
    Subscriber,
    ConsentEvent,
    Tombstone,
    AuditEntry,
)


@pytest.fixture
def clock():
    with freeze_time(NOW, ignore=["limits"]) as frozen:
        yield frozen


# --- building the register at chosen times ---


def signup_code(app, phone: str, at: datetime) -> int:
    """An unconfirmed sign-up: a code sent (and logged as an SMS), never typed in."""
    with app.app_context():
        code_id = verification.request_code(phone, verification.SignupDetails(), at).id
        commit_then_send(at)
        return code_id


def step_up_code(app, phone: str, at: datetime) -> int:
    with app.app_context():
        code_id = verification.request_step_up_code(phone, "fi", at).id
        commit_then_send(at)
        return code_id


def confirmed_signup(app, outbox, phone: str, at: datetime) -> int:
    """A sign-up whose code was typed in a minute later: a subscriber granting everything."""
    code_id = signup_code(app, phone, at)
    with app.app_context():
        result = confirmation.confirm_code(code_id, outbox.last_code(), at + timedelta(minutes=1))
        commit_then_send(NOW)
        assert result.outcome == confirmation.Outcome.CONFIRMED
        return result.subscriber_id


def sms_log(app, phone: str, at: datetime, sid: str) -> None:
    """One SMS with its delivery callback, and a reply to it, all at ``at``."""
    with app.app_context():
        message = send_sms(phone, "Tervetuloa!", "welcome", at)
        message.provider_sid = sid
        db.session.commit()
        assert record_status(sid, "delivered", None, at)
        handle_inbound("twilio", "re-" + sid, phone, "Kiitos", at)
        db.session.commit()


def counts(app) -> dict[str, int]:
    with app.app_context():
        return {
            model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
            for model in TABLES
        }


def purge(runner, *args: str) -> dict[str, int]:
    """Run the command; return the counts it printed, by their label."""
    result = runner.invoke(args=["register", "purge", *args])
    assert result.exit_code == 0, result.output
    assert not number_in_clear(result.output)
    return {label: int(n) for label, n in re.findall(r"^  (.+): (\d+)$", result.output, re.M)}


CODES = "one-time codes and unconfirmed sign-ups"
MESSAGES = "SMS log: messages"
CALLBACKS = "SMS log: delivery callbacks"
REPLIES = "SMS log: replies received"
ERASED = "people erased (no consent, proof period over)"
RECIPIENTS = "SMS log: campaign recipients forgotten (counts kept)"
ENDED = "customer marketing ended (purchase too long ago)"


# --- one-time codes ---


def test_codes_older_than_24_hours_are_removed_and_younger_ones_kept(app, runner, outbox, clock):
    """Unconfirmed sign-ups, step-up codes and confirmed codes alike go after 24 hours."""
    old = NOW - PENDING_AGE - SECOND
    gone = [
        signup_code(app, number(1), old),
        step_up_code(app, number(2), old),
    ]
    confirmed_signup(app, outbox, number(3), old)
    kept = [
        signup_code(app, number(4), NOW - PENDING_AGE + SECOND),
        step_up_code(app, number(5), NOW - PENDING_AGE + SECOND),
    ]

    printed = purge(runner)

    assert printed[CODES] == 3
    with app.app_context():
        assert sorted(db.session.scalars(select(Verification.id))) == kept
        assert db.session.scalar(select(Verification).where(Verification.id.in_(gone))) is None
        # The codes' SMS are part of the SMS log, kept for its own period.
        assert db.session.scalar(select(func.count()).select_from(SmsMessage)) == 6
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1


# --- the SMS log ---


def test_sms_log_older_than_365_days_is_removed_and_younger_kept(app, runner, clock):
    """Messages, their delivery callbacks and the replies received go after 365 days."""
    sms_log(app, number(1), NOW - SMS_LOG_AGE - SECOND, "SMold")
    sms_log(app, number(2), NOW - SMS_LOG_AGE + SECOND, "SMyoung")

    printed = purge(runner)

    assert (printed[MESSAGES], printed[CALLBACKS], printed[REPLIES]) == (1, 1, 1)
    with app.app_context():
        assert list(db.session.scalars(select(SmsMessage.provider_sid))) == ["SMyoung"]
        assert list(db.session.scalars(select(SmsStatusEvent.message_sid))) == ["SMyoung"]
        assert list(db.session.scalars(select(InboundMessage.message_sid))) == ["re-SMyoung"]


@pytest.mark.parametrize("config_overrides", [{"RETENTION_PENDING_HOURS": 400 * 24}])
def test_a_code_kept_longer_than_its_sms_only_loses_the_link_to_it(app, runner, clock):
    """verifications.sms_message_id points at the log: removing the SMS breaks no key."""
    code_id = step_up_code(app, number(1), NOW - SMS_LOG_AGE - SECOND)

    printed = purge(runner)

    assert (printed[CODES], printed[MESSAGES]) == (0, 1)
    with app.app_context():
        code = db.session.get(Verification, code_id)
        assert code is not None and code.sms_message_id is None


def test_a_callback_whose_message_is_gone_goes_by_its_own_age(app, runner, clock):
    """A callback for a message already erased (or never ours) is part of the log too."""
    with app.app_context():
        assert record_status("SMorphan", "delivered", None, NOW - SMS_LOG_AGE - SECOND)
        assert record_status("SMrecent", "delivered", None, NOW - SMS_LOG_AGE + SECOND)

    assert purge(runner)[CALLBACKS] == 1
    with app.app_context():
        assert list(db.session.scalars(select(SmsStatusEvent.message_sid))) == ["SMrecent"]


# --- consent and its proof ---


def test_a_person_with_a_current_grant_is_kept_however_old(app, runner, clock):
    """Any grant in force keeps the person, even with other purposes withdrawn long ago."""
    granted = factories.subscriber(app, number(1), GRANTED, at=LONG_AGO)
    partly = factories.subscriber(app, number(2), GRANTED, at=LONG_AGO)
    factories.withdrawal(app, partly, ["offers"], at=LONG_AGO + timedelta(days=1))
    withdrawn = factories.subscriber(app, number(3), GRANTED, at=LONG_AGO)
    factories.withdrawal(app, withdrawn, at=LONG_AGO + timedelta(days=1))

    assert purge(runner)[ERASED] == 1
    with app.app_context():
        assert sorted(db.session.scalars(select(Subscriber.id))) == [granted, partly]


def test_a_grant_that_is_no_longer_offered_still_keeps_the_person(app, runner, clock):
    """The ledger's own state decides, not the purposes on offer today."""
    kept = factories.subscriber(app, number(1), ("offers", "new_content"), at=LONG_AGO)
    factories.withdrawal(app, kept, ["offers"], at=LONG_AGO + timedelta(days=1))
    withdrawn = factories.subscriber(app, number(2), ("offers", "new_content"), at=LONG_AGO)
    factories.withdrawal(app, withdrawn, at=LONG_AGO + timedelta(days=1))
    app.config["CONSENT_PURPOSES"] = ["offers", "competitions"]

    assert purge(runner)[ERASED] == 1
    with app.app_context():
        assert list(db.session.scalars(select(Subscriber.id))) == [kept]


def test_a_withdrawn_person_past_the_proof_period_is_erased_to_a_tombstone(app, runner, clock):
    """Withdrawn everything more than 36 months ago: erased; just under: kept, with proof."""
    gone = factories.subscriber(app, number(1), GRANTED, at=LONG_AGO)
    factories.withdrawal(app, gone, at=PROOF_CUTOFF - SECOND)
    kept = factories.subscriber(app, number(2), GRANTED, at=LONG_AGO)
    factories.withdrawal(app, kept, at=PROOF_CUTOFF + SECOND)
    regranted = factories.subscriber(app, number(3), GRANTED, at=LONG_AGO)
    factories.withdrawal(app, regranted, at=LONG_AGO + timedelta(days=1))
    with app.app_context():
        context = consent.ConsentContext("signup")
        consent.set_consent(regranted, ["offers"], True, context, PROOF_CUTOFF - SECOND)
        db.session.commit()

    assert purge(runner)[ERASED] == 1

    with app.app_context():
        assert sorted(db.session.scalars(select(Subscriber.id))) == [kept, regranted]
        assert (
            db.session.scalar(select(func.count()).where(ConsentEvent.subscriber_id == gone)) == 0
        )
        tombstone = db.session.scalar(select(Tombstone))
        assert tombstone.phone_hash == tombstone_hash(number(1))
        assert tombstone.source == "retention"
        assert tombstone.erased_at == NOW


def test_erasure_takes_the_persons_remaining_messages_with_it(app, runner, outbox, clock):
    """Erasure goes through erasure.erase: the person's SMS log goes too, whatever its age."""
    gone = confirmed_signup(app, outbox, number(1), LONG_AGO)
    factories.withdrawal(app, gone, at=PROOF_CUTOFF - SECOND)
    with app.app_context():
        send_sms(number(1), "Hei", "test", NOW - timedelta(days=1))

    printed = purge(runner)

    assert printed[ERASED] == 1
    assert counts(app)["sms_messages"] == 0


def test_a_consent_given_after_the_search_keeps_the_person(app, monkeypatch, clock):
    """Each candidate is checked again under its row lock before it is erased."""
    late = factories.subscriber(app, number(1), GRANTED, at=LONG_AGO)
    factories.withdrawal(app, late, at=LONG_AGO + timedelta(days=1))
    gone = factories.subscriber(app, number(2), GRANTED, at=LONG_AGO)
    factories.withdrawal(app, gone, at=LONG_AGO + timedelta(days=1))
    find = retention.erasable
    with app.app_context():
        late_holding = holdings.current(late).id

    def then_consent_arrives(cutoff, holding_ids=None):
        if holding_ids == [late_holding]:
            consent.set_consent(late, ["offers"], True, consent.ConsentContext("signup"), NOW)
            db.session.commit()
        return find(cutoff, holding_ids)

    monkeypatch.setattr(retention, "erasable", then_consent_arrives)
    with app.app_context():
        report = purge_job.run(NOW)

    assert report.subscribers_erased == 1
    with app.app_context():
        assert list(db.session.scalars(select(Subscriber.id))) == [late]


# --- the run as a whole ---


def a_bit_of_everything(app, outbox) -> None:
    """One of each thing a purge removes, and one of each it keeps."""
    signup_code(app, number(1), NOW - PENDING_AGE - SECOND)
    step_up_code(app, number(2), NOW - PENDING_AGE + SECOND)
    sms_log(app, number(3), NOW - SMS_LOG_AGE - SECOND, "SMold")
    sms_log(app, number(4), NOW - SMS_LOG_AGE + SECOND, "SMyoung")
    gone = factories.subscriber(app, number(5), GRANTED, at=LONG_AGO)
    factories.withdrawal(app, gone, at=PROOF_CUTOFF - timedelta(days=1))
    kept = factories.subscriber(app, number(6), GRANTED, at=LONG_AGO)
    campaign_recipient(app, kept, NOW - SMS_LOG_AGE - SECOND)
    campaign_recipient(app, kept, NOW - SMS_LOG_AGE + SECOND)


def campaign_recipient(app, subscriber_id: int, at: datetime) -> None:
    """Someone a campaign went to at ``at``."""
    with app.app_context():
        campaign = Campaign(
            name="talvi", purpose="offers", body_fi="a", body_sv="b", body_en="c", created_at=at
        )
        db.session.add(campaign)
        db.session.flush()
        db.session.add(
            CampaignMessage(
                campaign_id=campaign.id,
                subscriber_id=subscriber_id,
                status="sent",
                language="fi",
                created_at=at,
            )
        )
        db.session.commit()


def test_old_campaign_recipients_are_forgotten_but_counted(app, runner, clock):
    """Who got a campaign goes with the SMS log; the campaign keeps its counts."""
    kept = factories.subscriber(app, number(6), GRANTED, at=LONG_AGO)
    campaign_recipient(app, kept, NOW - SMS_LOG_AGE - SECOND)
    campaign_recipient(app, kept, NOW - SMS_LOG_AGE + SECOND)

    assert purge(runner)[RECIPIENTS] == 1

    with app.app_context():
        rows = db.session.execute(
            select(CampaignMessage.subscriber_id).order_by(CampaignMessage.created_at)
        ).all()
    assert rows == [(None,), (kept,)]


EXPECTED = {CODES: 1, MESSAGES: 1, CALLBACKS: 1, REPLIES: 1, RECIPIENTS: 1, ERASED: 1, ENDED: 0}


def test_dry_run_changes_nothing_but_reports_the_same_counts(app, runner, outbox, clock):
    """--dry-run counts exactly what the real run then removes, and writes nothing."""
    a_bit_of_everything(app, outbox)
    before = counts(app)

    result = runner.invoke(args=["register", "purge", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "dry run, nothing changed" in result.output
    dry = {label: int(n) for label, n in re.findall(r"^  (.+): (\d+)$", result.output, re.M)}
    assert dry == EXPECTED
    assert counts(app) == before
    assert purge(runner) == dry


def test_running_twice_removes_nothing_the_second_time(app, runner, outbox, clock):
    a_bit_of_everything(app, outbox)

    assert purge(runner) == EXPECTED
    after = counts(app)
    second = purge(runner)

    assert set(second.values()) == {0}
    assert counts(app)["tombstones"] == after["tombstones"] == 1
    assert {k: v for k, v in counts(app).items() if k != "audit_entries"} == {
        k: v for k, v in after.items() if k != "audit_entries"
    }


def test_output_and_audit_never_show_a_phone_number(app, runner, outbox, clock):
    """Operators see counts only; each category's audit entry records its counts (committed
    with its work), a dry run none."""
    a_bit_of_everything(app, outbox)

    for args in (["--dry-run"], []):
        result = runner.invoke(args=["register", "purge", *args])
        assert result.exit_code == 0, result.output
        assert not number_in_clear(result.output)
        assert not re.search(r"\d{7,}", result.output)

    with app.app_context():
        entries = list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [(e.action, e.detail.split(":")[0]) for e in entries if e.action == "purge"] == [
        ("purge", category)
        for category in ("pending", "sms_log", "consent_proof", "customer_relationships")
    ]
    erasures = [e for e in entries if e.action != "purge"]
    assert [(e.action, e.detail) for e in erasures] == [("erase", "retention")]
    assert erasures[0].subject_hash is not None  # keyed, as the tombstone keeps it
    assert all(not number_in_clear(e.detail) for e in entries)
    assert all(not re.search(r"\d{7,}", e.detail) for e in entries)


def purge_entries(app) -> dict[str, str]:
    """The purge's audit entries by category: what each committed unit of work recorded."""
    with app.app_context():
        details = db.session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "purge"))
        return dict(detail.split(": ", 1) for detail in details)


def test_a_failing_category_is_rolled_back_and_reported(app, runner, outbox, monkeypatch, clock):
    """The SMS log fails midway: none of it is removed, the other categories still are."""
    a_bit_of_everything(app, outbox)
    sms_before = counts(app)["sms_messages"]
    delete_messages = expiry.purge_sms_log

    def fails_after_deleting(cutoff, dry_run):
        delete_messages(cutoff, dry_run)
        raise OperationalError("DELETE FROM inbound_messages", {}, Exception("lost"))

    monkeypatch.setattr(expiry, "purge_sms_log", fails_after_deleting)

    result = runner.invoke(args=["register", "purge"])

    assert result.exit_code == 1
    assert "FAILED (OperationalError) SMS log: nothing removed (rolled back)" in result.output
    printed = dict(re.findall(r"^  (.+): (\d+)$", result.output, re.M))
    assert printed[MESSAGES] == printed[CALLBACKS] == printed[REPLIES] == "0"
    assert printed[CODES] == printed[ERASED] == "1"
    assert counts(app)["sms_messages"] == sms_before
    assert counts(app)["sms_status_events"] == 2
    entries = purge_entries(app)
    assert "sms_log" not in entries  # rolled back with the category's work
    assert entries["pending"] == "verifications=1"


def test_a_scheduled_purge_with_a_failing_category_fails_its_job(app, outbox, monkeypatch, clock):
    """The job `rq cron` runs: a category that failed (rolled back, the rest done) fails
    the job, naming it, where it had returned counts as a success."""
    from viihde import tasks
    from viihde.jobs import purge

    a_bit_of_everything(app, outbox)

    def fails(cutoff, dry_run):
        raise OperationalError("DELETE FROM inbound_messages", {}, Exception("lost"))

    monkeypatch.setattr(expiry, "purge_sms_log", fails)
    with app.app_context(), pytest.raises(purge.PurgeFailed, match=r"sms_log \(OperationalError\)"):
        tasks.purge_register()
    assert "pending" in purge_entries(app)  # the other categories ran


def test_months_before_keeps_the_day_or_takes_the_months_last():
    assert months_before(NOW, 36) == PROOF_CUTOFF
    assert months_before(datetime(2026, 5, 31, tzinfo=UTC), 3) == datetime(2026, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 1) == datetime(2025, 12, 15, tzinfo=UTC)


# --- customer relationships that are over ---

#: CUSTOMER_RELATIONSHIP_MONTHS (24) before NOW, in Helsinki: a purchase before it is over.
CUSTOMER_CUTOFF = date(2024, 11, 25)
RELATIONSHIP_ENDED = "customer_relationship_ended"


def events(app, subscriber_id: int) -> list[tuple]:
    """The subscriber's events as (action, purpose, basis, purchased_on, source, actor)."""
    with app.app_context():
        return [
            (e.action, e.purpose, e.basis, e.purchased_on, e.source, e.actor)
            for e in db.session.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.subscriber_id == subscriber_id)
                .order_by(ConsentEvent.seq)
            )
        ]


def in_force(app, subscriber_id: int) -> dict[str, bool]:
    with app.app_context():
        return {p: on for p, on in consent.current_consent(subscriber_id).items() if on}


def ended(purposes, purchased_on: date) -> list[tuple]:
    return [
        ("withdraw", purpose, "customer", purchased_on, RELATIONSHIP_ENDED, "system")
        for purpose in purposes
    ]


def test_a_customer_grant_whose_purchase_is_too_old_is_withdrawn(app, runner, clock):
    """Purchase before the cutoff: withdrawn by the system with the basis and purchase it
    ends; on the cutoff day: still a relationship."""
    old = factories.customer(app, number(1), CUSTOMER_CUTOFF - timedelta(days=1))
    kept = factories.customer(app, number(2), CUSTOMER_CUTOFF)
    old_before = events(app, old)

    assert purge(runner)[ENDED] == 2

    assert events(app, old) == [
        *old_before,
        *ended(["offers", "new_content"], CUSTOMER_CUTOFF - timedelta(days=1)),
    ]
    assert in_force(app, old) == {}
    assert in_force(app, kept) == {"offers": True, "new_content": True}
    with app.app_context():
        withdrawn = db.session.scalars(
            select(ConsentEvent).where(ConsentEvent.action == "withdraw")
        )
        assert {event.created_at for event in withdrawn} == {NOW}
        people = db.session.scalars(
            select(AuditEntry.subject_masked).where(AuditEntry.action == "end_customer_grants")
        ).all()
    assert people == [mask(number(1))]  # whose grants ended: the old customer's number
    assert purge_entries(app)["customer_relationships"] == "customer_grants_ended=2"


def test_a_consent_as_old_as_a_lapsed_purchase_is_untouched(app, runner, clock):
    """The consent basis has no purchase to grow old: only "customer" grants end, even on
    the same number (a buyer who signed up keeps what they consented to)."""
    consenter = factories.subscriber(app, number(1), ("offers", "new_content"), at=LONG_AGO)
    both = factories.customer(app, number(2), CUSTOMER_CUTOFF - timedelta(days=400))
    with app.app_context():
        consent.subscribe(number(2), ["offers"], consent.ConsentContext("signup"), NOW)
        db.session.commit()
    consenter_before, both_before = events(app, consenter), events(app, both)

    assert purge(runner)[ENDED] == 1

    assert events(app, consenter) == consenter_before
    assert events(app, both) == [
        *both_before,
        *ended(["new_content"], CUSTOMER_CUTOFF - timedelta(days=400)),
    ]
    assert in_force(app, both) == {"offers": True}


def test_a_customer_grant_already_withdrawn_is_untouched(app, runner, clock):
    """A refusal is the last word (it keeps the customer basis and the purchase): nothing
    is withdrawn twice, and only the purpose still granted ends."""
    refused = factories.customer(app, number(1), CUSTOMER_CUTOFF - timedelta(days=30))
    factories.withdrawal(app, refused, at=NOW - timedelta(days=1))
    partly = factories.customer(app, number(2), CUSTOMER_CUTOFF - timedelta(days=30))
    factories.withdrawal(app, partly, ["offers"], at=NOW - timedelta(days=1))
    refused_before, partly_before = events(app, refused), events(app, partly)

    assert purge(runner, "--dry-run")[ENDED] == 1  # the search finds only grants in force
    assert purge(runner)[ENDED] == 1

    assert events(app, refused) == refused_before
    assert events(app, partly) == [
        *partly_before,
        *ended(["new_content"], CUSTOMER_CUTOFF - timedelta(days=30)),
    ]


def test_dry_run_counts_the_customer_grants_and_changes_nothing(app, runner, clock):
    factories.customer(app, number(1), CUSTOMER_CUTOFF - timedelta(days=1))
    factories.customer(app, number(2), CUSTOMER_CUTOFF - timedelta(days=1))
    factories.customer(app, number(3), CUSTOMER_CUTOFF)
    before = counts(app)

    assert purge(runner, "--dry-run")[ENDED] == 4
    with app.app_context():
        assert purge_job.run(NOW, dry_run=True).customer_grants_ended == 4

    assert counts(app) == before
    assert purge(runner)[ENDED] == 4


def test_a_second_purge_ends_no_customer_grant_again(app, runner, clock):
    factories.customer(app, number(1), CUSTOMER_CUTOFF - timedelta(days=1))
    factories.customer(app, number(2), CUSTOMER_CUTOFF - timedelta(days=1))

    assert purge(runner)[ENDED] == 4
    after = counts(app)["consent_events"]

    assert purge(runner, "--dry-run")[ENDED] == 0
    assert purge(runner)[ENDED] == 0
    assert counts(app)["consent_events"] == after


def test_a_consent_given_after_the_search_is_not_withdrawn(app, monkeypatch, clock):
    """Each candidate is checked again under its row lock: the buyer who signs up for
    offers meanwhile keeps that consent; what still rests on the old purchase ends."""
    late = factories.customer(app, number(1), CUSTOMER_CUTOFF - timedelta(days=1))
    gone = factories.customer(app, number(2), CUSTOMER_CUTOFF - timedelta(days=1))
    lapse = customers.lapse

    def then_consent_arrives(subscriber_id, cutoff, now):
        if subscriber_id == late:
            consent.subscribe(number(1), ["offers"], consent.ConsentContext("signup"), now)
            db.session.commit()
        return lapse(subscriber_id, cutoff, now)

    monkeypatch.setattr(customers, "lapse", then_consent_arrives)
    with app.app_context():
        report = purge_job.run(NOW)

    assert report.customer_grants_ended == 3
    assert in_force(app, late) == {"offers": True}
    assert events(app, late)[-2:] == [
        ("grant", "offers", "consent", None, "signup", "subject"),
        *ended(["new_content"], CUSTOMER_CUTOFF - timedelta(days=1)),
    ]
    assert in_force(app, gone) == {}


def test_a_failure_ending_customer_grants_keeps_what_was_committed(app, runner, monkeypatch, clock):
    """One commit per subscriber: those before the failure stay ended and are counted."""
    first = factories.customer(app, number(1), CUSTOMER_CUTOFF - timedelta(days=1))
    second = factories.customer(app, number(2), CUSTOMER_CUTOFF - timedelta(days=1))
    lapse = customers.lapse

    def fails_for_the_second(subscriber_id, cutoff, now):
        if subscriber_id == second:
            raise OperationalError("INSERT INTO consent_events", {}, Exception("lost"))
        return lapse(subscriber_id, cutoff, now)

    monkeypatch.setattr(customers, "lapse", fails_for_the_second)

    result = runner.invoke(args=["register", "purge"])

    assert result.exit_code == 1
    assert (
        "FAILED (OperationalError) customer marketing: stopped; only the grants counted "
        "above were ended" in result.output
    )
    assert dict(re.findall(r"^  (.+): (\d+)$", result.output, re.M))[ENDED] == "2"
    assert in_force(app, first) == {}
    assert in_force(app, second) == {"offers": True, "new_content": True}
    assert "customer_relationships" not in purge_entries(app)
    with app.app_context():
        ended = db.session.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "end_customer_grants")
        ).all()
    assert ended == ["customer relationship ended: 2"]  # the first person's, committed


@pytest.mark.parametrize("config_overrides", [{"CUSTOMER_RELATIONSHIP_MONTHS": 12}])
def test_the_relationship_lasts_the_configured_months(app, runner, clock):
    gone = factories.customer(app, number(1), date(2025, 11, 24))
    kept = factories.customer(app, number(2), date(2025, 11, 25))

    assert purge(runner)[ENDED] == 2
    assert in_force(app, gone) == {}
    assert in_force(app, kept) == {"offers": True, "new_content": True}
