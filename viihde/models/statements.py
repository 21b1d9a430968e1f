"""Statements that hold when a twin transaction runs at the same moment, on PostgreSQL and
SQLite alike: per-key locks, and inserts that meet a row already there.

Locks: on PostgreSQL an advisory lock held until the transaction ends; SQLite runs one
writer at a time already (every transaction begins IMMEDIATE), so there is nothing more to
take. Inserts: ``INSERT ... ON CONFLICT``, which both databases have, each in its dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Executable, Insert, Select, Table, bindparam, event, insert, select, text
from sqlalchemy import inspect as mapper_of
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.compiler import SQLCompiler

from viihde.extensions import db


def read_once(statement: Select, parameters: Mapping[str, Any]) -> list[tuple]:
    """Run one read outside any transaction (autocommit: no BEGIN or ROLLBACK around it,
    one round trip) on a pooled connection's own cursor; once more on a fresh connection
    if the server had dropped it (a restart, an idle timeout: the pool does not ping).

    The statement is prepared as ``run``'s are (compiled once, SQLAlchemy's type
    conversions applied; rows as the driver's tuples). Only the hottest read takes this
    way: Core's execution and result layers around one statement cost the preference page
    about a tenth of its throughput over HTTP (issue 18)."""
    engine = db.engine
    prepared = _prepared(statement, engine.dialect, ())
    values = prepared.values(parameters)
    for attempt in (1, 2):
        connection = engine.raw_connection()
        try:
            return prepared.rows(_fetch_autocommit(connection, prepared.sql, values))
        except engine.dialect.loaded_dbapi.Error as error:
            dropped = engine.dialect.is_disconnect(error, connection.dbapi_connection, None)
            if attempt == 2 or not dropped:
                raise
            connection.invalidate(error)
        finally:
            connection.close()
    raise AssertionError("unreachable")


def _fetch_autocommit(connection, sql: str, values) -> list[tuple]:
    """The rows of one statement run in autocommit on a pooled DBAPI connection. psycopg's
    autocommit is switched on for it and off again (no round trip either way); SQLite's
    connections are in autocommit already (``_configure_sqlite``: a transaction is an
    explicit BEGIN IMMEDIATE)."""
    driver = connection.driver_connection
    switch = hasattr(driver, "autocommit") and not driver.autocommit
    if switch:
        driver.autocommit = True
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, values)
            return cursor.fetchall()
        finally:
            cursor.close()
    finally:
        if switch and not driver.closed:
            driver.autocommit = False


class Rows(list):
    """The rows a statement returned, as the driver's tuples (SQLAlchemy's type conversions
    applied), with ``names``: each column's key, in order."""

    def __init__(self, rows: Iterable[tuple], names: tuple[str, ...]) -> None:
        super().__init__(rows)
        self.names = names

    def one(self) -> tuple:
        if len(self) != 1:
            raise (NoResultFound if not self else MultipleResultsFound)(f"{len(self)} rows")
        return self[0]

    def one_or_none(self) -> tuple | None:
        return None if not self else self.one()

    def scalar_one(self) -> Any:
        return self.one()[0]


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled for one database: its SQL, its parameters as the driver takes
    them, and its result columns' names and type conversions (None: none is needed)."""

    compiled: SQLCompiler
    sql: str
    positions: tuple[str, ...] | None
    binds: dict[str, Callable]
    names: tuple[str, ...]
    columns: tuple[Callable | None, ...] | None
    #: The parameters written into the SQL (``literal_execute``): not given per call.
    literals: frozenset[str] = frozenset()

    def values(self, parameters: Mapping[str, Any] | None):
        """The driver's parameters: SQLAlchemy's (the statement's own values with the
        given ones), each converted as its type says, in order where SQLite wants it."""
        if parameters and self.literals and not self.literals.isdisjoint(parameters):
            raise TypeError(f"written into the SQL once, not given per call: {self.literals}")
        values = self.compiled.construct_params(parameters)
        for name, convert in self.binds.items():
            values[name] = convert(values[name])
        if self.positions is not None:
            return tuple(values[name] for name in self.positions)
        return values

    def rows(self, rows: list[tuple]) -> list[tuple]:
        if self.columns is None:
            return rows
        return [
            tuple(v if f is None else f(v) for f, v in zip(self.columns, row, strict=True))
            for row in rows
        ]


