"""The statements that meet a twin: an insert that finds its row already there inserts
nothing, and counts kept per key add up, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, text

from viihde.extensions import db
from viihde.models import InboundMessage, SignupTotal
from viihde.models.statements import insert_once, insert_or_add, serialise

from .helpers import drop_server_connections, race

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = date(2026, 11, 25)
REPLY = {
    "provider": "twilio",
    "message_sid": "SM" + "1" * 32,
    "phone_e164": "+358401234567",
    "body": "STOP",
    "keyword": "stop",
    "received_at": NOW,
}
ONCE = ("provider", "message_sid")


def test_insert_once_makes_the_row_and_then_nothing(app_context):
    """The first insert returns the new row's id; the same key again inserts nothing."""
    first = insert_once(InboundMessage, REPLY, unique=ONCE)
    again = insert_once(InboundMessage, REPLY | {"body": "START"}, unique=ONCE)
    other = insert_once(InboundMessage, REPLY | {"message_sid": "SM" + "2" * 32}, unique=ONCE)
    db.session.commit()
    assert isinstance(first, int)
    assert again is None
    assert other not in (None, first)
    rows = db.session.execute(select(InboundMessage.id, InboundMessage.body)).all()
    assert sorted(rows) == sorted([(first, "STOP"), (other, "STOP")])


def test_twin_transactions_inserting_once_make_one_row(app):
    """Two transactions insert the same key at the same moment: one row, one id."""

    def insert() -> int | None:
        made = insert_once(InboundMessage, REPLY, unique=ONCE)
        db.session.commit()
        return made

    results = race(insert, insert, app=app)
    assert sum(result is not None for result in results) == 1
    with app.app_context():
        assert len(db.session.scalars(select(InboundMessage.id)).all()) == 1


def test_insert_or_add_adds_the_counts_to_the_row_with_the_same_key(app_context):
    """A day's totals for a campaign grow with each insert; another campaign is its own row."""
    key = ("day", "campaign")
    counts = ("started", "confirmed")
    for campaign, started, confirmed in [("talvi", 2, 1), ("talvi", 3, 0), ("kevat", 1, 1)]:
        values = {"day": DAY, "campaign": campaign, "started": started, "confirmed": confirmed}
        insert_or_add(SignupTotal, values, unique=key, add=counts)
    db.session.commit()
    totals = db.session.execute(
        select(SignupTotal.campaign, SignupTotal.started, SignupTotal.confirmed)
    ).all()
    assert sorted(totals) == [("kevat", 1, 1), ("talvi", 5, 1)]


