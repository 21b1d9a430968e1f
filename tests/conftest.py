"""Fixtures: an app on a migrated register (SQLite, or PostgreSQL when DATABASE_URL is
set), a clean register per test, the SMS outbox, and helpers to walk the sign-up."""

from __future__ import annotations

import html
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from viihde import create_app
from viihde.config import database_url
from viihde.extensions import db

PUBLIC_BASE_URL = "https://viihdepaketti.fi"
SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _database_uri(tmp_path_factory) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return database_url(url, "")
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "register.sqlite3")


@pytest.fixture(scope="session")
def database_uri(tmp_path_factory) -> str:
    """A register built by the migrations, once per run; tests empty it after use."""
    uri = _database_uri(tmp_path_factory)
    app = create_app({"APP_ENV": "testing", "SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": uri})
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        upgrade()
        db.engine.dispose()
    return uri


#: A Finnish number in clear, international or national: never in a log line.
PERSONAL_NUMBER = re.compile(r"\+?358\d{6,}|(?<!\d)0[45]\d{7,9}(?!\d)")


@pytest.fixture(autouse=True)
def no_personal_data_in_logs(caplog):
    """Every test: no log record (any level, any logger) carries a phone number in clear."""
    caplog.set_level(logging.DEBUG)
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    leaks = [r.getMessage() for r in records if PERSONAL_NUMBER.search(r.getMessage())]
    assert leaks == [], "personal data in logs"


@pytest.fixture
def outbox_path(tmp_path) -> Path:
    return tmp_path / "outbox.jsonl"


@pytest.fixture
def config_overrides() -> dict:
    """Override in a test module (or with indirect parametrisation) to change settings."""
    return {}


@pytest.fixture
def app(database_uri, outbox_path, config_overrides):
    app = create_app(
        {
            "APP_ENV": "testing",
            "TESTING": True,
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": database_uri,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "SMS_BACKEND": "file",
            "SMS_OUTBOX_PATH": str(outbox_path),
            # Messages go out inline; the queue tests turn Redis on themselves.
            "REDIS_URL": None,
            **config_overrides,
        }
    )
    yield app
    with app.app_context():
        db.session.remove()
        empty_register()
        db.engine.dispose()


SQLITE_AUDIT_NO_DELETE = (
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END"
)


#: The append-only tables: their triggers refuse rewriting them, TRUNCATE included.
LEDGERS = ("audit_entries", "consent_events")


def empty_register() -> None:
    """Remove every row between tests; the append-only audit log needs the owner's way."""
    tables = list(reversed(db.metadata.sorted_tables))
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # The ledgers refuse TRUNCATE (migration 0010): their owner switches the
            # triggers off and on again inside this one transaction.
            for ledger in LEDGERS:
                connection.execute(text(f"ALTER TABLE {ledger} DISABLE TRIGGER USER"))
            names = ", ".join(table.name for table in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            for ledger in LEDGERS:
                connection.execute(text(f"ALTER TABLE {ledger} ENABLE TRIGGER USER"))
            return
        connection.execute(text("DROP TRIGGER audit_entries_no_delete"))
        for table in tables:
            connection.execute(table.delete())
        connection.execute(text(SQLITE_AUDIT_NO_DELETE))


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


class Outbox:
    """The SMS the file backend wrote, as the tests see them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def messages(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]

    def last(self) -> dict:
        return self.messages()[-1]

    def last_code(self) -> str:
        return re.search(r"#(\d+)$", self.last()["body"]).group(1)

    def last_link(self) -> str:
        return re.search(r"https://\S+", self.last()["body"]).group(0)


@pytest.fixture
def outbox(outbox_path) -> Outbox:
    return Outbox(outbox_path)


def race(*calls: Callable[[], object], app=None) -> list[object]:
    """Run the calls in threads released together by a barrier; return their results.

    With ``app``, each thread works in its own app context (its own session and
    database connection) and commits at the end, as concurrent requests do.
    """
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], object]) -> None:
        context = app.app_context() if app is not None else nullcontext()
        with context:
            barrier.wait()
            try:
                results[index] = call()
                if app is not None:
                    db.session.commit()  # a request ends with its commit
            except BaseException as error:  # surfaced below, in the test's thread
                errors.append(error)
            finally:
                if app is not None:
                    db.session.remove()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


#: The digits 0-9 as a phone's keyboard may type them in other scripts.
OTHER_DIGITS = {"fullwidth": "０１２３４５６７８９", "arabic_indic": "٠١٢٣٤٥٦٧٨٩"}


def typed_in(script: str, digits: str) -> str:
    """``digits`` as typed in another script's digits (see ``OTHER_DIGITS``)."""
    return digits.translate(str.maketrans("0123456789", OTHER_DIGITS[script]))


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


class Visitor:
    """A browser walking the sign-up: each step is one request, as a person makes it."""

    def __init__(self, client, outbox: Outbox) -> None:
        self.client = client
        self.outbox = outbox

    def submit_number(self, number: str, consent: bool = True, landing: str = "/", **extra):
        page = self.client.get(landing)
        data = {"csrf_token": csrf_token(page.text), "phone": number, **extra}
        if consent:
            data["consent"] = "y"
        for field in ("utm_source", "utm_medium", "utm_campaign", "click_id"):
            match = re.search(rf'name="{field}" type="hidden" value="([^"]*)"', page.text)
            if match and field not in extra:
                data[field] = html.unescape(match.group(1))
        return self.client.post("/", data=data)

    def submit_code(self, code: str):
        page = self.client.get("/code")
        return self.client.post("/code", data={"csrf_token": csrf_token(page.text), "code": code})

    def resend(self):
        page = self.client.get("/code")
        return self.client.post("/code/resend", data={"csrf_token": csrf_token(page.text)})

    def sign_up(self, number: str = "040 123 4567", landing: str = "/"):
        self.submit_number(number, landing=landing)
        return self.submit_code(self.outbox.last_code())


@pytest.fixture
def visitor(client, outbox) -> Visitor:
    return Visitor(client, outbox)
