"""How the tests act on the app as people do: a visitor's browser walking the sign-up, a
staff member signing in, a code asked for on the data page, the operator's CSV commands,
the SMS outbox read as a phone would, and requests that race each other."""

from __future__ import annotations

import html
import json
import re
import socket
import threading
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

import pyotp
from sqlalchemy import event, select, update

from viihde import create_app
from viihde.extensions import db
from viihde.models import ConsentEvent, ConsentState, Holding

from .settings import SECRET_KEY

#: A Finnish number in clear, international or national: never in a log line or an output.
PERSONAL_NUMBER = re.compile(r"\+?358\d{6,}|(?<!\d)0[45]\d{7,9}(?!\d)")
#: Random identifiers a library logs (an RQ worker's name is a uuid4's 32 hex digits, a
#: Twilio SID two letters and 32, a hash 64): their digits can run like a number by chance
#: ("…ae056285124c05b9" failed a CI run), so they are taken out before a line is searched.
RANDOM_IDENTIFIER = re.compile(
    r"(?<![0-9A-Za-z])(?:[A-Z]{2}[0-9a-f]{32}|[0-9a-f]{32,}|[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})"
    r"(?![0-9A-Za-z])"
)


def number_in_clear(text: str) -> bool:
    """Whether ``text`` shows a Finnish number in clear, outside a random identifier."""
    return PERSONAL_NUMBER.search(RANDOM_IDENTIFIER.sub("", text)) is not None


#: The digits 0-9 as a phone's keyboard may type them in other scripts.
OTHER_DIGITS = {"fullwidth": "０１２３４５６７８９", "arabic_indic": "٠١٢٣٤٥٦٧٨٩"}

ENGLISH = {"Accept-Language": "en"}

#: A preference token of the links every SMS carries, and its signature (the part a log
#: line must never show).
TOKEN = "AQ.I08kXpW0UpfC7tTT"
SIGNATURE = "I08kXpW0UpfC7tTT"
#: How a preference link reaches a request line: alone, copied along with the text
#: around it, or with characters percent-encoded (werkzeug decodes them before routing;
#: gunicorn and nginx log them raw).
WRITTEN = {
    "alone": f"/{TOKEN}",
    "with a query": f"/{TOKEN}?utm_source=sms",
    "before a full stop": f"/{TOKEN}.",
    "before a bracket": f"/{TOKEN})",
    "before a comma": f"/{TOKEN},",
    "before a slash": f"/{TOKEN}/",
    "before an encoded space": f"/{TOKEN}%20",
    "with an encoded dot": "/AQ%2EI08kXpW0UpfC7tTT",
    "with an encoded dot in lower case": "/AQ%2eI08kXpW0UpfC7tTT",
    "encoded throughout": "/" + "".join(f"%{ord(c):02X}" for c in TOKEN),
    "in the query": f"/?next={TOKEN}",
}


def typed_in(script: str, digits: str) -> str:
    """``digits`` as typed in another script's digits (see ``OTHER_DIGITS``)."""
    return digits.translate(str.maketrans("0123456789", OTHER_DIGITS[script]))


def csrf_token(page: str) -> str:
    """The CSRF token of the first form on a page."""
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields a form on a page carries: its CSRF token and, on a page reached
    by link, the subscriber it was shown for."""
    fields = {"csrf_token": csrf_token(page)}
    shown_for = re.search(r'name="subscriber" type="hidden" value="(\d+)"', page)
    if shown_for:
        fields["subscriber"] = shown_for.group(1)
    return fields


class Outbox:
    """The SMS the file backend wrote, as the tests see them."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

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


class Visitor:
    """A browser walking the sign-up: each step is one request, as a person makes it."""

    def __init__(self, client, outbox: Outbox) -> None:
        self.client = client
        self.outbox = outbox

    def submit_number(self, number: str, consent: bool = True, landing: str = "/", **extra):
        page = self.client.get(landing)  # no token on it: the POST is checked by its origin
        data = {"phone": number, **extra}
        if consent:
            data["consent"] = "y"
        for field in ("utm_source", "utm_medium", "utm_campaign", "click_id"):
            match = re.search(rf'name="{field}" type="hidden" value="([^"]*)"', page.text)
            if match and field not in extra:
                data[field] = html.unescape(match.group(1))
        return self.client.post("/", data=data)

    def submit_code(self, code: str):
        page = self.client.get("/code")
        return self.client.post("/code", data={**form_fields(page.text), "code": code})

    def resend(self):
        page = self.client.get("/code")
        return self.client.post("/code/resend", data={**form_fields(page.text)})

    def sign_up(self, number: str = "040 123 4567", landing: str = "/"):
        self.submit_number(number, landing=landing)
        return self.submit_code(self.outbox.last_code())


