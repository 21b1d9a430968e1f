"""Sending a campaign: the sender, in turns queued on RQ (or run here without a queue),
at CAMPAIGN_MESSAGES_PER_SECOND, each recipient its own transaction; and starting or
sending on a campaign, which commits its new status before the sender is launched."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import text

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import Campaign
from viihde.register import campaigns
from viihde.register.campaigns.recipients import (
    adopt_orphan,
    find_orphan,
    next_candidates,
    orphans_due,
    record_recipient,
)
from viihde.register.campaigns.sending import next_allowed
from viihde.register.campaigns.state import FINISHED, SENDING, SenderUnavailable, locked
from viihde.sms.delivery import deliver
from viihde.sms.queue import campaign_sender_waiting, enqueue_campaign_sender, sms_queue

log = logging.getLogger(__name__)

#: A queued sender's turn: then it queues its continuation, so jobs stay short.
BUDGET_SECONDS = 30.0


def start(
    campaign_id: int,
    now: datetime,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> Campaign:
    """Start sending a draft (``campaigns.start``), commit that with whatever the caller
    staged (its audit entry), then launch the sender."""
    campaign = campaigns.start(campaign_id, now)
    db.session.commit()
    launch(campaign_id, clock, sleep)
    return campaign


def resume(
    campaign_id: int,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> Campaign:
    """Send on (``campaigns.resume``), commit, then launch the sender."""
    campaign = campaigns.resume(campaign_id)
    db.session.commit()
    launch(campaign_id, clock, sleep)
    return campaign


def launch(campaign_id: int, clock: Callable[[], datetime], sleep: Callable[[float], None]):
    """Hand the campaign to the queue's worker, or run it here when there is no queue."""
    if sms_queue() is None:
        run(campaign_id, clock=clock, sleep=sleep, budget_seconds=None)
        return
    try:
        enqueue_campaign_sender(campaign_id)
    except RedisError:
        log.warning("campaign_queue_unavailable campaign=%s", campaign_id)
        raise SenderUnavailable(campaign_id) from None


def relaunch_stalled() -> list[int]:
    """Queue a sender for every campaign that is sending with none queued, scheduled or
    running (Redis restarted and lost its jobs, or a turn could not queue the next): the
    sender checks quiet hours and the pace itself. Run by every worker's sweep; returns
    the campaigns relaunched."""
    if sms_queue() is None:
        return []
    sending = [campaign.id for campaign in campaigns.sending_now()]
    db.session.commit()
    relaunched = []
    for campaign_id in sending:
        if not campaign_sender_waiting(campaign_id):
            enqueue_campaign_sender(campaign_id)
            relaunched.append(campaign_id)
    if relaunched:
        log.warning("campaign_senders_relaunched campaigns=%s", relaunched)
    return relaunched


def continue_later(campaign_id: int, at: datetime | None = None) -> None:
    """Queue the sender's next turn (at ``at``). Without a queue, nothing wakes it:
    sending on after quiet hours is then an admin's press of a button."""
    if sms_queue() is None:
        return
    try:
        enqueue_campaign_sender(campaign_id, at)
    except RedisError:
        log.warning("campaign_queue_unavailable campaign=%s", campaign_id)


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
            continue_later(self.campaign_id, resume_at)
            return "quiet_hours"
        if self.until is not None and now >= self.until:
            db.session.rollback()
            continue_later(self.campaign_id)
            return "turn_over"
        campaign.resume_at = None
        orphan = find_orphan(campaign, now)
        if orphan is not None:
            self._deliver(adopt_orphan(campaign, orphan, now), now)
            return None
        subscriber_id = self._next_recipient(campaign)
        if subscriber_id is None:
            due = orphans_due(campaign, now)
            if due is not None:  # a message a dead sender left: adopted when it is due
                db.session.commit()
                if self.until is not None and due > self.until:
                    continue_later(self.campaign_id, due)
                    return "settling"
                self.next_send = max(due, now + timedelta(seconds=1))
                return None
            campaign.status, campaign.finished_at = FINISHED, now
            db.session.commit()
            return FINISHED
        self._deliver(record_recipient(campaign, subscriber_id, now), now)
        return None

    def _deliver(self, outgoing: tuple[int, str] | None, now: datetime) -> None:
        """Commit the recipient's row and SMS (or skip), then hand the SMS over."""
        db.session.commit()
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
