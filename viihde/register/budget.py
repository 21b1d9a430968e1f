"""The SMS budget and the sign-up breaker.

Only the money budgets pause every code: ``SMS_HOURLY_LIMIT`` and ``SMS_DAILY_LIMIT``.
Codes that go unconfirmed (the mark of SMS pumping) tighten sign-ups only where they
come from: a client network (a /24 or /16 in IPv4, a /48 or /32 in IPv6) or a number
range (all but the last ``RANGE_HIDDEN_DIGITS`` digits) whose latest sign-up codes of the
last hour (at most ``CONFIRMATION_RATE_SAMPLE``, newest first: a busy network's check
reads no more than that) are at least ``CONFIRMATION_RATE_MIN_SAMPLE`` and confirmed less
often than ``CONFIRMATION_RATE_FLOOR`` gets one sign-up code per
``SMS_TIGHTENED_INTERVAL_SECONDS`` until its codes get confirmed again or age out.
Step-up codes for people already in the register are never tightened.

Counted in the database, not in Redis, so it holds with any number of processes and
does not fail open when Redis is down. The money budgets read the messages' counts by
minute and hour, which the database keeps as it writes the SMS log
(``models.SmsBudgetCount``), to the start of the minute an hour or a day ago.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache as built_once
from functools import reduce
from typing import Any

from flask import current_app
from sqlalchemy import Select, bindparam, func, literal_column, select, true
from sqlalchemy.orm import aliased

from viihde.extensions import cache, db
from viihde.models import BudgetSpan, SmsBudgetCount, Verification, VerificationKind
from viihde.networks import networks_of
from viihde.ops import metrics

log = logging.getLogger(__name__)

#: A number range is the number without its last this many digits (100,000 numbers).
RANGE_HIDDEN_DIGITS = 5


class PauseReason(StrEnum):
    HOURLY_BUDGET = "hourly_budget"
    DAILY_BUDGET = "daily_budget"


@dataclass(frozen=True)
class Pause:
    """Why all code sending is paused, and until when at the latest."""

    reason: PauseReason
    until: datetime


class Scope(StrEnum):
    """Where unconfirmed codes came from: the client's networks, or the number's range."""

    NETWORK = "network"
    WIDE_NETWORK = "wide_network"
    RANGE = "range"


@dataclass(frozen=True)
class Holdback:
    """Sign-up codes from this network or to this range are tightened; the next may go at
    ``until``."""

    scope: Scope
    until: datetime


@dataclass(frozen=True)
class _Sent:
    """SMS that went out (not failed) in the last hour and day, and the first minute that
    had one in each, read in one query."""

    hour: int
    first_minute_in_hour: datetime | None
    day: int
    first_minute_in_day: datetime | None


def sent_counts(now: datetime) -> tuple[Select, dict[str, Any]]:
    """The query behind ``sms_pause`` (built once) and its parameters for ``now``: one row,
    the budgeted SMS (not failed, not campaigns') of the last hour and day, and the start
    of the first minute that had one in each (``_Sent``'s fields).

    Read off the budget's counts by minute and hour (``models.SmsBudgetCount``, kept by the
    database), not counted message by message: at most 61 minutes for the hour, and 24
    hours and 60 minutes for the day. Each window starts at the beginning of the minute an
    hour or a day ago, so it may count up to a minute's messages more than an exact
    window would (it pauses a little early, never late)."""
    day_from = _minute_of(now - timedelta(days=1))
    parameters = {
        "sent_hour_from": _minute_of(now - timedelta(hours=1)),
        "sent_day_from": day_from,
        # The hours wholly inside the day; the minutes before the first of them, one by one.
        "sent_day_hours_from": day_from.replace(minute=0) + timedelta(hours=1),
        # Every range closed: PostgreSQL's generic plan takes an open one for a third of the
        # table (the minutes of the whole SMS log's retention), and scans it all.
        "sent_until": now,
    }
    return _sent_statement(), parameters


def _minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@built_once
def _sent_statement() -> Select:
    # Short table names keep a code's checks (this beside the breaker's and the number's
    # codes, ``codes._Checks``) under psycopg's 4,096 bytes: a longer statement is parsed
    # for its placeholders on every execution, not once (2-3 % of a submission).
    counts = aliased(SmsBudgetCount, name="c")
    # The spans written into the SQL as constants: a generic plan then reads an hour's or a
    # day's rows off the primary key, not the whole table (span = $1: either span's rows).
    minutes = counts.span == bindparam("minute", BudgetSpan.MINUTE, literal_execute=True)
    hours = counts.span == bindparam("hour", BudgetSpan.HOUR, literal_execute=True)

    until = bindparam("sent_until")

    def total(span, start, before=None) -> Any:
        end = counts.starts_at < before if before is not None else counts.starts_at <= until
        return (
            select(func.coalesce(func.sum(counts.sent), 0))
            .where(span, counts.starts_at >= start, end)
            .scalar_subquery()
        )

    def first_minute_from(start) -> Any:
        return (
            select(func.min(counts.starts_at))
            .where(minutes, counts.starts_at >= start, counts.starts_at <= until, counts.sent > 0)
            .scalar_subquery()
        )

    hour_from, day_from = bindparam("sent_hour_from"), bindparam("sent_day_from")
    day_hours_from = bindparam("sent_day_hours_from")
    return select(
        total(minutes, hour_from),
        first_minute_from(hour_from),
        total(hours, day_hours_from) + total(minutes, day_from, day_hours_from),
        first_minute_from(day_from),
    )


def _sent(now: datetime) -> Sequence[Any]:
    return db.session.execute(*sent_counts(now)).one()


def sms_pause(now: datetime) -> Pause | None:
    """Is all code sending paused now (a money budget spent)? Checked before every code is
    sent (and kept as a gauge)."""
    return pause_of(_sent(now))


def pause_of(sent: Sequence[Any]) -> Pause | None:
    """``sms_pause``'s verdict on the row of ``sent_counts`` (read with other checks in
    one statement by a code about to be sent); sets the gauge."""
    pause = _pause(_Sent(*sent))
    for reason in PauseReason:
        metrics.SENDING_PAUSED.labels(reason.value).set(
            int(pause is not None and pause.reason == reason)
        )
    return pause


def paused_hint(now: datetime) -> bool:
    """Is code sending paused, as the landing page tells its visitors? See ``pause_hint``."""
    return pause_hint(now) is not None


def pause_hint(now: datetime) -> Pause | None:
    """``sms_pause`` as the pages tell it (the landing page's notice, the console's
    banner): kept for BUDGET_HINT_SECONDS in each process, so that a busy landing page or
    console does not read the budget's counts on every view (the landing page is the same
    bytes for everyone in a language: no statement at all). The check before a code is
    sent (``sms_pause``, or its part of a submission's one select) never is."""
    kept = cache.get("budget:pause-hint")
    if kept is None:
        kept = (sms_pause(now),)  # a tuple: a kept "not paused" is not a miss
        cache.set("budget:pause-hint", kept, timeout=current_app.config["BUDGET_HINT_SECONDS"])
    return kept[0]


def _pause(sent: _Sent) -> Pause | None:
    config = current_app.config
    # A minute's messages leave a window together, when all of that minute has.
    if sent.hour >= config["SMS_HOURLY_LIMIT"]:
        return Pause(PauseReason.HOURLY_BUDGET, sent.first_minute_in_hour + timedelta(minutes=61))
    if sent.day >= config["SMS_DAILY_LIMIT"]:
        return Pause(
            PauseReason.DAILY_BUDGET, sent.first_minute_in_day + timedelta(days=1, minutes=1)
        )
    return None


def number_range(phone_e164: str) -> str:
    """The number's range: the number without its last ``RANGE_HIDDEN_DIGITS`` digits."""
    return phone_e164[:-RANGE_HIDDEN_DIGITS]


def origin_of(ip: str | None) -> tuple[str | None, str | None]:
    """The narrow and wide networks a sign-up from ``ip`` is counted in (None: unknown)."""
    found = networks_of(ip)
    return (found.narrow, found.wide) if found else (None, None)


def signup_holdback(ip: str | None, phone_e164: str, now: datetime) -> Holdback | None:
    """Is a sign-up code from ``ip`` to ``phone_e164`` held back now? One query looks at
    the last hour's sign-up codes of the client's networks and the number's range."""
    counts = HoldbackCounts(ip, phone_e164, now)
    return counts.verdict(db.session.execute(counts.query, counts.parameters).one(), now)


class HoldbackCounts:
    """The query behind ``signup_holdback`` (built once per shape: one row, three columns
    per scope the client's address and the number fall in), its parameters, and its
    verdict on that row."""

    def __init__(self, ip: str | None, phone_e164: str, now: datetime) -> None:
        network, wide = origin_of(ip)
        self.scopes = _SCOPES if network is not None else (Scope.RANGE,)
        self.query = _holdback_statement(
            self.scopes, current_app.config["CONFIRMATION_RATE_SAMPLE"]
        )
        self.parameters = {
            "holdback_network": network,
            "holdback_wide": wide,
            "holdback_range": number_range(phone_e164),
            "holdback_hour_ago": now - timedelta(hours=1),
        }

    def verdict(self, row: Sequence[Any], now: datetime) -> Holdback | None:
        config = current_app.config
        interval = timedelta(seconds=config["SMS_TIGHTENED_INTERVAL_SECONDS"])
        for index, scope in enumerate(self.scopes):
            codes, confirmed, newest = row[3 * index : 3 * index + 3]
            if codes < config["CONFIRMATION_RATE_MIN_SAMPLE"]:
                continue
            if confirmed / codes >= config["CONFIRMATION_RATE_FLOOR"]:
                continue
            if newest is not None and now < newest + interval:
                metrics.SIGNUPS_HELD_BACK.labels(scope.value).inc()
                log.warning("sms_signups_tightened scope=%s codes=%d confirmed=%d", scope, codes,
                            confirmed)  # fmt: skip
                return Holdback(scope, newest + interval)
        return None


_SCOPES = (Scope.NETWORK, Scope.WIDE_NETWORK, Scope.RANGE)


@built_once
def _holdback_statement(scopes: tuple[Scope, ...], sample: int) -> Select:
    """One row, three columns a scope: its latest sign-up codes of the hour (at most
    ``sample``, the CONFIRMATION_RATE_SAMPLE, newest first, off its index on (scope,
    created_at)), how many of them were confirmed, and the newest one's time."""
    code = aliased(Verification, name="v")  # short: see ``_sent_statement``
    columns = {
        Scope.NETWORK: (code.network, "holdback_network"),
        Scope.WIDE_NETWORK: (code.wide_network, "holdback_wide"),
        Scope.RANGE: (code.number_range, "holdback_range"),
    }
    counts = []
    for scope in scopes:
        column, parameter = columns[scope]
        latest = (
            select(code.consumed_at, code.created_at)
            .where(
                column == bindparam(parameter),
                code.created_at > bindparam("holdback_hour_ago"),
                code.kind == VerificationKind.SIGNUP,
            )
            .order_by(code.created_at.desc())
            # A constant, as the setting is: PostgreSQL then plans the statement once for
            # all parameters, as it does not for LIMIT $1 (0.9 ms of planning a code).
            .limit(literal_column(str(int(sample))))
            .subquery()
        )
        counts.append(
            select(
                func.count(), func.count(latest.c.consumed_at), func.max(latest.c.created_at)
            ).subquery()
        )
    joined = reduce(lambda left, right: left.join(right, true()), counts)
    return select(*(column for part in counts for column in part.c)).select_from(joined)


def log_pause(pause: Pause) -> None:
    """Say it where operations will see it."""
    log.warning("sms_budget_paused reason=%s until=%s", pause.reason, pause.until.isoformat())