@lru_cache(maxsize=256)
def _prepared(statement: Executable, dialect, keys: tuple[str, ...]) -> _Prepared:
    """``statement`` compiled for ``dialect`` (an INSERT or UPDATE: for the columns named
    by ``keys``, its parameters' names) with each parameter's and column's type
    conversion as Core finds it (the dialect's own implementation of the type: a SQLite
    date is text to parse, a ``UTCDateTime`` gets its time zone). Kept for the statement
    object: a caller builds its statement once. Values written into the SQL as constants
    (``literal_execute``) are rendered here, once; parameters Core renders per call (an
    expanding IN) are refused."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    if compiled.post_compile_params:
        raise TypeError("a prepared statement takes no parameter rendered at execution")
    if compiled.insert_prefetch or compiled.update_prefetch:  # Core would compute them
        raise TypeError("give every column with a Python-side default its value")
    literals = {compiled.bind_names[bind] for bind in compiled.literal_execute_params}
    if any(
        bind.value is None and bind.callable is None for bind in compiled.literal_execute_params
    ):
        raise TypeError("a value written into the SQL once needs its value in the statement")
    sql, positions = str(compiled), compiled.positiontup
    if literals:
        expanded = compiled.construct_expanded_state(compiled.construct_params(_check=False))
        sql, positions = expanded.statement, expanded.positiontup
    exported = statement.exported_columns if hasattr(statement, "exported_columns") else ()
    columns = tuple(_result_processor(column, dialect) for column in exported)
    escaped = compiled.escaped_bind_names  # names SQLAlchemy escaped in the SQL ("a b": "a_b")
    return _Prepared(
        compiled=compiled,
        sql=sql,
        positions=tuple(escaped.get(n, n) for n in positions) if compiled.positional else None,
        binds={
            escaped.get(name, name): processor
            for bind in compiled.binds.values()
            if (name := compiled.bind_names[bind]) not in literals
            and (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        },
        names=tuple(column.key for column in exported),
        columns=columns if any(columns) else None,
        literals=frozenset(literals),
    )


def _result_processor(column, dialect) -> Callable | None:
    try:
        return column.type.dialect_impl(dialect).result_processor(dialect, None)
    except TypeError:  # one that needs the driver's own column type (psycopg's numeric)
        raise TypeError(f"{column}: a type run() cannot convert without Core") from None


def run(
    statement: Executable,
    parameters: Mapping[str, Any] | list | None = None,
    *,
    autoflush: bool = True,
) -> Rows:
    """Run a Core statement in the session's transaction, on its connection's own cursor:
    compiled once (``_prepared``), without Core's execution and result layers around it
    (issue 18: 40-90 µs of CPU a statement), its rows as tuples. A list of parameter sets
    runs the statement once for each, in order (psycopg pipelines them: one round trip),
    with the rows of each. What the session holds unflushed is flushed first (the ORM's
    autoflush, unless ``autoflush`` is off; nothing is done when it holds nothing).

    The driver's errors come as SQLAlchemy's. The engine's ``before_cursor_execute`` and
    ``after_cursor_execute`` listeners are told of each driver call, without an execution
    context (None) and without rewriting it (``retval`` listeners are not honoured); the
    engine's echo does not log it. What Core computes per call is refused when the
    statement is prepared: Python-side column defaults, IN lists rendered per call."""
    session = db.session()
    if autoflush and session.autoflush and not session._flushing:
        session.flush()  # nothing to do (and no flush) when the session is clean
    connection = session.connection()
    dialect = connection.dialect
    many = isinstance(parameters, list)
    given = (parameters[0] if many else parameters) or {}
    prepared = _prepared(statement, dialect, tuple(given) if statement.is_dml else ())
    values = [prepared.values(each) for each in parameters] if many else prepared.values(parameters)
    fairy = connection.connection
    cursor = fairy.cursor()
    before, after = (
        connection.dispatch.before_cursor_execute,
        connection.dispatch.after_cursor_execute,
    )

    def sent(parameters, many: bool) -> None:  # as Core tells the engine's listeners
        if before:
            before(connection, cursor, prepared.sql, parameters, None, many)

    try:
        rows = _execute(cursor, prepared, values, many, dialect.name, sent)
        if after:
            after(connection, cursor, prepared.sql, values, None, many)
    except dialect.loaded_dbapi.Error as error:
        if dialect.is_disconnect(error, fairy.dbapi_connection, cursor):
            connection.invalidate(error)
        raise DBAPIError.instance(
            prepared.sql, values, error, dialect.loaded_dbapi.Error, dialect=dialect
        ) from error
    finally:
        cursor.close()
    return Rows(prepared.rows(rows), prepared.names)


def _execute(cursor, prepared: _Prepared, values, many: bool, dialect: str, sent) -> list:
    """The statement's driver calls (each told to ``sent`` first) and the rows they gave."""
    returns = bool(prepared.names)
    if not many:
        sent(values, False)
        cursor.execute(prepared.sql, values)
        # Rows whenever there are any (a text() SELECT names no columns of its own).
        return cursor.fetchall() if returns or cursor.description is not None else []
    if not returns:
        sent(values, True)
        cursor.executemany(prepared.sql, values)
        return []
    if dialect != "postgresql":  # SQLite's executemany returns no rows: one by one
        rows = []
        for each in values:
            sent(each, False)
            cursor.execute(prepared.sql, each)
            rows += cursor.fetchall()
        return rows
    sent(values, True)
    cursor.executemany(prepared.sql, values, returning=True)
    rows = []
    while True:
        rows += cursor.fetchall()
        if not cursor.nextset():
            return rows