def step_up(browser, outbox: Outbox):
    """Ask for a code on the verify page and type it in, as the data page asks."""
    page = browser.get("/preferences/verify?next=data")
    browser.post("/preferences/verify/send?next=data", data={**form_fields(page.text)})
    code = outbox.last_code()
    page = browser.get("/preferences/verify?next=data")
    return browser.post(
        "/preferences/verify?next=data", data={**form_fields(page.text), "code": code}
    )


def sign_in(client, email: str, password: str, totp_secret: str | None = None):
    """Password, then (with a secret) the current TOTP code if asked; the last response."""
    page = client.get("/staff/login")
    response = client.post(
        "/staff/login",
        data={**form_fields(page.text), "email": email, "password": password},
        headers=ENGLISH,
    )
    location = response.headers.get("Location", "")
    if totp_secret and response.status_code == 302 and location.endswith("totp"):
        response = enter_totp(client, pyotp.TOTP(totp_secret).now())
    return response


def enter_totp(client, code: str):
    page = client.get("/staff/login/totp")
    return client.post(
        "/staff/login/totp",
        data={**form_fields(page.text), "code": code},
        headers=ENGLISH,
    )


def run_csv_command(runner, path: Path, command: str, header: str, body: str, *options: str):
    """Run ``flask register <command>`` on a CSV file of ``body`` under ``header``; its
    output never names a number in clear."""
    path.write_text(f"{header}\n{body}", encoding="utf-8")
    result = runner.invoke(args=["register", command, str(path), *options])
    assert not number_in_clear(result.output), "a number in clear in the output"
    return result


def sync_holders(runner, tmp_path: Path, body: str, *options: str, header="number,changed_on"):
    """``flask register sync-holders`` on the operator's lines of numbers that changed hands."""
    path = tmp_path / "holders.csv"
    return run_csv_command(runner, path, "sync-holders", header, body, *options)


def import_customers(
    runner, tmp_path: Path, body: str, *options: str, header="number,purchased_on"
):
    """``flask register import-customers`` on the customer register's purchase lines."""
    path = tmp_path / "customers.csv"
    return run_csv_command(runner, path, "import-customers", header, body, *options)


def slow_code_sending(monkeypatch, seconds: float = 0.3) -> None:
    """Each code takes ``seconds`` to go out, as on a busy server: requests arriving
    together are all in their views before any of them has finished."""
    import time

    from viihde.web.signup import routes

    send = routes.commit_and_send_code
    monkeypatch.setattr(
        routes, "commit_and_send_code", lambda *a, **k: time.sleep(seconds) or send(*a, **k)
    )


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


def stored_states() -> set[tuple]:
    """Every row of the consent state stored beside the ledger."""
    return set(
        db.session.execute(
            select(
                ConsentState.holding_id,
                ConsentState.purpose,
                ConsentState.granted,
                ConsentState.event_id,
                ConsentState.basis,
                ConsentState.consent_text_version,
                ConsentState.changed_at,
            )
        ).all()
    )


def folded_states() -> set[tuple]:
    """The same, folded from the whole ledger here: each holding's last event per purpose."""
    last = {}
    for each in db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)):
        last[each.holding_id, each.purpose] = each
    return {
        (
            holding,
            purpose,
            event.action == "grant",
            event.id,
            event.basis,
            event.consent_text_version,
            event.created_at,
        )
        for (holding, purpose), event in last.items()
    }


def drop_server_connections(url) -> None:
    """Have PostgreSQL end every other connection to this database (a restart, an idle
    timeout, as the pool would meet them), and wait until they are gone."""
    import time

    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    outside = create_engine(url, poolclass=NullPool)  # not one of the app's pooled ones
    others = " FROM pg_stat_activity WHERE datname = current_database()"
    others += " AND pid <> pg_backend_pid()"
    with outside.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
        admin.execute(text("SELECT pg_terminate_backend(pid)" + others))
        for _ in range(100):  # until the server has closed them (it signals, then they go)
            if not admin.execute(text("SELECT 1" + others)).first():
                break
            time.sleep(0.02)
    outside.dispose()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_on(uri: str, **config):
    """An app on another register than the suite's (a file of a test's own, say), without
    Redis."""
    return create_app(
        {
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": uri,
            "REDIS_URL": None,
            **config,
        }
    )