def test_insert_rows_gives_loaded_objects_without_the_unit_of_work(app_context):
    """Rows written by one Core INSERT come back in order as objects the session holds as
    if it had loaded them: ids and the database's defaults in them, nothing read again,
    nothing flushed; the session's own look-up finds the same object."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from viihde.models import Holding, Subscriber
    from viihde.models.statements import insert_rows

    [subscriber] = insert_rows(
        Subscriber,
        [{"phone_e164": "+358401234567", "language": "fi", "link_key": "k" * 32,
          "created_at": NOW, "confirmed_at": NOW}],
    )  # fmt: skip
    rows = [{"subscriber_id": subscriber.id, "started_at": NOW, "ended_at": NOW}] * 2
    rows.append({"subscriber_id": subscriber.id, "started_at": NOW, "ended_at": None})
    statements, flushes = [], []

    def on_statement(*arguments) -> None:
        statements.append(arguments[2])

    def on_flush(*arguments) -> None:
        flushes.append(arguments)

    event.listen(db.engine, "before_cursor_execute", on_statement)
    event.listen(Session, "before_flush", on_flush)
    try:
        holdings = insert_rows(Holding, rows)
        assert [h.ended_at for h in holdings] == [NOW, NOW, None]
        assert holdings[0].id < holdings[1].id < holdings[2].id
        assert holdings[2].erased_at is None  # not in the rows: the database's, returned
        assert db.session.get(Holding, holdings[2].id) is holdings[2]
        # One round trip on PostgreSQL; SQLite's driver is given the rows one by one.
        one_per_row = db.engine.dialect.name == "sqlite"
        assert len(statements) == (len(rows) if one_per_row else 1) and flushes == []
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", on_statement)
        event.remove(Session, "before_flush", on_flush)
    assert [h.id for h in db.session.scalars(select(Holding).order_by(Holding.id))] == [
        h.id for h in holdings
    ]


def test_insert_rows_flushes_what_the_session_holds_first(app_context):
    """As ``session.execute`` would: a row the session holds unflushed (here the subscriber
    a holding refers to) is written before the Core INSERT that needs it."""
    from viihde.models import Holding, Subscriber
    from viihde.models.statements import insert_rows

    db.session.add(
        Subscriber(id=7, phone_e164="+358401234567", language="fi", link_key="k" * 32,
                   created_at=NOW, confirmed_at=NOW)
    )  # fmt: skip
    [holding] = insert_rows(Holding, [{"subscriber_id": 7, "started_at": NOW}])
    db.session.commit()
    assert db.session.scalar(select(Holding.subscriber_id).where(Holding.id == holding.id)) == 7


def test_read_once_converts_values_as_sqlalchemy_would(app_context):
    """The hot read runs on the driver's cursor, yet its parameters and columns are
    converted by their types as Core would (a SQLite boolean comes back a bool, not 1),
    and the statement's own values go with the given ones."""
    from sqlalchemy import Boolean, Integer, bindparam, literal

    from viihde.models.statements import read_once

    statement = select(
        literal(True, Boolean()), bindparam("flag", type_=Boolean()), literal(7, Integer())
    )
    for flag in (False, True):
        [(yes, given, seven)] = read_once(statement, {"flag": flag})
        assert yes is True and given is flag and seven == 7


@pytest.mark.usefixtures("needs_postgresql")
def test_read_once_replaces_a_connection_that_dropped_between_lending_and_reading(
    app_context, monkeypatch
):
    """The pool looks at a connection's socket before lending it; one the server drops
    after that fails its read, is thrown away, and the read runs once more on a new one."""
    import select as selectors

    from sqlalchemy import literal

    from viihde.models.statements import read_once

    statement = select(literal(1))
    assert read_once(statement, {}) == [(1,)]  # the pool holds a connection now
    drop_server_connections(db.engine.url)
    # The pool's first look at a socket sees nothing (the drop came after it); its later
    # looks see the drop, as they would.
    looks = []
    real = selectors.select

    def first_look_misses(*arguments):
        looks.append(arguments)
        return ([], [], []) if len(looks) == 1 else real(*arguments)

    monkeypatch.setattr(selectors, "select", first_look_misses)
    assert read_once(statement, {}) == [(1,)]
    assert len(looks) >= 2  # lent twice: the first connection failed its read


def test_read_once_converts_dates_and_refuses_in_lists(app_context):
    """The dialect's own conversion of each type, as Core's (SQLite keeps a time as text:
    a parameter is written as the column stores it, a column read back as an aware
    datetime); a statement with an IN list, which Core renders per call, is refused."""
    from sqlalchemy import bindparam

    from viihde.models import Holding, Subscriber
    from viihde.models.statements import insert_rows, read_once

    [subscriber] = insert_rows(
        Subscriber,
        [{"phone_e164": "+358401234567", "language": "fi", "link_key": "k" * 32,
          "created_at": NOW, "confirmed_at": NOW}],
    )  # fmt: skip
    insert_rows(Holding, [{"subscriber_id": subscriber.id, "started_at": NOW}])
    db.session.commit()
    statement = select(Holding.started_at).where(Holding.started_at == bindparam("at"))
    assert read_once(statement, {"at": NOW}) == db.session.execute(statement, {"at": NOW}).all()
    assert read_once(statement, {"at": NOW}) == [(NOW,)]
    in_list = select(Holding.id).where(Holding.id.in_(bindparam("ids", expanding=True)))
    with pytest.raises(TypeError):
        read_once(in_list, {"ids": [1, 2]})