_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
#: The lock, and for the rest of the transaction PostgreSQL's generic plans (below).
_LOCK_AND_PLAN_ONCE = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(:key, 0)), "
    "set_config('plan_cache_mode', 'force_generic_plan', true)"
)


def serialise(key: str, *, plan_once: bool = False) -> None:
    """Make twin transactions about ``key`` take turns until this one ends.

    ``plan_once``: for the rest of the transaction, PostgreSQL runs each statement the
    connection has prepared by a plan made once for any parameters (its generic plan), in
    the same round trip as the lock. For a transaction whose statements are the same shape
    every time and whose right plan does not hang on its parameters (the hot writes': each
    reads off the index its equality names, a range closed or limited by a constant),
    where PostgreSQL would plan some of them again for every call because its estimate for
    the generic plan came out dearer (the checks of a code: 0.9 ms of planning a code, for
    the same plan). It holds for every statement with parameters until the transaction
    ends, prepared by the connection or not (an unnamed statement is planned generically
    too) and the triggers' own at the commit: a statement added to such a transaction must
    be one whose plan does not hang on its parameters (no open range, no LIKE $1)."""
    if _dialect() == "postgresql":
        run(_LOCK_AND_PLAN_ONCE if plan_once else _LOCK, {"key": key}, autoflush=False)


def get(model: type, ident: int) -> Any | None:
    """``session.get`` for the hot paths: the object the session holds already, or one
    prepared SELECT of its every column on the driver's cursor (``run``), the object added
    to the session as loaded (the ORM's own load is about twice the CPU: issue 18). None
    when there is no such row."""
    session = db.session()
    held = session.identity_map.get(session.identity_key(model, ident))
    if held is not None and not mapper_of(held).expired:
        return held
    return read_one(_by_id(model), {"ident": ident}, model)


def read_one(statement: Select, parameters: Mapping[str, Any], model: type) -> Any | None:
    """The model's object for the one row ``statement`` (every column of ``model``, as
    ``columns_of`` gives them) finds, run by ``run``: as the session holds it, its values
    made the row's (a read under a lock is the fresh one), or added to the session as
    loaded. None when there is no such row."""
    row = run(statement, parameters).one_or_none()
    if row is None:
        return None
    session = db.session()
    values = dict(zip(_attribute_names(model), row, strict=True))
    (key,) = mapper_of(model).primary_key
    held = session.identity_map.get(session.identity_key(model, values[key.key]))
    if held is not None:
        for name, value in values.items():
            set_committed_value(held, name, value)
        return held
    instance = model(**values)
    make_transient_to_detached(instance)
    session.add(instance)
    return instance


def columns_of(model: type) -> tuple:
    """The model's columns, in the order ``read_one`` makes its object from a row."""
    return _columns(model)


@cache
def _attribute_names(model: type) -> tuple[str, ...]:
    return tuple(column.key for column in _columns(model))


@cache
def _by_id(model: type) -> Select:
    (key,) = mapper_of(model).primary_key
    return select(*_columns(model)).where(key == bindparam("ident"))


def insert_once(model: type, values: Mapping[str, Any], *, unique: Sequence[str]) -> int | None:
    """Insert a row of ``model`` unless one with the same ``unique`` columns is there (a
    twin's, or an earlier one): the new row's id, or None when nothing was inserted."""
    table = model.__table__
    return db.session.execute(
        _insert(table)
        .values(values)
        .on_conflict_do_nothing(index_elements=[table.c[name] for name in unique])
        # RETURNING, not rowcount: psycopg reports no rowcount for INSERT ... ON CONFLICT.
        .returning(table.c.id)
    ).scalar_one_or_none()


def insert_new(model: type, values: Mapping[str, Any], *, unique: Sequence[str]) -> Any | None:
    """``insert_once``, the new row coming back as the model's object (persistent in the
    session, nothing read after the INSERT); None when one was there already."""
    statement = _insert_new_statement(model, tuple(unique), _dialect())
    made = _loaded_rows(model, run(statement, values))
    return made[0] if made else None


