"""The campaign sender: everyone with the purpose granted gets the campaign once, in their
language, with their own link; consent is checked again at each message; quiet hours
(across daylight saving), the rate, pause and resume hold. Time is a fake clock that
moves only when the sender sleeps."""

from __future__ import annotations

import itertools
import os
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select, update

from viihde import tasks
from viihde.config import ConfigError
from viihde.extensions import db
from viihde.jobs import campaigns as sender
from viihde.models import (
    AuditEntry,
    Campaign,
    CampaignMessage,
    SmsMessage,
)
from viihde.register import budget, campaigns, consent, erasure, holders
from viihde.sms import log_sms
from viihde.sms.delivery import in_flight_since
from viihde.sms.segments import segmentation

from . import factories
from .factories import number
from .helpers import csrf_token, race, stored_state_only

#: 14:00 in Helsinki on an ordinary November day: not in quiet hours.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIGNED_UP = NOW - timedelta(days=30)
SIGNUP = consent.ConsentContext("signup")
PAGE = consent.ConsentContext("preference_page")
BODIES = {
    "body_fi": "Hei! Talven tarjous: kaksi kuukautta hintaan yksi.",
    "body_sv": "Hej! Vinterns erbjudande: två månader till priset av en.",
    "body_en": "Hi! The winter offer: two months for the price of one.",
}
LINK = re.compile(r"https://viihdepaketti\.fi/\S+")


