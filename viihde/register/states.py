"""The current consent state, stored beside the ledger: one row per holding and purpose
(``ConsentState``), what the pages, the audience and campaigns read.

``consent.append`` writes it with every event, in the same transaction and under the same
subscriber lock; a holder change, which moves events between holdings, folds the two
holdings again (``refold``); erasing events takes their state with them (a foreign key).
The ledger stays the proof: the state always equals its fold (tests/test_consent.py).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, delete, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert

from viihde.extensions import db
from viihde.models import ConsentEvent, ConsentState, Holding
from viihde.models.statements import Rows, columns_of, insert_or_replace, returning_insert, run
from viihde.register.purposes import configured_keys as configured_purposes

GRANT = "grant"


#: A ledger event as ``record`` wrote it: every column of ``ConsentEvent``, by name, as
#: plain values (no object of the session: nothing on the hot paths needs one, and making
#: them was a fifteenth of an unsubscribe's CPU, issue 18).
RecordedEvent = namedtuple("RecordedEvent", [column.key for column in columns_of(ConsentEvent)])


def record(rows: Sequence[Mapping[str, Any]]) -> list[RecordedEvent]:
    """Append ``rows`` (keyed by column, in ledger order) to the consent ledger and make the
    state follow (no commit): the events come back, in order, as ``RecordedEvent``.

    On PostgreSQL one statement does both (``_record_statement``: the columns whose values
    differ between the rows go in as arrays, and the state is written from what the INSERT
    returned); SQLite, which has no INSERT in a WITH, takes two."""
    if not rows:
        return []
    if db.session.get_bind().dialect.name != "postgresql":
        events = _recorded(run(returning_insert(ConsentEvent), list(rows)))
        write(events)
        return events
    first = rows[0]
    # The columns whose values differ between the rows go in as arrays (the place in the
    # ledger always does); the rest (the subscriber, the holding, the time, the evidence:
    # one append's) as one value each, which the driver converts faster.
    varying = tuple(
        name
        for name in _recorded_names()
        if name == "seq" or any(r[name] != first[name] for r in rows)
    )
    parameters = {
        name: [row[name] for row in rows] if name in varying else first[name]
        for name in _recorded_names()
    }
    return _recorded(run(_record_statement(varying), parameters))


def _recorded(rows: Rows) -> list[RecordedEvent]:
    if rows.names != RecordedEvent._fields:
        raise TypeError(f"not a ledger event's columns: {rows.names}")
    return [RecordedEvent._make(row) for row in rows]


@cache
def _recorded_names() -> tuple[str, ...]:
    """The ledger's columns a new event is given (all but its id)."""
    return tuple(column.name for column in ConsentEvent.__table__.c if column.name != "id")


@cache
def _record_statement(varying: tuple[str, ...]) -> Select:
    """``record``'s statement on PostgreSQL, built once per set of ``varying`` columns (an
    array each; the others one value each): the new events (``unnest`` zips the arrays,
    so the SQL and its parameters are the same for any number of events), the state of
    each holding and purpose from its last new event, and the events back in ledger order.
    The state's INSERT sees the new rows only through the first INSERT's RETURNING (both
    run on the statement's one snapshot), which is all it needs."""
    events, states = ConsentEvent.__table__, ConsentState.__table__
    given = [events.c[name] for name in _recorded_names()]
    arrays = (
        func.unnest(*(bindparam(name, type_=ARRAY(events.c[name].type)) for name in varying))
        .table_valued(*varying)
        .render_derived(name="given")
    )
    values = [
        arrays.c[column.name]
        if column.name in varying
        else bindparam(column.name, type_=column.type)
        for column in given
    ]
    new = (
        insert(events)
        .from_select([column.name for column in given], select(*values))
        .returning(*events.c)
        .cte("new")
    )
    state = {
        "holding_id": new.c.holding_id,
        "purpose": new.c.purpose,
        "granted": new.c.action == GRANT,
        "event_id": new.c.id,
        "basis": new.c.basis,
        "consent_text_version": new.c.consent_text_version,
        "changed_at": new.c.created_at,
    }
    if set(state) != set(states.c.keys()):
        raise TypeError("record's state must give every column of consent_states")
    last = (
        select(*state.values())
        .ext(distinct_on(new.c.holding_id, new.c.purpose))
        .order_by(new.c.holding_id, new.c.purpose, new.c.seq.desc())
    )
    upsert = pg_insert(states).from_select(list(state), last)
    upsert = upsert.on_conflict_do_update(
        index_elements=list(_STATE_KEY),
        set_={name: upsert.excluded[name] for name in state if name not in _STATE_KEY},
    )
    return select(*new.c).add_cte(upsert.cte("state")).order_by(new.c.seq)


