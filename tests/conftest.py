"""Fixtures: the app on a migrated register (SQLite, or PostgreSQL when DATABASE_URL is
set), an empty register and fresh rate limits for each test, the SMS outbox, and a
visitor walking the sign-up.

The app is built once and reused by the tests that ask for the same settings; each test
still gets its own outbox, its own settings back as they were, and no rate-limit count,
cached page or row left by another test. Under pytest-xdist (`make test`) every worker
has a register of its own (its SQLite file, or a PostgreSQL database named after
DATABASE_URL's with the worker's id) and a Redis database of its own (REDIS_URL's number
plus the worker's). The helpers the tests act with are in helpers.py, their data comes
from factories.py, and the app's test settings from settings.py.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import freezegun
import hypothesis
import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, make_url, text

from viihde import create_app
from viihde.config import database_url
from viihde.extensions import cache, db
from viihde.web import ratelimits

from .helpers import Outbox, Visitor, folded_states, number_in_clear, stored_states
from .settings import app_settings

# pytest's own clock (--durations) keeps real time while a test freezes the app's.
freezegun.configure(extend_ignore_list=["_pytest.timing"])
# No example has a time limit: on 2 busy cores a slow one is load, not a finding (speed
# is measured by bench/, never by the tests).
hypothesis.settings.register_profile("viihde", deadline=None)
hypothesis.settings.load_profile("viihde")

#: The append-only tables: their triggers refuse rewriting them, TRUNCATE included.
LEDGERS = ("audit_entries", "consent_events")
#: The register's sequences that handed out an id since they last started over.
USED_SEQUENCES = (
    "SELECT quote_ident(sequencename) FROM pg_sequences "
    "WHERE schemaname = current_schema() AND last_value IS NOT NULL"
)
SQLITE_AUDIT_NO_DELETE = (
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END"
)


def worker_number() -> int:
    """This pytest-xdist worker's number (gw0 is 0), or 0 without xdist."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))


def postgresql_of_this_worker(url: str) -> str:
    """DATABASE_URL itself without xdist; under it, a database named after it for each
    worker (test_gw0, test_gw1, ...), made on first use on the same server."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    given = make_url(url)
    name = f"{given.database}_{worker}"
    engine = create_engine(given, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        )
        if not exists:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return given.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_uri(tmp_path_factory) -> str:
    """A register built by the migrations, once per run (per worker); tests empty it."""
    url = os.environ.get("DATABASE_URL")
    if url:
        uri = postgresql_of_this_worker(database_url(url, ""))
    else:
        uri = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "register.sqlite3")
    app = create_app(app_settings(uri))
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        upgrade()
        db.engine.dispose()
    return uri


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the queue tests use: REDIS_URL's database, plus the worker's number under
    xdist. Skips the test without REDIS_URL (a laptop); CI sets it."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL not set")
    given = urlsplit(url)
    number = int(given.path.strip("/") or 0) + worker_number()
    return urlunsplit(given._replace(path=f"/{number}"))


@pytest.fixture(autouse=True)
def no_personal_data_in_logs(caplog):
    """Every test: no log record (any level, any logger) carries a phone number in clear,
    in its message or its traceback."""
    caplog.set_level(logging.DEBUG)
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    lines = [record.getMessage() + "\n" + (record.exc_text or "") for record in records]
    leaks = [line for line in lines if number_in_clear(line)]
    assert leaks == [], "personal data in logs"


@pytest.fixture
def outbox_path(tmp_path) -> Path:
    return tmp_path / "outbox.jsonl"


@pytest.fixture
def config_overrides() -> dict:
    """Override in a test module (or with indirect parametrisation) to change settings."""
    return {}


class Apps:
    """The last app built, kept for the next test that asks for the same settings.

    Only the last one, so that a test's app is the one its settings describe.
    """

    def __init__(self) -> None:
        self.key: str | None = None
        self.app: Flask | None = None

    def get(self, settings: dict, reuse: bool = True) -> Flask:
        key = json.dumps(settings, sort_keys=True, default=repr)
        if reuse and key == self.key and self.app is not None:
            return self.app
        self.drop()
        app = create_app(settings)
        if reuse:
            self.key, self.app = key, app
        return app

    def drop(self) -> None:
        if self.app is not None:
            with self.app.app_context():
                db.engine.dispose()
        self.key, self.app = None, None


@pytest.fixture(scope="session")
def apps():
    """The app kept between tests (one per worker)."""
    built = Apps()
    yield built
    built.drop()


@pytest.fixture
def app(apps, database_uri, outbox_path, config_overrides, request):
    """The app with the test settings and ``config_overrides``, its SMS written to this
    test's outbox. Whatever the test changes in its settings or extensions is undone."""
    reuse = request.node.get_closest_marker("own_app") is None
    app = apps.get(app_settings(database_uri, **config_overrides), reuse=reuse)
    settings, extensions = copy.deepcopy(dict(app.config)), dict(app.extensions)
    app.config["SMS_OUTBOX_PATH"] = str(outbox_path)
    ratelimits.init_app(app)  # fresh counters, as a new process would have
    with app.app_context():
        cache.clear()
    yield app
    app.config.clear()
    app.config.update(settings)
    app.extensions.clear()
    app.extensions.update(extensions)
    with app.app_context():
        db.session.remove()
        try:
            # Whatever the test did, the state stored beside the consent ledger is its fold.
            assert stored_states() == folded_states(), "consent_states: not the ledger's fold"
        finally:
            db.session.remove()
            empty_register()
        if not reuse:
            db.engine.dispose()


def empty_register() -> None:
    """Remove every row between tests; the append-only audit log needs the owner's way."""
    tables = list(reversed(db.metadata.sorted_tables))
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # The ledgers' triggers refuse rewriting them: their owner switches them off
            # and on again inside this one transaction. DELETE rather than TRUNCATE: on a
            # test's few rows it takes a few milliseconds instead of thirty.
            for ledger in LEDGERS:
                connection.execute(text(f"ALTER TABLE {ledger} DISABLE TRIGGER USER"))
            for table in tables:
                connection.execute(table.delete())
            for ledger in LEDGERS:
                connection.execute(text(f"ALTER TABLE {ledger} ENABLE TRIGGER USER"))
            # Ids start at 1 again in every test, as TRUNCATE ... RESTART IDENTITY did.
            for sequence in connection.scalars(text(USED_SEQUENCES)).all():
                connection.execute(text(f"ALTER SEQUENCE {sequence} RESTART"))
            return
        connection.execute(text("DROP TRIGGER audit_entries_no_delete"))
        for table in tables:
            connection.execute(table.delete())
        connection.execute(text(SQLITE_AUDIT_NO_DELETE))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path) -> Iterator[str]:
    """The address of an empty database: a SQLite file, or (when DATABASE_URL names a
    PostgreSQL server) a database made for the test and dropped after it."""
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "register.sqlite3")
        return
    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith("postgres"):
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    url = make_url(database_url(server, ""))
    name = f"viihde_migration_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture
def needs_postgresql(database_uri) -> None:
    """Skip the test on SQLite: it is about PostgreSQL's triggers or roles."""
    if not database_uri.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def app_context(app):
    with app.app_context():
        yield


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def outbox(outbox_path) -> Outbox:
    return Outbox(outbox_path)


@pytest.fixture
def visitor(client, outbox) -> Visitor:
    return Visitor(client, outbox)