class FakeClock:
    """Time that moves only when the sender sleeps; ``on_sleep(n)`` runs at the n-th
    sleep, between two messages, as if someone acted meanwhile."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start
        self.slept: list[float] = []
        self.on_sleep = None

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(len(self.slept))
        self.now += timedelta(seconds=seconds)


def new_campaign(app, purpose: str = "offers", **bodies) -> int:
    with app.app_context():
        draft = campaigns.Draft(name="Talvi", purpose=purpose, **(BODIES | bodies))
        campaign_id = campaigns.create_draft(draft, None, NOW).id
        db.session.commit()
        return campaign_id


def start(app, campaign_id: int, clock: FakeClock) -> None:
    """Start sending; without a queue the sender runs at once, on the fake clock."""
    with app.app_context():
        sender.start(campaign_id, clock(), clock=clock, sleep=clock.sleep)


def run(app, campaign_id: int, clock: FakeClock, budget_seconds=None) -> str:
    with app.app_context():
        return sender.run(
            campaign_id, clock=clock, sleep=clock.sleep, budget_seconds=budget_seconds
        )


def campaign_row(app, campaign_id: int) -> Campaign:
    with app.app_context():
        campaign = db.session.get(Campaign, campaign_id)
        db.session.expunge(campaign)
        return campaign


def recipients(app, campaign_id: int) -> dict[int, str]:
    """Subscriber id -> status of each recipient row."""
    with app.app_context():
        rows = db.session.execute(
            select(CampaignMessage.subscriber_id, CampaignMessage.status).where(
                CampaignMessage.campaign_id == campaign_id
            )
        )
        return dict(rows.all())


def sent_to(outbox) -> list[str]:
    return [message["to"] for message in outbox.messages() if message["kind"] == "campaign"]


# Sending


def test_everyone_with_the_purpose_gets_it_once_in_their_language(app, outbox):
    """fi, sv and en subscribers get their own text and their own working link; someone
    without the purpose gets nothing; the campaign finishes."""
    ids = {
        1: factories.subscriber(app, number(1), at=SIGNED_UP, language="fi"),
        2: factories.subscriber(app, number(2), at=SIGNED_UP, language="sv"),
        3: factories.subscriber(app, number(3), ("new_content",), at=SIGNED_UP),
        4: factories.subscriber(app, number(4), at=SIGNED_UP, language="en"),
    }
    campaign_id = new_campaign(app)
    clock = FakeClock()
    start(app, campaign_id, clock)
    messages = {m["to"]: m["body"] for m in outbox.messages()}
    assert list(messages) == [number(1), number(2), number(4)]
    assert messages[number(1)].startswith(BODIES["body_fi"] + "\n")
    assert messages[number(2)].startswith(BODIES["body_sv"] + "\n")
    assert messages[number(4)].startswith(BODIES["body_en"] + "\nStop for free: https://")
    assert "reply STOP" not in messages[number(4)]  # an alphanumeric sender takes no replies
    link = LINK.search(messages[number(2)]).group(0)
    response = app.test_client().get(link.removeprefix("https://viihdepaketti.fi"))
    assert response.status_code == 302 and response.location.endswith("/preferences")
    campaign = campaign_row(app, campaign_id)
    assert (campaign.status, campaign.started_at, campaign.cursor) == ("finished", NOW, ids[4])
    assert campaign.finished_at == clock()
    assert recipients(app, campaign_id) == {ids[1]: "sent", ids[2]: "sent", ids[4]: "sent"}
    with app.app_context():
        logged = db.session.scalars(select(SmsMessage).order_by(SmsMessage.id)).all()
        assert [(m.kind, m.subscriber_id, m.status) for m in logged] == [
            ("campaign", ids[1], "sent"),
            ("campaign", ids[2], "sent"),
            ("campaign", ids[4], "sent"),
        ]
        languages = db.session.scalars(select(CampaignMessage.language).order_by("id")).all()
        assert languages == ["fi", "sv", "en"]


@pytest.mark.parametrize("config_overrides", [{"SMS_HOURLY_LIMIT": 2}])
def test_a_campaign_does_not_spend_the_sign_up_budget(app, outbox):
    """The budget breaker guards the codes against pumping: a campaign bigger than the
    hourly budget leaves sign-ups open, while codes still count."""
    for n in range(1, 4):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    start(app, new_campaign(app), FakeClock())
    assert len(outbox.messages()) == 3
    with app.app_context():
        assert budget.sms_pause(NOW + timedelta(minutes=1)) is None
        for n in range(2):
            log_sms(number(10 + n), "code", "code", NOW)
        db.session.commit()
        assert budget.sms_pause(NOW + timedelta(minutes=1)) is not None


@pytest.mark.parametrize("config_overrides", [{"TWILIO_FROM": "+358401110000"}])
def test_a_sender_number_adds_reply_stop(app, outbox):
    """When replies can reach us, the footer also offers STOP."""
    factories.subscriber(app, number(1), at=SIGNED_UP, language="en")
    start(app, new_campaign(app), FakeClock())
    assert outbox.last()["body"].endswith(" or reply STOP")


def test_the_audience_is_fixed_when_sending_starts(app, outbox):
    """Someone who signs up after the start is not in this campaign."""
    factories.subscriber(app, number(1), at=SIGNED_UP)
    factories.subscriber(app, number(2), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock()
    clock.on_sleep = lambda n: n == 1 and factories.subscriber(app, number(3), at=SIGNED_UP)
    start(app, campaign_id, clock)
    assert sent_to(outbox) == [number(1), number(2)]


def test_someone_who_opts_out_while_the_campaign_runs_is_not_messaged(app, outbox):
    """N switches the purpose off after the sender has started but before their turn:
    no SMS, and their row says skipped (consent gone)."""
    ids = [factories.subscriber(app, number(n), at=SIGNED_UP) for n in range(1, 6)]
    campaign_id = new_campaign(app)
    clock = FakeClock()
    clock.on_sleep = lambda n: (
        n == 1
        and factories.withdrawal(app, ids[3], ("offers",), at=clock() + timedelta(seconds=0.05))
    )
    start(app, campaign_id, clock)
    assert number(1) in sent_to(outbox)  # it had started before the opt-out
    assert sent_to(outbox) == [number(1), number(2), number(3), number(5)]
    assert recipients(app, campaign_id)[ids[3]] == "skipped"
    with app.app_context():
        assert (
            db.session.scalar(select(func.count()).where(SmsMessage.subscriber_id == ids[3])) == 0
        )


def test_stopping_all_marketing_while_the_campaign_runs_stops_it_too(app, outbox):
    """STOP by SMS (every purpose withdrawn) counts the same."""
    ids = [
        factories.subscriber(app, number(n), ("offers", "competitions"), at=SIGNED_UP)
        for n in range(1, 4)
    ]
    clock = FakeClock()
    stop = consent.ConsentContext("sms_keyword")
    with app.app_context():
        clock.on_sleep = lambda n: n == 1 and consent.withdraw_all(ids[2], stop, clock())
    start(app, new_campaign(app), clock)
    assert sent_to(outbox) == [number(1), number(2)]


def test_someone_who_opted_out_before_the_start_is_not_a_recipient(app, outbox):
    """An old withdrawal leaves no row at all: skipped means consent went during sending."""
    ids = [factories.subscriber(app, number(n), at=SIGNED_UP) for n in range(1, 4)]
    factories.withdrawal(app, ids[1], ("offers",), at=SIGNED_UP + timedelta(days=1))
    campaign_id = new_campaign(app)
    start(app, campaign_id, FakeClock())
    assert sent_to(outbox) == [number(1), number(3)]
    assert recipients(app, campaign_id) == {ids[0]: "sent", ids[2]: "sent"}


def test_someone_erased_while_the_campaign_runs_is_passed_over(app, outbox):
    """An erasure between the read-ahead and their turn: no SMS, no row."""
    ids = [factories.subscriber(app, number(n), at=SIGNED_UP) for n in range(1, 4)]
    campaign_id = new_campaign(app)
    clock = FakeClock()

    def erase(n):
        if n == 1:
            with app.app_context():
                erasure.erase(number(2), "staff", clock())
                db.session.commit()

    clock.on_sleep = erase
    start(app, campaign_id, clock)
    assert sent_to(outbox) == [number(1), number(3)]
    assert set(recipients(app, campaign_id)) == {ids[0], ids[2]}


# Quiet hours


def helsinki(*args) -> datetime:
    """A Helsinki wall-clock time, as UTC."""
    from viihde.clock import HELSINKI

    return datetime(*args, tzinfo=HELSINKI).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Ordinary winter (EET, UTC+2) and summer (EEST, UTC+3) days.
        (datetime(2026, 1, 15, 18, 59, tzinfo=UTC), None),  # 20:59
        (datetime(2026, 1, 15, 19, 0, tzinfo=UTC), datetime(2026, 1, 16, 7, 0, tzinfo=UTC)),
        (datetime(2026, 1, 16, 6, 59, tzinfo=UTC), datetime(2026, 1, 16, 7, 0, tzinfo=UTC)),
        (datetime(2026, 1, 16, 7, 0, tzinfo=UTC), None),  # 09:00
        (datetime(2026, 7, 15, 18, 30, tzinfo=UTC), datetime(2026, 7, 16, 6, 0, tzinfo=UTC)),
        (datetime(2026, 7, 16, 5, 59, tzinfo=UTC), datetime(2026, 7, 16, 6, 0, tzinfo=UTC)),
        (datetime(2026, 7, 16, 6, 0, tzinfo=UTC), None),
        # Spring forward, 2026-03-29 03:00 EET -> 04:00 EEST: the night is an hour shorter.
        (datetime(2026, 3, 28, 19, 30, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        (datetime(2026, 3, 29, 6, 0, tzinfo=UTC), None),  # 09:00 EEST
        (datetime(2026, 3, 28, 6, 30, tzinfo=UTC), datetime(2026, 3, 28, 7, 0, tzinfo=UTC)),
        # Fall back, 2026-10-25 04:00 EEST -> 03:00 EET: 03:00-04:00 happens twice.
        (datetime(2026, 10, 24, 18, 30, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        (datetime(2026, 10, 25, 6, 0, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        (datetime(2026, 10, 25, 7, 0, tzinfo=UTC), None),  # 09:00 EET
        (datetime(2026, 10, 24, 6, 0, tzinfo=UTC), None),  # 09:00 EEST the day before
    ],
)
def test_quiet_hours_end_at_nine_helsinki_time_across_daylight_saving(now, expected):
    """next_allowed: None when sending may go on, else 09:00 Helsinki time in UTC."""
    assert campaigns.next_allowed(now, "21:00-09:00") == expected


def test_the_dst_examples_as_wall_clock_times():
    """The same, written as Helsinki times: 21:30 the evening before the change."""
    spring = campaigns.next_allowed(helsinki(2026, 3, 28, 21, 30), "21:00-09:00")
    autumn = campaigns.next_allowed(helsinki(2026, 10, 24, 21, 30), "21:00-09:00")
    assert spring == helsinki(2026, 3, 29, 9, 0) == datetime(2026, 3, 29, 6, tzinfo=UTC)
    assert autumn == helsinki(2026, 10, 25, 9, 0) == datetime(2026, 10, 25, 7, tzinfo=UTC)


def test_quiet_hours_can_be_turned_off_or_moved():
    """An empty setting turns them off; a window need not cross midnight."""
    assert campaigns.next_allowed(helsinki(2026, 1, 1, 23, 0), "") is None
    assert campaigns.next_allowed(helsinki(2026, 1, 1, 12, 30), "12:00-13:00") == helsinki(
        2026, 1, 1, 13, 0
    )
    assert campaigns.next_allowed(helsinki(2026, 1, 1, 13, 0), "12:00-13:00") is None
    with pytest.raises(ConfigError):
        campaigns.next_allowed(NOW, "nine to five")


def queued_turns(monkeypatch) -> list:
    """Pretend there is a queue: each sender the code queues is noted (its ``at``)."""
    turns = []
    monkeypatch.setattr(sender, "sms_queue", lambda: object())
    monkeypatch.setattr(sender, "enqueue_campaign_sender", lambda _id, at=None: turns.append(at))
    return turns


def test_starting_in_quiet_hours_sends_nothing_until_they_end(app, outbox, monkeypatch):
    """At 21:30 on the eve of spring forward: no SMS, resume_at 09:00 EEST, the sender
    scheduled for then; run at that moment, it sends everything."""
    turns = queued_turns(monkeypatch)
    factories.subscriber(app, number(1), at=SIGNED_UP)
    factories.subscriber(app, number(2), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock(helsinki(2026, 3, 28, 21, 30))
    start(app, campaign_id, clock)
    assert turns == [None]  # queued to run now
    assert run(app, campaign_id, clock) == "quiet_hours"
    assert sent_to(outbox) == []
    morning = datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    campaign = campaign_row(app, campaign_id)
    assert (campaign.status, campaign.resume_at) == ("sending", morning)
    assert turns == [None, morning]
    clock.now = morning
    assert run(app, campaign_id, clock) == "finished"
    assert sent_to(outbox) == [number(1), number(2)]
    assert campaign_row(app, campaign_id).resume_at is None


def test_quiet_hours_beginning_during_sending_stop_it_at_nine_pm(app, outbox):
    """One message a second from 20:59:58: two go out, then it waits for the morning."""
    app.config["CAMPAIGN_MESSAGES_PER_SECOND"] = 1
    for n in range(1, 6):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock(helsinki(2026, 11, 25, 20, 59, 58))
    start(app, campaign_id, clock)
    assert sent_to(outbox) == [number(1), number(2)]
    assert campaign_row(app, campaign_id).resume_at == helsinki(2026, 11, 26, 9, 0)
    clock.now = helsinki(2026, 11, 26, 9, 0)
    assert run(app, campaign_id, clock) == "finished"
    assert sent_to(outbox) == [number(n) for n in range(1, 6)]


# Throttling


def test_the_sender_keeps_to_the_configured_rate(app, outbox):
    """Five a second and ten recipients: about two seconds of sleep in all, and never more
    than five messages in any one second of the clock."""
    app.config["CAMPAIGN_MESSAGES_PER_SECOND"] = 5
    for n in range(1, 11):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    clock = FakeClock()
    start(app, new_campaign(app), clock)
    assert len(sent_to(outbox)) == 10
    assert 1.8 <= sum(clock.slept) <= 2.0
    times = [datetime.fromisoformat(m["sent_at"]) for m in outbox.messages()]
    for moment in times:
        in_window = [t for t in times if moment <= t < moment + timedelta(seconds=1)]
        assert len(in_window) <= 5
    assert times[-1] - times[0] >= timedelta(seconds=1.8)


def test_skipped_recipients_do_not_slow_the_sender(app, outbox):
    """Only messages that go out take a turn of the rate."""
    app.config["CAMPAIGN_MESSAGES_PER_SECOND"] = 1
    ids = [factories.subscriber(app, number(n), at=SIGNED_UP) for n in range(1, 5)]
    clock = FakeClock()
    clock.on_sleep = lambda n: (
        n == 1 and [factories.withdrawal(app, i, ("offers",), at=clock()) for i in ids[1:3]]
    )
    start(app, new_campaign(app), clock)
    assert sent_to(outbox) == [number(1), number(4)]
    times = [datetime.fromisoformat(m["sent_at"]) for m in outbox.messages()]
    assert times == [NOW, NOW + timedelta(seconds=1)]  # not three seconds later


def test_a_turn_ends_after_its_budget_and_queues_the_next(app, outbox, monkeypatch):
    """A queued sender works budget_seconds, then queues its continuation and returns."""
    turns = queued_turns(monkeypatch)
    app.config["CAMPAIGN_MESSAGES_PER_SECOND"] = 5
    for n in range(1, 8):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock()
    start(app, campaign_id, clock)
    assert run(app, campaign_id, clock, budget_seconds=0.5) == "turn_over"
    assert sent_to(outbox) == [number(1), number(2), number(3)]
    assert turns == [None, None]  # the start, then the continuation
    assert run(app, campaign_id, clock, budget_seconds=10) == "finished"
    assert sent_to(outbox) == [number(n) for n in range(1, 8)]


# Pause and resume


def pause(app, campaign_id: int) -> None:
    """An admin presses Pause, in a request of their own."""
    with app.app_context():
        campaigns.pause(campaign_id)
        db.session.commit()


def test_pause_stops_the_sender_before_its_next_message_and_resume_sends_the_rest(app, outbox):
    """Paused after two messages: the sender stops at once; resumed, the other four go
    and nobody gets the campaign twice."""
    for n in range(1, 7):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock()
    clock.on_sleep = lambda n: n == 2 and pause(app, campaign_id)
    start(app, campaign_id, clock)
    assert sent_to(outbox) == [number(1), number(2)]
    assert campaign_row(app, campaign_id).status == "paused"
    assert run(app, campaign_id, clock) == "paused"  # a queued turn finds it paused too
    assert sent_to(outbox) == [number(1), number(2)]
    clock.on_sleep = None
    with app.app_context():
        sender.resume(campaign_id, clock=clock, sleep=clock.sleep)
    assert sent_to(outbox) == [number(n) for n in range(1, 7)]
    assert campaign_row(app, campaign_id).status == "finished"


def test_cancel_stops_for_good(app, outbox):
    """Cancelled mid-way: no more messages, and it cannot be resumed."""
    for n in range(1, 5):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock()

    def cancel(n):
        if n == 1:
            with app.app_context():
                campaigns.cancel(campaign_id, clock())
                db.session.commit()

    clock.on_sleep = cancel
    start(app, campaign_id, clock)
    assert sent_to(outbox) == [number(1)]
    with app.app_context(), pytest.raises(campaigns.CampaignStateError):
        sender.resume(campaign_id, clock=clock, sleep=clock.sleep)
    assert campaign_row(app, campaign_id).status == "cancelled"


@pytest.mark.parametrize(
    ("action", "status"),
    [("start", "sending"), ("pause", "draft"), ("pause", "paused"), ("resume", "finished")],
)
def test_each_action_needs_its_status(app, action, status):
    """Start only a draft, pause only while sending, resume only paused or sending."""
    campaign_id = new_campaign(app)
    with app.app_context():
        db.session.execute(update(Campaign).values(status=status))
        db.session.commit()
        calls = {
            "start": lambda: campaigns.start(campaign_id, NOW),
            "pause": lambda: campaigns.pause(campaign_id),
            "resume": lambda: campaigns.resume(campaign_id),
        }
        with pytest.raises(campaigns.CampaignStateError):
            calls[action]()


def test_only_a_draft_can_be_edited(app):
    """Once sending has started, the texts stay as they were sent."""
    campaign_id = new_campaign(app)
    start(app, campaign_id, FakeClock())
    with app.app_context(), pytest.raises(campaigns.CampaignStateError):
        campaigns.update_draft(campaign_id, campaigns.Draft("x", "offers", "a", "b", "c"))
        db.session.commit()


# Nobody twice


def test_running_the_sender_again_sends_nothing_more(app, outbox):
    """A finished campaign run again (a retried job) sends nothing."""
    for n in range(1, 4):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock()
    start(app, campaign_id, clock)
    assert run(app, campaign_id, clock) == "finished"
    assert len(sent_to(outbox)) == 3


def test_a_sender_that_lost_its_place_sends_nobody_a_second_message(app, outbox):
    """Even with the cursor back at the start, the recipient rows stop every repeat."""
    for n in range(1, 4):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock()
    start(app, campaign_id, clock)
    with app.app_context():
        db.session.execute(update(Campaign).values(status="sending", cursor=0))
        db.session.commit()
    assert run(app, campaign_id, clock) == "finished"
    assert sent_to(outbox) == [number(1), number(2), number(3)]
    assert len(recipients(app, campaign_id)) == 3


class Killed(BaseException):
    """The sender's process dies (a worker killed between two statements)."""