@contextmanager
def driver_statements(engine):
    """Every statement the driver runs meanwhile, as the database gets it: SQLite's own
    trace (BEGIN and COMMIT included), or each psycopg cursor's execute."""
    sent: list[str] = []
    if engine.dialect.name == "sqlite":

        def traced(dbapi_connection, record, proxy) -> None:
            dbapi_connection.set_trace_callback(sent.append)

        def untraced(dbapi_connection, record) -> None:
            dbapi_connection.set_trace_callback(None)

        event.listen(engine, "checkout", traced)
        event.listen(engine, "checkin", untraced)
        try:
            yield sent
        finally:
            event.remove(engine, "checkout", traced)
            event.remove(engine, "checkin", untraced)
        return
    import psycopg

    execute = psycopg.Cursor.execute

    def recorded(self, query, *args, **kwargs):
        sent.append(str(query))
        return execute(self, query, *args, **kwargs)

    with mock.patch.object(psycopg.Cursor, "execute", recorded):
        yield sent


@contextmanager
def server_round_trips(engine):
    """What psycopg sends PostgreSQL meanwhile: statements, and a ROLLBACK or COMMIT only
    when a transaction is open (psycopg sends nothing for them on an idle connection, nor
    for switching autocommit)."""
    sent: list[str] = []
    if engine.dialect.name != "postgresql":
        yield sent
        return
    import psycopg
    from psycopg.pq import TransactionStatus

    wait = psycopg.Connection.wait

    def counted(self, gen, *args, **kwargs):
        name = getattr(gen, "__qualname__", repr(gen))
        idle = self.info.transaction_status == TransactionStatus.IDLE
        if name.endswith("_execute_gen") or (
            not idle and name.endswith(("_rollback_gen", "_commit_gen"))
        ):
            sent.append(name)
        return wait(self, gen, *args, **kwargs)

    with mock.patch.object(psycopg.Connection, "wait", counted):
        yield sent


def one_read_outside_a_transaction(app, fetch: Callable, table: str):
    """``fetch()``'s answer, having checked that it ran one statement (reading ``table``)
    with no BEGIN or ROLLBACK around it, one round trip in all on PostgreSQL (the pool
    lends without a ping). Counted at the driver: such a read runs on the driver's cursor,
    past Core's execution layer and its events."""
    with app.app_context():
        engine = db.engine
    with (
        driver_statements(engine) as statements,
        server_round_trips(engine) as round_trips,
        transactions_begun(engine) as transactions,
    ):
        response = fetch()
    assert len(statements) == 1 and table in statements[0]
    assert transactions == []
    if engine.dialect.name == "postgresql":
        assert round_trips == ["BaseCursor._execute_gen"]
    return response


@contextmanager
def transactions_begun(engine):
    """Each transaction the engine begins meanwhile (SQLAlchemy's "begin" event)."""
    begun: list[str] = []

    def began(connection) -> None:
        begun.append("begin")

    event.listen(engine, "begin", began)
    try:
        yield begun
    finally:
        event.remove(engine, "begin", began)


@contextmanager
def stored_state_only(app, subscriber_id: int, purpose: str, granted: bool):
    """The stored state of ``purpose`` in the subscriber's open holding set to ``granted``
    by SQL, the ledger left as it is; put back afterwards (when a test ends the state
    must be the ledger's fold again: conftest.py)."""
    holding = select(Holding.id).where(
        Holding.subscriber_id == subscriber_id, Holding.ended_at.is_(None)
    )
    row = (ConsentState.purpose == purpose) & ConsentState.holding_id.in_(holding)
    with app.app_context():
        was = db.session.scalar(select(ConsentState.granted).where(row))
        db.session.execute(update(ConsentState).where(row).values(granted=granted))
        db.session.commit()
    try:
        yield
    finally:
        with app.app_context():
            db.session.execute(update(ConsentState).where(row).values(granted=was))
            db.session.commit()
