"""Sending a campaign: start, pause, resume and cancel; quiet hours; and the sender, in
turns queued on RQ (or run inline without a queue), at CAMPAIGN_MESSAGES_PER_SECOND."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import func, select, text

from viihde import config
from viihde.clock import HELSINKI, utcnow
from viihde.extensions import db
from viihde.models import Campaign, Subscriber
from viihde.register.campaigns.recipients import (
    adopt_orphan,
    find_orphan,
    next_candidates,
    record_recipient,
)
from viihde.register.campaigns.state import (
    CANCELLED,
    DRAFT,
    FINISHED,
    PAUSED,
    SENDING,
    SenderUnavailable,
    locked,
    require_status,
)
from viihde.sms.delivery import deliver
from viihde.sms.queue import enqueue_campaign_sender, sms_queue

log = logging.getLogger(__name__)

#: A queued sender's turn: then it queues its continuation, so jobs stay short.
BUDGET_SECONDS = 30.0


# Sending: start, pause, resume, cancel


def start(
    campaign_id: int,
    now: datetime,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> Campaign:
    """Start sending a draft: its audience is fixed as everyone up to the newest subscriber
    now; the sender is queued (without a queue it runs here, with ``clock`` and ``sleep``)."""
    campaign = locked(campaign_id)
    require_status(campaign, DRAFT)
    campaign.status, campaign.started_at, campaign.cursor = SENDING, now, 0
    campaign.last_subscriber_id = db.session.scalar(select(func.max(Subscriber.id))) or 0
    db.session.commit()
    _launch(campaign_id, clock, sleep)
    return campaign


def pause(campaign_id: int) -> Campaign:
    """Hold the campaign: the sender stops before its next message."""
    campaign = locked(campaign_id)
    require_status(campaign, SENDING)
    campaign.status, campaign.resume_at = PAUSED, None
    db.session.commit()
    return campaign


def resume(
    campaign_id: int,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> Campaign:
    """Send on from where the campaign stopped (paused, or a sender that is not running)."""
    campaign = locked(campaign_id)
    require_status(campaign, PAUSED, SENDING)
    campaign.status = SENDING
    db.session.commit()
    _launch(campaign_id, clock, sleep)
    return campaign


def cancel(campaign_id: int, now: datetime) -> Campaign:
    """Stop the campaign for good (a draft too); whoever got it keeps their message."""
    campaign = locked(campaign_id)
    require_status(campaign, DRAFT, SENDING, PAUSED)
    campaign.status, campaign.finished_at, campaign.resume_at = CANCELLED, now, None
    db.session.commit()
    return campaign


def _launch(campaign_id: int, clock: Callable[[], datetime], sleep: Callable[[float], None]):
    """Hand the campaign to the queue's worker, or run it here when there is no queue."""
    if sms_queue() is None:
        run(campaign_id, clock=clock, sleep=sleep, budget_seconds=None)
        return
    try:
        enqueue_campaign_sender(campaign_id)
    except RedisError:
        log.warning("campaign_queue_unavailable campaign=%s", campaign_id)
        raise SenderUnavailable(campaign_id) from None


def _continue_later(campaign_id: int, at: datetime | None = None) -> None:
    """Queue the sender's next turn (at ``at``). Without a queue, nothing wakes it:
    sending on after quiet hours is then an admin's press of a button."""
    if sms_queue() is None:
        return
    try:
        enqueue_campaign_sender(campaign_id, at)
    except RedisError:
        log.warning("campaign_queue_unavailable campaign=%s", campaign_id)


# Quiet hours


def next_allowed(now: datetime, quiet_hours: str) -> datetime | None:
    """None when marketing SMS may go out now; else the moment (UTC) quiet hours end.

    Quiet hours are Helsinki wall-clock times, so in UTC they move with daylight saving.
    """
    window = config.quiet_hours_window(quiet_hours)
    if window is None:
        return None
    start, end = window
    local = now.astimezone(HELSINKI)
    moment, day = local.time(), local.date()
    if start < end:
        quiet = start <= moment < end
    else:  # across midnight
        quiet = moment >= start or moment < end
        if moment >= start:
            day += timedelta(days=1)
    if not quiet:
        return None
    return datetime.combine(day, end, HELSINKI).astimezone(UTC)