def killed_after_logging(monkeypatch, nth: int) -> None:
    """The sender dies after committing its ``nth`` message, before handing it over."""
    real, calls = sender.deliver, []

    def deliver(*args, **kwargs):
        calls.append(args)
        if len(calls) == nth:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(sender, "deliver", deliver)


def sms_row(app, phone: str) -> tuple[str, str | None]:
    with app.app_context():
        message = db.session.scalars(
            select(SmsMessage).where(SmsMessage.phone_e164 == phone, SmsMessage.kind == "campaign")
        ).one()
        return message.status, message.error_code


def test_a_message_whose_sender_died_before_handing_it_over_is_sent_by_the_next_turn(
    app, outbox, monkeypatch
):
    """Logged and committed, then the worker died: the next turn sends it, once."""
    for n in range(1, 4):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock()
    killed_after_logging(monkeypatch, 2)
    with pytest.raises(Killed):
        start(app, campaign_id, clock)
    monkeypatch.undo()
    assert sent_to(outbox) == [number(1)]
    assert sms_row(app, number(2)) == ("queued", None)

    clock.now += timedelta(seconds=30)  # too soon to tell from a sender still at work
    assert run(app, campaign_id, clock, budget_seconds=0) == "turn_over"
    assert sent_to(outbox) == [number(1)]

    clock.now += timedelta(minutes=1)
    assert run(app, campaign_id, clock) == "finished"
    assert sent_to(outbox) == [number(1), number(2), number(3)]
    assert sms_row(app, number(2)) == ("sent", None)
    assert recipients(app, campaign_id) == dict.fromkeys(recipients(app, campaign_id), "sent")