@cache
def _insert_new_statement(model: type, unique: tuple[str, ...], dialect: str) -> Insert:
    table = model.__table__
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return statement.on_conflict_do_nothing(
        index_elements=[table.c[name] for name in unique]
    ).returning(*_columns(model))


def insert_rows(model: type, rows: Sequence[Mapping[str, Any]], statement: Insert | None = None):
    """Insert ``rows`` of ``model`` (keyed by column) with one Core INSERT ... RETURNING on
    the session's connection, not the ORM's unit of work (no flush; several rows go in
    one round trip); each comes back, in order, as the model's object, persistent in the
    session as if it had been loaded (ids and the database's defaults in it).

    ``statement`` is ``returning_insert(model)`` with more to it (a value computed in SQL,
    say), built once by the caller."""
    if not rows:
        return []
    statement = returning_insert(model) if statement is None else statement
    return _loaded_rows(model, run(statement, rows[0] if len(rows) == 1 else list(rows)))


def _loaded_rows(model: type, rows: Rows) -> list:
    """Rows of ``model`` a statement just wrote and returned (every column, each named as
    its attribute), as the model's objects in the session: see ``_loaded``."""
    return [_loaded(model, dict(zip(rows.names, row, strict=True))) for row in rows]


@cache
def returning_insert(model: type) -> Insert:
    """``insert_rows``'s statement for ``model``: every column back (``run`` runs it once
    for each row, in order)."""
    return insert(model.__table__).returning(*_columns(model))


@cache
def _columns(model: type) -> tuple:
    """The model's columns, in the order its objects are made from a returned row (each
    attribute is named as its column: ``_loaded`` relies on it)."""
    attributes = mapper_of(model).column_attrs
    columns = tuple(attribute.columns[0] for attribute in attributes)
    if any(a.key != c.key for a, c in zip(attributes, columns, strict=True)):
        raise TypeError(f"{model.__name__}: an attribute named other than its column")
    return columns


def _loaded(model: type, values: dict[str, Any]) -> Any:
    """The model's object for a row just written (its columns' values by name), added to
    the session as loaded (and remembered with its transaction: a rollback of that
    transaction takes it out of the session again, as it does an object the session
    inserted itself)."""
    instance = model(**values)
    make_transient_to_detached(instance)
    session = db.session()
    session.add(instance)
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_INSERTED, []).append((transaction, instance))
    return instance


#: Where a session keeps the objects ``insert_rows`` made, with the transaction of each.
_INSERTED = "viihde.inserted_rows"


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction) -> None:
    """The rows a rolled-back transaction (or savepoint) inserted are gone: so are their
    objects (they stayed in the session as loaded, and SQLite may give a new row the same
    id)."""
    kept = []
    for transaction, instance in session.info.pop(_INSERTED, []):
        if _within(transaction, previous_transaction):
            if instance in session:
                session.expunge(instance)
        else:
            kept.append((transaction, instance))
    if kept:
        session.info[_INSERTED] = kept


@event.listens_for(Session, "after_commit")
def _forget_committed(session: Session) -> None:
    session.info.pop(_INSERTED, None)


def _within(transaction, ancestor) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def insert_or_add(
    model: type, values: Mapping[str, Any], *, unique: Sequence[str], add: Sequence[str]
) -> None:
    """Insert a row of ``model``, or add its ``add`` columns' values to those of the row
    with the same ``unique`` columns (counts kept per day, say)."""
    table = model.__table__
    statement = _insert(table).values(values)
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c[name] for name in unique],
            set_={name: table.c[name] + statement.excluded[name] for name in add},
        )
    )


def insert_or_replace(
    model: type, rows: Sequence[Mapping[str, Any]], *, unique: Sequence[str]
) -> None:
    """Insert ``rows`` of ``model`` (one executemany: psycopg pipelines it, one round trip),
    each replacing the row with the same ``unique`` columns (a current state kept beside
    its history, say). The statement is built and compiled once per table and dialect."""
    run(_upsert(model.__table__, tuple(unique), _dialect()), list(rows))


@cache
def _upsert(table: Table, unique: tuple[str, ...], dialect: str):
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c[name] for name in unique],
        set_={
            column.name: statement.excluded[column.name]
            for column in table.c
            if column.name not in unique
        },
    )


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _insert(table: Table | type):
    """The INSERT of the session's database, which knows ON CONFLICT (into a table, or a
    mapped class for an ORM-enabled INSERT)."""
    return (pg_insert if _dialect() == "postgresql" else sqlite_insert)(table)
