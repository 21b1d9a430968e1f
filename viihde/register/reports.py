"""Figures for the staff dashboard: sign-ups, confirmations, opt-outs and net subscribers."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, or_, select

from viihde.clock import helsinki_day, start_of_day
from viihde.extensions import db
from viihde.models import ConsentEvent, ConsentSource, SignupTotal, Verification, VerificationKind


@dataclass
class Day:
    """One day (in Helsinki) of the register's life."""

    day: date
    started: int = 0
    confirmed: int = 0
    gained: int = 0
    opted_out: int = 0

    @property
    def conversion(self) -> float | None:
        """Codes confirmed per sign-up started, if any started."""
        return self.confirmed / self.started if self.started else None

    @property
    def net(self) -> int:
        """Subscribers gained (first grant, or back from none) minus those who stopped all."""
        return self.gained - self.opted_out


def daily(today: date, days: int = 30, campaign: str | None = None) -> list[Day]:
    """The last ``days`` days up to ``today``, optionally for one campaign only."""
    first = today - timedelta(days=days - 1)
    window = {first + timedelta(days=n): Day(first + timedelta(days=n)) for n in range(days)}
    since, until = start_of_day(first), start_of_day(today + timedelta(days=1))
    _count_signups(window, since, until, campaign)
    _count_transitions(window, since, until, campaign)
    return list(window.values())


def _count_signups(window: dict, since: datetime, until: datetime, campaign: str | None) -> None:
    """Codes still in the register, plus the daily totals purge kept of those it removed."""
    totals = select(SignupTotal.day, SignupTotal.started, SignupTotal.confirmed).where(
        SignupTotal.day.in_(list(window))
    )
    if campaign:
        totals = totals.where(SignupTotal.campaign == campaign)
    for day, started, confirmed in db.session.execute(totals):
        window[day].started += started
        window[day].confirmed += confirmed
    query = select(Verification.created_at, Verification.consumed_at).where(
        Verification.kind == VerificationKind.SIGNUP,
        or_(
            and_(Verification.created_at >= since, Verification.created_at < until),
            and_(Verification.consumed_at >= since, Verification.consumed_at < until),
        ),
    )
    if campaign:
        query = query.where(Verification.utm_campaign == campaign)
    for created_at, consumed_at in db.session.execute(query):
        if (day := window.get(helsinki_day(created_at))) is not None:
            day.started += 1
        if consumed_at and (day := window.get(helsinki_day(consumed_at))) is not None:
            day.confirmed += 1


def _count_transitions(window: dict, since: datetime, until: datetime, campaign: str | None):
    """Fold each touched subscriber's ledger: none->some is a gain, some->none an opt-out."""
    touched = select(ConsentEvent.subscriber_id).where(
        ConsentEvent.created_at >= since, ConsentEvent.created_at < until
    )
    events = db.session.execute(
        select(
            ConsentEvent.subscriber_id,
            ConsentEvent.purpose,
            ConsentEvent.action,
            ConsentEvent.created_at,
            ConsentEvent.source,
            ConsentEvent.utm_campaign,
        )
        .where(ConsentEvent.subscriber_id.in_(touched), ConsentEvent.created_at < until)
        .order_by(ConsentEvent.subscriber_id, ConsentEvent.seq)
    )
    state: dict[int, dict[str, bool]] = defaultdict(dict)
    origin: dict[int, str | None] = {}
    for subscriber_id, purpose, action, created_at, source, utm_campaign in events:
        if source == ConsentSource.SIGNUP:
            origin.setdefault(subscriber_id, utm_campaign)
        granted = state[subscriber_id]
        before = any(granted.values())
        granted[purpose] = action == "grant"
        after = any(granted.values())
        day = window.get(helsinki_day(created_at))
        if day is None or before == after or (campaign and origin.get(subscriber_id) != campaign):
            continue
        if after:
            day.gained += 1
        else:
            day.opted_out += 1


def campaigns() -> list[str]:
    """Every campaign a sign-up came from (live codes, and purged ones' totals), for the filter."""
    live = select(Verification.utm_campaign).where(Verification.utm_campaign.is_not(None))
    kept = select(SignupTotal.campaign).where(SignupTotal.campaign != "")
    return list(db.session.scalars(live.union(kept).order_by("utm_campaign")))