def test_an_orphaned_message_is_not_sent_after_the_person_opted_out(app, outbox, monkeypatch):
    """Consent is checked again when the orphan is handed over: gone, so it is not sent."""
    ids = [factories.subscriber(app, number(n), at=SIGNED_UP) for n in range(1, 3)]
    campaign_id = new_campaign(app)
    clock = FakeClock()
    killed_after_logging(monkeypatch, 1)
    with pytest.raises(Killed):
        start(app, campaign_id, clock)
    monkeypatch.undo()
    factories.withdrawal(app, ids[0], ("offers",), at=clock.now + timedelta(seconds=5))

    clock.now += timedelta(minutes=2)
    assert run(app, campaign_id, clock) == "finished"
    assert sent_to(outbox) == [number(2)]
    assert sms_row(app, number(1)) == ("failed", "consent_withdrawn")
    assert recipients(app, campaign_id) == {ids[0]: "skipped", ids[1]: "sent"}


def test_a_message_whose_sender_died_talking_to_the_provider_is_not_sent_again(
    app, outbox, monkeypatch
):
    """It may have gone out: it is marked failed with its outcome unknown, never repeated."""
    factories.subscriber(app, number(1), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock()
    killed_after_logging(monkeypatch, 1)
    with pytest.raises(Killed):
        start(app, campaign_id, clock)
    monkeypatch.undo()
    with app.app_context():
        db.session.execute(update(SmsMessage).values(status="sending", updated_at=clock.now))
        db.session.commit()

    clock.now += timedelta(seconds=10)  # within the provider's time-out: left alone ...
    with app.app_context():
        window = clock.now - in_flight_since(clock.now)
    # ... and the campaign does not finish with it unsettled: the sender waits until the
    # attempt is surely dead, then settles it (outcome unknown) and finishes.
    assert run(app, campaign_id, clock) == "finished"
    assert sms_row(app, number(1)) == ("failed", "outcome_unknown")
    assert clock.now >= NOW + window
    assert sent_to(outbox) == []


def killed_with_its_last_message_logged(app, monkeypatch) -> tuple[int, FakeClock]:
    """A campaign to two people whose sender died after logging the second's message and
    before handing it over (the first's went); its id and clock."""
    factories.subscriber(app, number(1), at=SIGNED_UP)
    factories.subscriber(app, number(2), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    clock = FakeClock()
    killed_after_logging(monkeypatch, 2)
    with pytest.raises(Killed):
        start(app, campaign_id, clock)
    monkeypatch.undo()
    return campaign_id, clock


def test_a_campaign_does_not_finish_with_a_message_its_dead_sender_left_queued(
    app, outbox, monkeypatch
):
    """The sender died after logging the last recipient and before handing the SMS over;
    the next turn finds nobody left to send to. It does not finish (the message would be
    sent by nobody, and count as sent): it waits until the message is an orphan, adopts
    it (consent still stands), and then finishes."""
    campaign_id, clock = killed_with_its_last_message_logged(app, monkeypatch)
    assert sms_row(app, number(2))[0] == "queued"

    clock.now += timedelta(seconds=30)
    assert run(app, campaign_id, clock, budget_seconds=20) == "settling"  # due past its turn
    assert sms_row(app, number(2))[0] == "queued"
    clock.now += timedelta(seconds=40)
    assert run(app, campaign_id, clock) == "finished"
    assert sms_row(app, number(2))[0] == "sent"
    assert sorted(sent_to(outbox)) == [number(1), number(2)]


def test_cancelling_fails_the_messages_not_yet_handed_over(app, outbox, monkeypatch):
    """A cancel stops the campaign for good: a message its sender logged and did not hand
    over is not sent by anyone later, and is failed ("campaign_cancelled"), not left
    queued for ever."""
    campaign_id, clock = killed_with_its_last_message_logged(app, monkeypatch)
    with app.app_context():
        campaigns.cancel(campaign_id, clock.now)
        db.session.commit()
    assert sms_row(app, number(2)) == ("failed", "campaign_cancelled")
    assert sent_to(outbox) == [number(1)]
    with app.app_context():  # counted as skipped, not as sent and failed both
        statuses = db.session.scalars(
            select(CampaignMessage.status).order_by(CampaignMessage.id)
        ).all()
    assert statuses == ["sent", "skipped"]


def test_a_plain_rq_worker_runs_the_sender_in_an_app_of_its_own(app, outbox, monkeypatch):
    """`rq worker` gives the job no app: it builds one with the app factory, and sends."""
    import viihde

    factories.subscriber(app, number(1), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    with app.app_context():
        db.session.execute(
            update(Campaign).values(status="sending", started_at=NOW, last_subscriber_id=10**6)
        )
        db.session.commit()
    monkeypatch.setattr(viihde, "create_app", lambda: app)
    app.config["CAMPAIGN_QUIET_HOURS"] = ""

    assert tasks.run_campaign(campaign_id) == "finished"
    assert sent_to(outbox) == [number(1)]


def test_two_senders_at_once_send_each_message_once(app, outbox):
    """Twin senders (two workers, a retried job) share the work; nobody gets two."""
    for n in range(1, 9):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    with app.app_context():
        db.session.execute(
            update(Campaign).values(status="sending", started_at=NOW, last_subscriber_id=10**6)
        )
        db.session.commit()
    clocks = [FakeClock(), FakeClock()]
    results = race(
        *(lambda c=c: sender.run(campaign_id, clock=c, sleep=c.sleep) for c in clocks),
        app=app,
    )
    # A twin that finds the other's last message still in hand leaves it to be settled
    # (with a queue, its turn comes back when it would be an orphan); the other finishes.
    assert "finished" in results and set(results) <= {"finished", "settling"}
    with app.app_context():
        assert db.session.get(Campaign, campaign_id).status == "finished"
    assert sorted(sent_to(outbox)) == [number(n) for n in range(1, 9)]
    assert len(recipients(app, campaign_id)) == 8


# Customers


def test_a_customers_first_campaign_message_says_how_to_refuse(app, outbox):
    """Marketing on the customer basis: the first message says why it comes and how to
    refuse; the next campaign's message carries the ordinary footer."""
    customer = factories.customer(app, number(1), date(2026, 10, 1), at=SIGNED_UP)
    subscriber = factories.subscriber(app, number(2), at=SIGNED_UP, language="fi")
    first = new_campaign(app, body_fi="Syystarjous.")
    start(app, first, FakeClock())
    second = new_campaign(app, body_fi="Joulutarjous.")
    start(app, second, FakeClock())
    bodies = [(m["to"], m["body"]) for m in outbox.messages()]
    assert bodies[0][0] == number(1)
    assert "\nSaat tämän asiakkaanamme. Kiellä maksutta: https://" in bodies[0][1]
    assert "\nLopeta maksutta: https://" in bodies[1][1]  # consent: the ordinary footer
    assert bodies[2][0] == number(1)
    assert "\nLopeta maksutta: https://" in bodies[2][1]
    assert "asiakkaanamme" not in bodies[2][1]
    with app.app_context():
        rows = db.session.execute(
            select(
                CampaignMessage.campaign_id, CampaignMessage.subscriber_id, CampaignMessage.basis
            ).order_by(CampaignMessage.id)
        ).all()
    assert rows == [
        (first, customer, "customer"),
        (first, subscriber, "consent"),
        (second, customer, "customer"),
        (second, subscriber, "consent"),
    ]


def _bodies_to(outbox, phone: str) -> list[str]:
    return [m["body"] for m in outbox.messages() if m["to"] == phone]


def test_a_new_holders_first_customer_message_says_how_to_refuse(app, outbox):
    """The number passed to a new holder, who bought too: the earlier holder's customer
    message told the new one nothing, so theirs carries the notice again."""
    factories.customer(app, number(1), date(2026, 10, 1), at=SIGNED_UP)
    start(app, new_campaign(app, body_fi="Syystarjous."), FakeClock(SIGNED_UP + timedelta(days=1)))
    with app.app_context():
        holders.change_holder(number(1), NOW - timedelta(days=3), NOW - timedelta(days=2))
        db.session.commit()
    factories.customer(app, number(1), date(2026, 11, 23), at=NOW - timedelta(days=1))
    start(app, new_campaign(app, body_fi="Joulutarjous."), FakeClock())

    first, second = _bodies_to(outbox, number(1))
    assert "asiakkaanamme" in first and "asiakkaanamme" in second


def test_a_failed_first_customer_message_does_not_count_as_the_notice(app, outbox):
    """The first customer message failed (never reached the phone): the next says it."""
    factories.customer(app, number(1), date(2026, 10, 1), at=SIGNED_UP)
    start(app, new_campaign(app, body_fi="Syystarjous."), FakeClock())
    with app.app_context():
        db.session.execute(update(SmsMessage).values(status="failed", error_code="30003"))
        db.session.commit()
    start(app, new_campaign(app, body_fi="Joulutarjous."), FakeClock())

    first, second = _bodies_to(outbox, number(1))
    assert "asiakkaanamme" in first and "asiakkaanamme" in second


@pytest.mark.parametrize("config_overrides", [{"TWILIO_FROM": "+358401110000"}])
def test_a_customers_refusal_footer_offers_stop_when_replies_arrive(app, outbox):
    factories.customer(app, number(1), date(2026, 10, 1), at=SIGNED_UP)
    start(app, new_campaign(app), FakeClock())
    assert outbox.last()["body"].endswith(" tai vastaa STOP")  # the customer's language
    assert "Kiellä maksutta" in outbox.last()["body"]


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
@pytest.mark.parametrize("customer", [False, True])
@pytest.mark.parametrize("replies", [False, True])
def test_every_footer_is_gsm7_in_every_language(app_context, language, customer, replies):
    """The footer never turns a campaign into UCS-2 (a typographic apostrophe would)."""
    from viihde.sms.texts import campaign_footer

    link = "https://viihdepaketti.fi/" + "Abcd-_." + "Abcdefghijklmn-_"  # the longest
    text = campaign_footer(link, language, replies, customer)
    assert link in text
    assert segmentation(text).encoding == "GSM-7"
    assert segmentation(text).units <= 120  # 40 characters of one segment left for the text


# Estimates


def test_preview_counts_segments_recipients_and_cost_per_language(app):
    """Each language: the body with the footer and the longest link, its segments and
    encoding, the recipients in that language now, and recipients x segments x price."""
    for n in range(1, 4):
        factories.subscriber(app, number(n), at=SIGNED_UP, language="fi")
    factories.subscriber(app, number(4), at=SIGNED_UP, language="sv")
    factories.subscriber(app, number(5), ("new_content",), at=SIGNED_UP, language="sv")
    factories.customer(app, number(6), date(2026, 10, 1), at=SIGNED_UP)
    bodies = {"fi": "a" * 120, "sv": "Hej 😀", "en": "Hi"}
    with app.app_context():
        previews = {p.language: p for p in campaigns.preview("offers", bodies)}
        link = campaigns.sample_link()
    assert len(link) == len("https://viihdepaketti.fi/") + 23  # as long as any real link
    fi, sv, en = previews["fi"], previews["sv"], previews["en"]
    assert fi.text == "a" * 120 + "\nLopeta maksutta: " + link
    assert fi.segmentation == segmentation(fi.text)
    assert (fi.segmentation.encoding, fi.segmentation.segments) == ("GSM-7", 2)
    assert (fi.recipients, fi.customers) == (4, 1)
    # A customer's first message carries the refusal footer: its own, longer text.
    with app.app_context():
        customer_text = campaigns.sample_text("a" * 120, "fi", customer=True)
    assert fi.customer_segmentation == segmentation(customer_text)
    assert fi.customer_segmentation.units > fi.segmentation.units
    customer_segments = fi.customer_segmentation.segments
    assert fi.cost == Decimal("0.08") * (3 * 2 + 1 * customer_segments)
    assert (sv.segmentation.encoding, sv.recipients) == ("UCS-2", 1)
    assert sv.cost == Decimal("0.08") * sv.segmentation.segments
    assert (en.recipients, en.cost) == (0, Decimal("0.00"))


# Figures


def test_figures_per_campaign(app, outbox):
    """Recipients, sent, skipped, delivered, failed (from the SMS log) and opt-outs: those
    who withdrew the campaign's purpose after their message."""
    ids = [
        factories.subscriber(app, number(n), ("offers", "new_content"), at=SIGNED_UP)
        for n in range(1, 7)
    ]
    campaign_id = new_campaign(app)
    clock = FakeClock()
    clock.on_sleep = lambda n: n == 1 and factories.withdrawal(app, ids[5], ("offers",), at=clock())
    start(app, campaign_id, clock)
    later = clock() + timedelta(hours=1)
    factories.withdrawal(
        app, ids[0], ("offers",), at=later
    )  # opted out of offers after the message
    factories.withdrawal(app, ids[1], ("new_content",), at=later)  # another purpose: not counted
    with app.app_context():
        for subscriber_id, status in [
            (ids[2], "delivered"),
            (ids[3], "delivered"),
            (ids[4], "failed"),
        ]:
            db.session.execute(
                update(SmsMessage)
                .where(SmsMessage.subscriber_id == subscriber_id)
                .values(status=status)
            )
        db.session.commit()
        (row,) = campaigns.figures()
    assert row.campaign.id == campaign_id
    assert (row.recipients, row.sent, row.skipped) == (6, 5, 1)
    assert (row.delivered, row.failed, row.opted_out) == (2, 1, 1)


def test_erasing_a_recipient_keeps_the_figures_not_the_person(app, outbox):
    """The recipient row stays (the campaign's figures), without who it was."""
    ids = [factories.subscriber(app, number(n), at=SIGNED_UP) for n in range(1, 3)]
    campaign_id = new_campaign(app)
    start(app, campaign_id, FakeClock())
    with app.app_context():
        erasure.erase(number(1), "staff", NOW + timedelta(days=1))
        db.session.commit()
        (row,) = campaigns.figures()
        assert (row.recipients, row.sent) == (2, 2)
    assert recipients(app, campaign_id) == {None: "sent", ids[1]: "sent"}
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SmsMessage)) == 1


# The console


@pytest.fixture
def frozen(request):
    """The console's time: 14:00 in Helsinki unless a test names another (indirectly)."""
    # The rate limiter's counters keep real time: they expire by their own clock.
    moment = getattr(request, "param", "2026-11-25 12:00:00")
    with freeze_time(moment, ignore=["limits"]) as frozen:
        yield frozen


@pytest.fixture
def admin(app, frozen):
    # Sending runs inline in tests (no queue) and in real time: let it go fast.
    app.config["CAMPAIGN_MESSAGES_PER_SECOND"] = 1000
    return factories.signed_in_staff(app, "admin")


@pytest.fixture
def support(app, frozen):
    return factories.signed_in_staff(app, "support")


EN = {"Accept-Language": "en"}


def post(client, path: str, **data):
    """Submit a console form as the browser would, with the session's CSRF token."""
    token = csrf_token(client.get("/staff/campaigns/new", headers=EN).text)
    return client.post(path, data={"csrf_token": token, **data}, headers=EN)


def admin_post(admin, path: str, **data):
    """As post(), reading the token from a page an admin may open."""
    return post(admin, path, **data)


def audit_actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


CAMPAIGN_PAGES = ["/staff/campaigns", "/staff/campaigns/new", "/staff/campaigns/{id}"]
CAMPAIGN_ACTIONS = [
    "/staff/campaigns/new",
    "/staff/campaigns/{id}",
    "/staff/campaigns/{id}/test",
    "/staff/campaigns/{id}/start",
    "/staff/campaigns/{id}/pause",
    "/staff/campaigns/{id}/resume",
    "/staff/campaigns/{id}/cancel",
]


def test_support_staff_cannot_reach_the_campaign_sender(app, support, outbox):
    """Campaigns are for admins: support gets 403 on every page and action, and even a
    hand-made request changes and sends nothing."""
    factories.subscriber(app, number(1), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    for path in CAMPAIGN_PAGES:
        assert support.get(path.format(id=campaign_id)).status_code == 403, path
    token = csrf_token(support.get("/staff/", headers=EN).text)
    data = {"csrf_token": token, "number": "040 765 4321", "language": "fi", "confirm": "y"}
    data |= BODIES | {"name": "x", "purpose": "offers", "save": "Save"}
    for path in CAMPAIGN_ACTIONS:
        assert support.post(path.format(id=campaign_id), data=data).status_code == 403, path
    assert outbox.messages() == []
    assert campaign_row(app, campaign_id).status == "draft"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Campaign)) == 1