def test_rows_a_rollback_took_back_leave_the_session(app_context):
    """An object ``insert_rows`` made is taken out of the session when its transaction
    (or savepoint) rolls back, as the session's own inserts are: nothing stale is left to
    read, and a new row that gets the same id (SQLite may reuse it) is no conflict."""
    from viihde.models import Holding, Subscriber
    from viihde.models.statements import insert_rows

    [subscriber] = insert_rows(
        Subscriber,
        [{"phone_e164": "+358401234567", "language": "fi", "link_key": "k" * 32,
          "created_at": NOW, "confirmed_at": NOW}],
    )  # fmt: skip
    db.session.commit()
    [gone] = insert_rows(Holding, [{"subscriber_id": subscriber.id, "started_at": NOW}])
    db.session.rollback()
    assert gone not in db.session
    closed = {"subscriber_id": subscriber.id, "started_at": NOW, "ended_at": NOW}
    [kept] = insert_rows(Holding, [closed])
    with db.session.begin_nested() as savepoint:
        [inner] = insert_rows(Holding, [closed])
        savepoint.rollback()
    assert kept in db.session and inner not in db.session
    db.session.commit()
    assert db.session.scalars(select(Holding.id)).all() == [kept.id]


def test_run_executes_on_the_drivers_cursor_as_core_would(app_context, monkeypatch):
    """``run`` does not go through Core's execution (the hot writes' statements: issue 18),
    yet gives what Core would: the statement's own values with the given ones, an INSERT
    for the columns it is given, constants written into the SQL once (``literal_execute``),
    rows converted by their types, the engine's listeners told, and the driver's errors as
    SQLAlchemy's (a unique violation is an IntegrityError)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Connection

    from viihde.models.statements import run

    table = InboundMessage.__table__
    sent = []

    def told(connection, cursor, statement, *rest) -> None:
        sent.append(statement)

    def after(connection, cursor, statement, *rest) -> None:
        sent.append("after: " + statement)

    event.listen(db.engine, "before_cursor_execute", told)
    monkeypatch.setattr(Connection, "execute", None)  # Core's way would fail now
    try:
        _run_as_core_would(table, sent)
    finally:
        event.remove(db.engine, "before_cursor_execute", told)
    db.session.rollback()  # after the IntegrityError
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        run(select(table.c.id))
    finally:
        event.remove(db.engine, "after_cursor_execute", after)
    assert sent[-1].startswith("after: SELECT inbound_messages.id")


def _run_as_core_would(table, sent: list[str]) -> None:
    from sqlalchemy import bindparam, insert
    from sqlalchemy.exc import IntegrityError, MultipleResultsFound, NoResultFound

    from viihde.models.statements import run

    adding = insert(table).returning(table.c.id, table.c.received_at)
    [(first_id, received)] = run(adding, REPLY)
    assert received == NOW and received.tzinfo is not None
    assert sent[-1].startswith("INSERT INTO inbound_messages") and "keyword" in sent[-1]
    kinds = select(table.c.keyword).where(
        table.c.keyword.in_(
            bindparam("kinds", ["stop", "x"], expanding=True, literal_execute=True)
        ),
        table.c.id == bindparam("id"),
    )
    assert run(kinds, {"id": first_id}).one() == ("stop",)
    assert "'stop', 'x'" in sent[-1]
    assert run(kinds, {"id": first_id + 1}).one_or_none() is None
    with pytest.raises(NoResultFound):
        run(kinds, {"id": first_id + 1}).one()
    run(adding, REPLY | {"message_sid": "SM" + "2" * 32})
    with pytest.raises(MultipleResultsFound):
        run(select(table.c.id)).one()
    with pytest.raises(IntegrityError):
        run(adding, REPLY)  # the same message again


def test_run_refuses_what_core_would_compute_per_call(app_context):
    """What ``run`` cannot do as Core would is refused when the statement is prepared, not
    done wrong: a column's Python-side default left out (Core fills it in), a constant
    written into the SQL given per call, or without a value; a text() SELECT gives its
    rows; constants of a converted type (booleans) are written as they are."""
    from sqlalchemy import bindparam, insert

    from viihde.models import ConsentState, Verification
    from viihde.models.statements import run

    codes = Verification.__table__
    row = {"phone_e164": "+358401234567", "kind": "signup", "code_hash": "h", "language": "fi",
           "purposes": "offers", "created_at": NOW, "expires_at": NOW,
           "privacy_notice_version": "v", "consent_text_version": "v"}  # fmt: skip
    with pytest.raises(TypeError, match="default"):
        run(insert(codes), row)  # no attempts: its default=0 is Python's
    run(insert(codes), row | {"attempts": 0})
    states = ConsentState.__table__
    granted = bindparam("granted", [True], expanding=True, literal_execute=True)
    assert run(select(states.c.purpose).where(states.c.granted.in_(granted))) == []
    with pytest.raises(TypeError, match="not given per call"):
        run(select(states.c.purpose).where(states.c.granted.in_(granted)), {"granted": [False]})
    unset = bindparam("unset", literal_execute=True)
    with pytest.raises(TypeError, match="needs its value"):
        run(select(states.c.purpose).where(states.c.purpose == unset))
    assert run(text("SELECT 1")) == [(1,)]


def test_objects_read_on_the_drivers_cursor_are_loaded_and_fresh(app_context):
    """``get`` and ``read_one`` (the hot paths' reads): an object read is in the session as
    if the ORM had loaded it (nothing to flush, the same object for the same row); one the
    session holds already is returned without a statement by ``get``, and made fresh by a
    locking read (what the database holds wins), as the ORM's populate_existing."""
    from sqlalchemy import delete, event
    from sqlalchemy.orm.attributes import set_committed_value

    from viihde.models import Subscriber
    from viihde.models.statements import get, insert_rows, run
    from viihde.register.consent import lock_subscriber

    [made] = insert_rows(
        Subscriber,
        [{"phone_e164": "+358401234567", "language": "fi", "link_key": "k" * 32,
          "created_at": NOW, "confirmed_at": NOW}],
    )  # fmt: skip
    made_id = made.id
    db.session.commit()
    db.session.expunge_all()
    subscriber = get(Subscriber, made_id)
    assert (subscriber.phone_e164, subscriber.created_at) == ("+358401234567", NOW)
    assert not db.session.dirty and db.session.get(Subscriber, made_id) is subscriber
    assert get(Subscriber, made_id + 1) is None
    sent = []

    def told(connection, cursor, statement, *rest) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", told)
    try:
        assert get(Subscriber, made_id) is subscriber and sent == []
    finally:
        event.remove(db.engine, "before_cursor_execute", told)
    set_committed_value(subscriber, "language", "sv")  # as if read before a change
    assert lock_subscriber(made_id) is subscriber
    assert subscriber.language == "fi"
    assert not db.session.dirty
    db.session.commit()  # the session's objects expire
    run(delete(Subscriber.__table__))  # gone meanwhile, as far as the session knows
    assert get(Subscriber, made_id) is None  # as session.get: not the expired object


@pytest.mark.usefixtures("needs_postgresql")
def test_a_lock_that_plans_once_holds_for_its_transaction_only(app_context):
    """``serialise(plan_once=True)``: PostgreSQL's generic plans for the rest of the
    transaction (the lock's own round trip), and its usual choice again after it; the
    plain lock leaves the choice alone."""

    def mode() -> str:
        return db.session.scalar(text("SELECT current_setting('plan_cache_mode')"))

    serialise("test:plain")
    assert mode() == "auto"
    db.session.commit()
    serialise("test:planned", plan_once=True)
    assert mode() == "force_generic_plan"
    db.session.rollback()
    assert mode() == "auto"
    serialise("test:planned", plan_once=True)
    db.session.commit()
    assert mode() == "auto"


def test_the_pool_lends_connections_without_a_ping_and_renews_them(app_context):
    """No pool_pre_ping (its SELECT 1 would be a round trip on every request): a dropped
    connection is found by the pool's look at its socket and a read's retry instead, and
    every connection is replaced after half an hour (pool_recycle)."""
    assert db.engine.pool._pre_ping is False
    assert 0 < db.engine.pool._recycle <= 1800
