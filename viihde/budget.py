"""The SMS budget breaker: code sending pauses when the hour's or day's budget is spent,
or when too few of the codes sent get confirmed (the mark of SMS pumping).

Counted in the database, not in Redis, so it holds with any number of processes
and does not fail open when Redis is down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from flask import current_app
from sqlalchemy import func, select

from . import metrics
from .extensions import cache, db
from .models import CAMPAIGN_SMS_KIND, CAMPAIGN_TEST_SMS_KIND, SmsMessage, Verification

log = logging.getLogger(__name__)


class PauseReason(StrEnum):
    HOURLY_BUDGET = "hourly_budget"
    DAILY_BUDGET = "daily_budget"
    CONFIRMATION_RATE = "confirmation_rate"


@dataclass(frozen=True)
class Pause:
    """Why code sending is paused, and until when at the latest."""

    reason: PauseReason
    until: datetime


@dataclass(frozen=True)
class _Sent:
    """SMS that went out (not failed) in the last hour and day, and the codes confirmed in
    the last hour, counted in one query."""

    hour: int
    oldest_in_hour: datetime | None
    day: int
    oldest_in_day: datetime | None
    codes_in_hour: int
    confirmed_in_hour: int


def _sent(hour_ago: datetime, day_ago: datetime) -> _Sent:
    in_hour = SmsMessage.created_at > hour_ago
    confirmed = (
        select(func.count())
        .select_from(Verification)
        .where(Verification.consumed_at > hour_ago)
        .scalar_subquery()
    )
    row = db.session.execute(
        select(
            func.count().filter(in_hour),
            func.min(SmsMessage.created_at).filter(in_hour),
            func.count(),
            func.min(SmsMessage.created_at),
            func.count().filter(in_hour, SmsMessage.kind == "code"),
            confirmed,
        ).where(
            SmsMessage.created_at > day_ago,
            SmsMessage.status != "failed",
            SmsMessage.kind.not_in((CAMPAIGN_SMS_KIND, CAMPAIGN_TEST_SMS_KIND)),
        )
    ).one()
    return _Sent(*row)


def sms_pause(now: datetime) -> Pause | None:
    """Is code sending paused now? Checked before every code is sent (and kept as a gauge)."""
    pause = _pause(now)
    for reason in PauseReason:
        metrics.SENDING_PAUSED.labels(reason.value).set(
            int(pause is not None and pause.reason == reason)
        )
    return pause


def paused_hint(now: datetime) -> bool:
    """Is code sending paused, as the landing page tells its visitors? Kept for
    BUDGET_HINT_SECONDS in each process, so that a busy landing page does not count the
    SMS log on every view; the check before a code is sent (``sms_pause``) never is."""
    paused = cache.get("budget:paused-hint")
    if paused is None:
        paused = sms_pause(now) is not None
        cache.set("budget:paused-hint", paused, timeout=current_app.config["BUDGET_HINT_SECONDS"])
    return paused


def _pause(now: datetime) -> Pause | None:
    config = current_app.config
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    sent = _sent(hour_ago, day_ago)
    if sent.hour >= config["SMS_HOURLY_LIMIT"]:
        return Pause(PauseReason.HOURLY_BUDGET, sent.oldest_in_hour + timedelta(hours=1))
    if sent.day >= config["SMS_DAILY_LIMIT"]:
        return Pause(PauseReason.DAILY_BUDGET, sent.oldest_in_day + timedelta(days=1))
    codes = sent.codes_in_hour
    if (
        codes >= config["CONFIRMATION_RATE_MIN_SAMPLE"]
        and sent.confirmed_in_hour / codes < config["CONFIRMATION_RATE_FLOOR"]
    ):
        return Pause(PauseReason.CONFIRMATION_RATE, now + timedelta(hours=1))
    return None


def log_pause(pause: Pause) -> None:
    """Say it where operations will see it."""
    log.warning("sms_budget_paused reason=%s until=%s", pause.reason, pause.until.isoformat())