def test_campaign_pages_send_the_anonymous_to_sign_in(client):
    for path in CAMPAIGN_PAGES:
        response = client.get(path.format(id=1))
        assert (response.status_code, response.location) == (302, "/staff/login")


def test_the_nav_shows_campaigns_to_admins_only(admin, support):
    assert 'href="/staff/campaigns"' in admin.get("/staff/", headers=EN).text
    assert 'href="/staff/campaigns"' not in support.get("/staff/", headers=EN).text


def test_an_admin_writes_previews_tests_and_sends_a_campaign(app, admin, outbox):
    """Compose, preview (nothing saved), save, edit, test on their own phone, start."""
    factories.subscriber(app, number(1), at=SIGNED_UP, language="fi")
    factories.subscriber(app, number(2), at=SIGNED_UP, language="en")
    page = admin.get("/staff/campaigns/new", headers=EN)
    assert page.status_code == 200
    assert '<script src="/static/js/campaign.js" defer></script>' in page.text
    assert "data-footer=" in page.text and "Stop for free: https://viihdepaketti.fi/" in page.text

    form = {"name": "Talvi", "purpose": "offers", **BODIES}
    preview = admin_post(admin, "/staff/campaigns/new", **form, preview="Preview")
    assert preview.status_code == 200
    fi = campaigns_figures(preview.text, "fi")
    expected = segmentation(BODIES["body_fi"] + "\nLopeta maksutta: " + sample_link(app))
    assert fi == {
        "segments": str(expected.segments),
        "encoding": expected.encoding,
        "units": str(expected.units),
        "recipients": "1",
        "cost": str(Decimal("0.08") * expected.segments),
    }
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0

    saved = admin_post(admin, "/staff/campaigns/new", **form, save="Save")
    assert saved.status_code == 302
    with app.app_context():
        campaign_id = db.session.scalar(select(Campaign.id))
    assert saved.location == f"/staff/campaigns/{campaign_id}"
    path = f"/staff/campaigns/{campaign_id}"
    edited = admin_post(admin, path, **form | {"body_en": "Hi! Cheaper now."}, save="Save")
    assert edited.status_code == 302

    tested = admin_post(admin, f"{path}/test", number="040 765 4321", language="en")
    assert tested.status_code == 302
    test_message = outbox.last()
    assert (test_message["to"], test_message["kind"]) == ("+358407654321", "campaign_test")
    assert test_message["body"] == "Hi! Cheaper now.\nStop for free: " + sample_link(app)
    assert "sent to +358 40 *** **21" in admin.get(path, headers=EN).text

    refused = admin_post(admin, f"{path}/start")
    assert refused.status_code == 400
    assert "Tick the box to start sending." in refused.text
    assert admin_post(admin, f"{path}/start", confirm="y").status_code == 302
    assert sent_to(outbox) == [number(1), number(2)]
    assert campaign_row(app, campaign_id).status == "finished"
    listing = admin.get("/staff/campaigns", headers=EN).text
    assert "Talvi" in listing and "Finished" in listing
    assert audit_actions(app) == [
        "login",
        "create_campaign",
        "edit_campaign",
        "test_send_campaign",
        "start_campaign",
    ]
    with app.app_context():
        entry = db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "test_send_campaign")
        )
        assert entry.subject_masked == "+358 40 *** **21"
        assert f"campaign {campaign_id}: Talvi (en)" == entry.detail


