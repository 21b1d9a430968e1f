"""A number's holdings: the periods it was held by one person each (``models.holdings``).

Which holding is open, opening one when the number (re-)enters the register, and since
when the current holder has held it. What a holder change does is ``holders``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, true

from viihde.extensions import db
from viihde.models import ConsentEvent, Holding, Subscriber
from viihde.models.statements import insert_rows


def current(subscriber_id: int) -> Holding | None:
    """The number's open holding: its holder now (None: nobody, after they erased it)."""
    return db.session.scalar(
        select(Holding).where(Holding.subscriber_id == subscriber_id, Holding.ended_at.is_(None))
    )


def of_number(subscriber_id: int) -> list[Holding]:
    """Every holding of the number, the earliest first."""
    return list(
        db.session.scalars(
            select(Holding)
            .where(Holding.subscriber_id == subscriber_id)
            .order_by(Holding.started_at, Holding.id)
        )
    )


def open_for(subscriber: Subscriber, now: datetime) -> Holding:
    """The open holding, or a new one from ``now`` (the number enters the register, or
    signs up again after its holder erased their holding). Under the subscriber's lock;
    the database refuses a second open holding anyway."""
    holding = current(subscriber.id)
    return open_new(subscriber, now) if holding is None else holding


def open_new(subscriber: Subscriber, now: datetime) -> Holding:
    """A new holding from ``now``, for a locked subscriber whom nobody holds (one INSERT)."""
    return insert_rows(Holding, [{"subscriber_id": subscriber.id, "started_at": now}])[0]


def holder_since(subscriber_id: int) -> datetime | None:
    """Since when the number's current holder has held it, when it had an earlier holder:
    the open holding's start, or (nobody holds it now) the last one's end. None when the
    number has had one holder only, whose records are all of it."""
    return since(of_number(subscriber_id))


def since(held: Sequence[Holding]) -> datetime | None:
    """``holder_since`` of a number's holdings, the earliest first."""
    if len(held) < 2:
        return None
    last = held[-1]
    return last.started_at if last.ended_at is None else max(h.ended_at for h in held)


def open_only(query: Select) -> Select:
    """``query`` over consent events, narrowed to the open holdings' events: only the
    current holders' word is in force (a closed holding's grants were all withdrawn when
    it closed, and are an earlier holder's)."""
    return query.join(Holding, (Holding.id == ConsentEvent.holding_id) & Holding.ended_at.is_(None))


class Whose(StrEnum):
    """Whose records: for a number that changed hands, an access answer or an erasure is
    one person's."""

    CURRENT = "current"  # the person holding the number now (their own download)
    EARLIER = "earlier"  # the earlier holders (a previous holder asking support)
    ALL = "all"  # the whole number (support's card, an erasure of the number)


@dataclass(frozen=True)
class Scope:
    """Some of a number's holdings, and the filter that finds their rows.

    A row belongs to a holding by its ``holding_id``; a row written while nobody in the
    register held the number (a code never confirmed) by its time: within the holding's
    period, the first holding's reaching back to the number's first record.
    """

    phone_e164: str
    #: All the number's holdings, the earliest first.
    held: tuple[Holding, ...]
    #: The holdings chosen; None: the whole number.
    chosen: tuple[Holding, ...] | None = None
    #: Instead of holdings: the rows no holding owns written since then (nobody has held
    #: the number since its last holder erased their holding; ``unheld``).
    unheld_since: datetime | None = None

    def has(self, holding_id: int | None) -> bool:
        """Is a row of this holding in the scope?"""
        return self.chosen is None or any(h.id == holding_id for h in self.chosen)

    @property
    def shown(self) -> tuple[Holding, ...]:
        """The holdings the scope covers."""
        return self.held if self.chosen is None else self.chosen

    @property
    def has_current(self) -> bool:
        """Does it cover the holder now?"""
        return any(h.ended_at is None for h in self.shown)

    @property
    def has_first(self) -> bool:
        """Does it cover the number's first holder (who confirmed it into the register)?"""
        return bool(self.held) and self.has(self.held[0].id)

    def rows(self, model, time, mine: ColumnElement | None = None) -> ColumnElement:
        """The WHERE condition of ``model``'s rows in the scope: ``mine`` finds the
        number's (by default by ``model.phone_e164``), ``time`` is when each was written."""
        if mine is None:
            mine = model.phone_e164 == self.phone_e164
        if self.unheld_since is not None:
            return mine & model.holding_id.is_(None) & (time >= self.unheld_since)
        if self.chosen is None:
            return mine
        if not self.chosen:
            return false()
        periods = [self._period(holding, time) for holding in self.chosen]
        ids = [holding.id for holding in self.chosen]
        return mine & (model.holding_id.in_(ids) | (model.holding_id.is_(None) & or_(*periods)))

    def during(self, time) -> ColumnElement:
        """The WHERE condition of rows that no holding owns, by their ``time`` alone (a
        STOP's refusal, a keyed hash): within the chosen holdings' periods."""
        if self.chosen is None:
            return true()
        return or_(false(), *(self._period(holding, time) for holding in self.chosen))

    def _period(self, holding: Holding, time) -> ColumnElement:
        bounds = []
        if holding.id != self.held[0].id:
            bounds.append(time >= holding.started_at)
        if holding.ended_at is not None:
            bounds.append(time < holding.ended_at)
        return and_(true(), *bounds)


def scope(phone_e164: str, whose: Whose = Whose.ALL) -> Scope:
    """The holdings of the number ``whose`` names. A number only ever held by one person
    is all theirs, records from before their holding included."""
    subscriber_id = db.session.scalar(
        select(Subscriber.id).where(Subscriber.phone_e164 == phone_e164)
    )
    return scope_of(phone_e164, subscriber_id, whose)


def scope_of(phone_e164: str, subscriber_id: int | None, whose: Whose = Whose.ALL) -> Scope:
    """``scope``, for a caller that has looked the number's subscriber up already (None:
    not in the register)."""
    held = tuple(of_number(subscriber_id)) if subscriber_id is not None else ()
    if whose == Whose.ALL or (whose == Whose.CURRENT and len(held) < 2):
        return Scope(phone_e164, held)
    if whose == Whose.CURRENT:
        return Scope(phone_e164, held, tuple(h for h in held if h.ended_at is None))
    return Scope(phone_e164, held, tuple(h for h in held if h.ended_at is not None))


def unheld(phone_e164: str, held: Sequence[Holding]) -> Scope:
    """What was written to or from the number since its last holding ended, while nobody
    in the register held it (a reply to HELP, a code): none of the holdings' records."""
    return Scope(phone_e164, tuple(held), (), max(h.ended_at for h in held))


def of_holding(phone_e164: str, holding: Holding) -> Scope:
    """One holding of the number."""
    return Scope(phone_e164, tuple(of_number(holding.subscriber_id)), (holding,))