# The sender


def run(
    campaign_id: int,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    budget_seconds: float | None = BUDGET_SECONDS,
) -> str:
    """Send the campaign until its audience is done, it is paused or cancelled, quiet
    hours begin (it then schedules itself for their end) or ``budget_seconds`` are spent
    (it then queues its continuation). Returns why it stopped."""
    with _one_sender_at_a_time(campaign_id):
        return _Sender(campaign_id, clock, sleep, budget_seconds).run()


@contextmanager
def _one_sender_at_a_time(campaign_id: int) -> Iterator[None]:
    """Twin senders of a campaign take turns, so that together they keep to the rate.

    PostgreSQL: an advisory lock on a connection of its own, held for the whole turn (a
    twin waits, then finds the work done). SQLite serves one writer at a time anyway.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        yield
        return
    key = {"key": f"viihde.campaign-sender:{campaign_id}"}
    with db.engine.connect() as connection:
        connection.execute(text("SET LOCAL lock_timeout = '240s'"))
        connection.execute(text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"), key)
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), key)
            connection.commit()


def _interval(per_second: float) -> timedelta:
    """The time between two messages, rounded up so the rate is never exceeded."""
    if per_second <= 0:
        return timedelta(0)
    return timedelta(microseconds=math.ceil(1_000_000 / per_second))


class _Sender:
    """One turn of the sender, with its pace and the subscribers it has read ahead."""

    def __init__(self, campaign_id, clock, sleep, budget_seconds: float | None) -> None:
        config = current_app.config
        self.campaign_id, self.clock, self.sleep = campaign_id, clock, sleep
        self.quiet_hours = config["CAMPAIGN_QUIET_HOURS"]
        self.interval = _interval(config["CAMPAIGN_MESSAGES_PER_SECOND"])
        began = clock()
        self.until = None if budget_seconds is None else began + timedelta(seconds=budget_seconds)
        self.next_send = began
        self.ahead: list[int] = []

    def run(self) -> str:
        while True:
            now = self.clock()
            if now < self.next_send:
                self.sleep((self.next_send - now).total_seconds())
                now = self.clock()
            stopped = self._step(now)
            if stopped is not None:
                return stopped

    def _step(self, now: datetime) -> str | None:
        """One recipient; or why the sender stops now."""
        campaign = locked(self.campaign_id)
        if campaign is None or campaign.status != SENDING:
            db.session.rollback()
            return campaign.status if campaign is not None else "missing"
        resume_at = next_allowed(now, self.quiet_hours)
        if resume_at is not None:
            campaign.resume_at = resume_at
            db.session.commit()
            _continue_later(self.campaign_id, resume_at)
            return "quiet_hours"
        if self.until is not None and now >= self.until:
            db.session.rollback()
            _continue_later(self.campaign_id)
            return "turn_over"
        campaign.resume_at = None
        orphan = find_orphan(campaign, now)
        if orphan is not None:
            self._deliver(adopt_orphan(campaign, orphan, now), now)
            return None
        subscriber_id = self._next_recipient(campaign)
        if subscriber_id is None:
            campaign.status, campaign.finished_at = FINISHED, now
            db.session.commit()
            return FINISHED
        self._deliver(record_recipient(campaign, subscriber_id, now), now)
        return None

    def _deliver(self, outgoing: tuple[int, str] | None, now: datetime) -> None:
        if outgoing is not None:
            deliver(*outgoing, now, final_attempt=True)
            db.session.rollback()  # end the read deliver may leave open: nothing is held asleep
            self.next_send = now + self.interval

    def _next_recipient(self, campaign: Campaign) -> int | None:
        """The next subscriber after the cursor to send to; None when the audience is done."""
        self.ahead = [i for i in self.ahead if i > campaign.cursor]  # a twin may have gone on
        while not self.ahead:
            self.ahead, examined = next_candidates(campaign)
            if examined is None:
                return None
            if not self.ahead:
                campaign.cursor = examined
        return self.ahead.pop(0)