def sample_link(app) -> str:
    with app.test_request_context():
        return campaigns.sample_link()


def campaigns_figures(page: str, language: str) -> dict[str, str]:
    """The figures shown for one language (the cost as its plain value)."""
    block = re.search(
        rf'<dl class="sms-figures" id="figures-{language}".*?</dl>', page, re.S
    ).group(0)
    figures = dict(re.findall(r'data-figure="([\w-]+)"[^>]*>([^<]*)<', block))
    figures["cost"] = re.search(r'data-figure="cost" data-value="([^"]+)"', block).group(1)
    figures.pop("customer-segments")
    return figures


def test_a_campaign_with_an_empty_text_is_not_saved(app, admin):
    """Every language needs its text."""
    form = {"name": "Talvi", "purpose": "offers", **BODIES, "body_sv": " "}
    response = admin_post(admin, "/staff/campaigns/new", **form, save="Save")
    assert response.status_code == 400
    assert "Write the text in every language." in response.text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0


def test_pause_resume_and_cancel_are_buttons_that_leave_audit_entries(app, admin, outbox):
    campaign_id = new_campaign(app)
    with app.app_context():
        db.session.execute(
            update(Campaign).values(status="sending", started_at=NOW, last_subscriber_id=0)
        )
        db.session.commit()
    path = f"/staff/campaigns/{campaign_id}"
    assert admin_post(admin, f"{path}/pause").status_code == 302
    assert campaign_row(app, campaign_id).status == "paused"
    assert "Paused" in admin.get(path, headers=EN).text
    assert admin_post(admin, f"{path}/resume").status_code == 302
    assert campaign_row(app, campaign_id).status == "finished"  # nobody to send to
    refused = admin_post(admin, f"{path}/cancel")
    assert refused.status_code == 302
    assert "cannot be done to a campaign in this state" in admin.get(path, headers=EN).text
    other = new_campaign(app)
    assert admin_post(admin, f"/staff/campaigns/{other}/cancel").status_code == 302
    assert campaign_row(app, other).status == "cancelled"
    assert audit_actions(app) == ["login", "pause_campaign", "resume_campaign", "cancel_campaign"]