#: A state's key: one row per holding and purpose.
_STATE_KEY = ("holding_id", "purpose")


def write(events: Iterable[RecordedEvent]) -> None:
    """Make each holding's and purpose's state that of its last event among ``events``
    (written already, in ledger order; no commit)."""
    last = {(event.holding_id, event.purpose): event for event in events}
    if not last:
        return
    insert_or_replace(
        ConsentState,
        [
            {
                "holding_id": event.holding_id,
                "purpose": event.purpose,
                "granted": event.action == GRANT,
                "event_id": event.id,
                "basis": event.basis,
                "consent_text_version": event.consent_text_version,
                "changed_at": event.created_at,
            }
            for event in last.values()
        ],
        unique=("holding_id", "purpose"),
    )


def refold(holding_ids: Iterable[int] | None = None) -> None:
    """Set the state of ``holding_ids`` (every holding: None) from the ledger's fold, after
    events moved between holdings or were loaded in bulk (no commit)."""
    ids = None if holding_ids is None else list(holding_ids)
    events = select(
        ConsentEvent.id,
        ConsentEvent.holding_id,
        ConsentEvent.purpose,
        ConsentEvent.action,
        ConsentEvent.basis,
        ConsentEvent.consent_text_version,
        ConsentEvent.created_at,
        func.row_number()
        .over(
            partition_by=(ConsentEvent.holding_id, ConsentEvent.purpose),
            order_by=ConsentEvent.seq.desc(),
        )
        .label("n"),
    )
    stale = delete(ConsentState)
    if ids is not None:
        events = events.where(ConsentEvent.holding_id.in_(ids))
        stale = stale.where(ConsentState.holding_id.in_(ids))
    ranked = events.subquery()
    db.session.execute(stale)
    db.session.execute(
        insert(ConsentState).from_select(
            [
                "holding_id",
                "purpose",
                "granted",
                "event_id",
                "basis",
                "consent_text_version",
                "changed_at",
            ],
            select(
                ranked.c.holding_id,
                ranked.c.purpose,
                ranked.c.action == GRANT,
                ranked.c.id,
                ranked.c.basis,
                ranked.c.consent_text_version,
                ranked.c.created_at,
            ).where(ranked.c.n == 1),
        )
    )


def current(subscriber_id: int) -> dict[str, bool]:
    """Each purpose's state in the number's open holding (configured ones, and any other
    it holds; all off while nobody holds the number): one statement."""
    state = dict.fromkeys(configured_purposes(), False)
    state.update(
        db.session.execute(
            select(ConsentState.purpose, ConsentState.granted)
            .join(Holding, Holding.id == ConsentState.holding_id)
            .where(Holding.subscriber_id == subscriber_id, Holding.ended_at.is_(None))
        ).all()
    )
    return state


class LastEvent(NamedTuple):
    """What a change needs of the event a purpose's state rests on: its action (the state),
    the basis a withdrawal keeps ("the customer refused"), and its consent text (what a
    withdrawal of a retired purpose names)."""

    action: str
    basis: str
    purchased_on: date | None
    consent_text_version: str


def open_holding_and_latest(
    subscriber_id: int,
) -> tuple[int | None, dict[str, LastEvent], int | None]:
    """The open holding's id, each purpose's last event as its stored state rests on it
    (the fold's last event, which the state always equals), and the number's last place
    in the ledger (0: none): one statement, read under the subscriber's lock. Nobody holds
    the number: (None, {}, None)."""
    rows = run(_open_holding_statement(), {"subscriber_id": subscriber_id})
    if not rows:
        return None, {}, None
    latest = {purpose: LastEvent(*event) for _, purpose, *event, _ in rows if purpose is not None}
    return rows[0][0], latest, rows[0][-1]


@cache
def _open_holding_statement() -> Select:
    """``open_holding_and_latest``'s statement, built once (``subscriber_id``)."""
    subscriber_id = bindparam("subscriber_id")
    last_seq = (
        select(func.coalesce(func.max(ConsentEvent.seq), 0))
        .where(ConsentEvent.subscriber_id == subscriber_id)
        .scalar_subquery()
    )
    return (
        select(
            Holding.id,
            ConsentEvent.purpose,
            ConsentEvent.action,
            ConsentEvent.basis,
            ConsentEvent.purchased_on,
            ConsentEvent.consent_text_version,
            last_seq,
        )
        .outerjoin(ConsentState, ConsentState.holding_id == Holding.id)
        .outerjoin(ConsentEvent, ConsentEvent.id == ConsentState.event_id)
        .where(Holding.subscriber_id == subscriber_id, Holding.ended_at.is_(None))
    )