@pytest.mark.parametrize("frozen", ["2026-11-25 21:30:00"], indirect=True)
def test_a_test_message_ignores_quiet_hours_but_the_campaign_waits(app, admin, outbox):
    """At 23:30 in Helsinki: the test message goes, the campaign waits for 09:00."""
    factories.subscriber(app, number(1), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    path = f"/staff/campaigns/{campaign_id}"
    assert admin_post(admin, f"{path}/test", number="0407654321", language="fi").status_code == 302
    assert admin_post(admin, f"{path}/start", confirm="y").status_code == 302
    assert [m["kind"] for m in outbox.messages()] == ["campaign_test"]
    campaign = campaign_row(app, campaign_id)
    assert (campaign.status, campaign.resume_at) == ("sending", helsinki(2026, 11, 26, 9, 0))
    assert "waiting for quiet hours to end" in admin.get(path, headers=EN).text


def test_a_test_message_needs_a_mobile_number(app, admin, outbox):
    campaign_id = new_campaign(app)
    path = f"/staff/campaigns/{campaign_id}/test"
    response = admin_post(admin, path, number="09 123 4567", language="fi")
    assert response.status_code == 400
    assert "That is a landline number." in response.text
    assert outbox.messages() == []


@pytest.mark.parametrize("config_overrides", [{"CAMPAIGN_TEST_SEND_LIMIT": "2 per hour"}])
def test_test_messages_are_rate_limited(app, admin, outbox):
    """An admin's test messages are limited (the third in an hour is refused)."""
    path = f"/staff/campaigns/{new_campaign(app)}/test"
    for _ in range(2):
        assert admin_post(admin, path, number="0407654321", language="fi").status_code == 302
    assert admin_post(admin, path, number="0407654321", language="fi").status_code == 429
    assert len(outbox.messages()) == 2


def test_the_dashboard_shows_each_campaigns_figures(app, support, outbox):
    """Support sees the figures (no links to the admin pages)."""
    ids = [factories.subscriber(app, number(n), at=SIGNED_UP) for n in range(1, 4)]
    campaign_id = new_campaign(app)
    start(app, campaign_id, FakeClock())
    factories.withdrawal(app, ids[0], ("offers",), at=NOW + timedelta(hours=1))
    page = support.get("/staff/dashboard", headers=EN).text
    assert "SMS campaigns" in page
    row = re.search(rf'<tr data-campaign="{campaign_id}">.*?</tr>', page, re.S).group(0)
    figures = dict(re.findall(r'data-figure="(\w+)">(\d+)<', row))
    assert figures == {
        "recipients": "3",
        "sent": "3",
        "skipped": "0",
        "delivered": "0",
        "failed": "0",
        "opted_out": "1",
    }
    assert "/staff/campaigns/" not in row


# The queue (against a real Redis: CI sets REDIS_URL; a laptop skips these)

needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL not set")


@pytest.fixture
def redis_queue(app, redis_url):
    """The app's RQ queue on the real Redis, emptied; sending fast and at any hour."""
    from viihde.sms import queue as sms_queue

    app.config.update(REDIS_URL=redis_url, CAMPAIGN_QUIET_HOURS="", CAMPAIGN_MESSAGES_PER_SECOND=50)
    sms_queue.init_app(app)
    queue = app.extensions[sms_queue.EXTENSION]
    queue.empty()
    for job_id in queue.scheduled_job_registry.get_job_ids():
        queue.scheduled_job_registry.remove(job_id, delete_job=True)
    yield queue
    queue.empty()


def work(app, queue) -> None:
    """Run a burst worker in this process, in the app context, as `flask worker` does."""
    from viihde.sms.queue import make_worker

    with app.app_context():
        make_worker(queue).work(burst=True)


def job_ids(queue) -> list[str]:
    return queue.get_job_ids() + queue.scheduled_job_registry.get_job_ids()


@needs_redis
def test_starting_queues_one_sender_and_the_worker_sends(app, redis_queue, outbox):
    """One job per campaign however often it is started or sent on; the worker sends."""
    for n in range(1, 4):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    with app.app_context():
        sender.start(campaign_id, NOW)
        sender.resume(campaign_id)  # "Send on" while it waits: no second job
    assert job_ids(redis_queue) == [f"campaign-{campaign_id}-a"]
    assert outbox.messages() == []
    work(app, redis_queue)
    assert sorted(sent_to(outbox)) == [number(1), number(2), number(3)]
    assert campaign_row(app, campaign_id).status == "finished"
    assert job_ids(redis_queue) == []


@needs_redis
def test_a_sender_queues_its_next_turn_under_the_other_job_id(
    app, redis_queue, outbox, monkeypatch
):
    """Short turns: each queues the next (the two ids take turns) until all are sent."""
    monkeypatch.setattr(sender, "BUDGET_SECONDS", 0.05)
    app.config["CAMPAIGN_MESSAGES_PER_SECOND"] = 20
    for n in range(1, 6):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    seen = []
    real_run = sender.run

    def noted_run(campaign_id, **kwargs):
        from rq import get_current_job

        seen.append(get_current_job().id)
        return real_run(campaign_id, **kwargs)

    monkeypatch.setattr(sender, "run", noted_run)
    with app.app_context():
        sender.start(campaign_id, NOW)
    work(app, redis_queue)
    assert sorted(sent_to(outbox)) == [number(n) for n in range(1, 6)]
    assert len(seen) >= 2
    assert all(a != b for a, b in itertools.pairwise(seen))  # a and b in turn
    assert campaign_row(app, campaign_id).status == "finished"


@needs_redis
def test_quiet_hours_schedule_the_sender_for_their_end(app, redis_queue):
    """The wait is a scheduled job; wanting it sooner moves it, never adds one."""
    from viihde.sms.queue import enqueue_campaign_sender

    morning = datetime(2030, 3, 29, 6, 0, tzinfo=UTC)
    with app.app_context():
        enqueue_campaign_sender(7, at=morning)
        enqueue_campaign_sender(7, at=morning + timedelta(hours=1))  # later: left as it is
        registry = redis_queue.scheduled_job_registry
        assert registry.get_job_ids() == ["campaign-7-a"]
        assert registry.get_scheduled_time("campaign-7-a") == morning
        enqueue_campaign_sender(7)  # now
        assert registry.get_scheduled_time("campaign-7-a") < morning
    assert job_ids(redis_queue) == ["campaign-7-a"]


@needs_redis
def test_sending_on_while_a_sender_runs_queues_one_successor(app, redis_queue):
    """A sender still running may have seen the pause just lifted and be about to stop:
    Send on queues the other id (it runs after), once; the running one is left alone."""
    from rq.job import Job, JobStatus

    from viihde.sms.queue import enqueue_campaign_sender

    running = Job.create(
        "viihde.jobs.run_campaign",
        args=(7,),
        id="campaign-7-a",
        connection=redis_queue.connection,
    )
    running.set_status(JobStatus.STARTED)
    running.save()
    with app.app_context():
        enqueue_campaign_sender(7)
        enqueue_campaign_sender(7)
    assert redis_queue.get_job_ids() == ["campaign-7-b"]
    assert Job.fetch("campaign-7-a", connection=redis_queue.connection).get_status() == "started"
    Job.fetch("campaign-7-a", connection=redis_queue.connection).delete()


def test_every_campaign_status_has_a_label():
    """The console names each status in the page's language, never its key."""
    from viihde.models import CAMPAIGN_STATUSES
    from viihde.web import labels

    assert set(labels.CAMPAIGN_STATUSES) == set(CAMPAIGN_STATUSES)


@needs_redis
def test_a_sending_campaign_whose_sender_was_lost_is_relaunched_once(app, redis_queue, outbox):
    """Redis restarted and lost the queued sender (or a turn could not queue the next):
    the workers' sweep queues one again, once, and the campaign is sent; one waiting for
    quiet hours to end is left as it is, not brought forward."""
    from viihde.sms.queue import enqueue_campaign_sender

    for n in range(1, 4):
        factories.subscriber(app, number(n), at=SIGNED_UP)
    campaign_id = new_campaign(app)
    with app.app_context():
        sender.start(campaign_id, NOW)
    redis_queue.empty()  # the restart
    with app.app_context():
        assert sender.relaunch_stalled() == [campaign_id]
        assert sender.relaunch_stalled() == []
    assert job_ids(redis_queue) == [f"campaign-{campaign_id}-a"]
    work(app, redis_queue)
    assert sorted(sent_to(outbox)) == [number(1), number(2), number(3)]
    assert campaign_row(app, campaign_id).status == "finished"

    waiting = new_campaign(app)
    with app.app_context():
        sender.start(waiting, NOW)
        redis_queue.empty()
        morning = datetime(2030, 3, 29, 6, 0, tzinfo=UTC)
        enqueue_campaign_sender(waiting, at=morning)  # quiet hours: it waits for nine
        assert sender.relaunch_stalled() == []
        registry = redis_queue.scheduled_job_registry
        assert registry.get_scheduled_time(f"campaign-{waiting}-a") == morning


def test_the_recipients_are_read_from_the_stored_state_not_the_ledger(app, outbox):
    """The sender picks its recipients from the consent state stored beside the ledger,
    not from the ledger's fold (issue 18): number(2), whose stored state for offers was
    turned off before the start (its time still the sign-up's, a month before) with its
    ledger left granted, is not a recipient at all (a fold would find the grant, and the
    check before each message, which reads the ledger, would pass)."""
    ids = factories.subscribers(app, {n: ("offers",) for n in range(1, 4)}, at=SIGNED_UP)
    campaign_id = new_campaign(app)
    with stored_state_only(app, ids[2], "offers", granted=False):
        start(app, campaign_id, FakeClock())
    assert sent_to(outbox) == [number(1), number(3)]
    assert recipients(app, campaign_id) == {ids[1]: "sent", ids[3]: "sent"}
