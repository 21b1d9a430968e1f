"""The two sign-up writes, in as few round trips as they can be: one transaction each,
the SMS queued only after it, and nothing read back that the write itself just wrote."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session

from viihde import phone
from viihde.extensions import db
from viihde.models import ConsentEvent, SmsMessage, Subscriber, Verification
from viihde.models.statements import run
from viihde.register import budget
from viihde.register.codes import CodeRefused, Refusal, SignupDetails, after_sending, request_code
from viihde.register.confirmation import Outcome, confirm_code
from viihde.sms import commit_then_send, log_sms
from viihde.sms import queue as sms_queue
from viihde.web import request as web_request
from viihde.web import throttle
from viihde.web.signup import forms as signup_forms

from . import factories
from .helpers import form_fields

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PHONE = "+358401234567"


@dataclass
class Record:
    """The SQL one piece of work sent, each statement with the commits made before it."""

    commits: int = 0
    #: The ORM's unit of work flushed while recording (the hot writes: never).
    flushes: int = 0
    statements: list[tuple[int, str]] = field(default_factory=list)
    #: Every round trip to the database, in order: BEGIN, each statement, COMMIT (psycopg
    #: sends BEGIN on its own, before a transaction's first statement; SQLite's BEGIN
    #: IMMEDIATE is a statement of the app's).
    trips: list[str] = field(default_factory=list)
    #: Each statement as the driver got it, with its parameters.
    executed: list[tuple[str, object]] = field(default_factory=list)
    dialect: str = ""

    def kinds(self) -> list[str]:
        """Each round trip by its first word (and table, for a write), e.g. INSERT sms_messages.
        SQLite's INSERT ... RETURNING of several rows is one statement a row (SQLAlchemy
        cannot batch them with their order kept there): counted once, as on PostgreSQL."""
        named = []
        for trip in self.trips:
            words = trip.split()
            table = {"INSERT": 2, "UPDATE": 1}.get(words[0])
            kind = f"{words[0]} {words[table]}" if table else words[0]
            if kind == "WITH":  # a statement that writes in its WITH: INSERT a, b
                written = re.findall(r"\bINSERT INTO (\w+)", trip)
                kind = "INSERT " + ", ".join(written) if written else kind
            repeated = kind.startswith("INSERT") and named and named[-1] == kind
            if not (repeated and self.dialect == "sqlite"):
                named.append(kind)
        return named

    def after_commit(self, commits: int = 1) -> list[str]:
        return [sql for made, sql in self.statements if made >= commits]

    def selects(self, containing: str = "") -> list[str]:
        return [sql for _, sql in self.statements if sql.startswith("SELECT") and containing in sql]


@contextmanager
def recording(app):
    """Record every statement and commit on the app's engine while the block runs."""
    with app.app_context():
        engine = db.engine
    record = Record(dialect=engine.dialect.name)

    def on_statement(conn, cursor, statement, parameters, context, executemany) -> None:
        record.statements.append((record.commits, " ".join(statement.split())))
        record.trips.append(" ".join(statement.split()))
        record.executed.append((statement, parameters))

    def on_begin(conn) -> None:
        if conn.dialect.name == "postgresql":
            record.trips.append("BEGIN")

    def on_commit(conn) -> None:
        record.commits += 1
        record.trips.append("COMMIT")

    def on_flush(session, context, instances) -> None:
        record.flushes += 1

    listeners = {"before_cursor_execute": on_statement, "begin": on_begin, "commit": on_commit}
    for name, listener in listeners.items():
        event.listen(engine, name, listener)
    event.listen(Session, "before_flush", on_flush)
    try:
        yield record
    finally:
        for name, listener in listeners.items():
            event.remove(engine, name, listener)
        event.remove(Session, "before_flush", on_flush)


class FakeQueue:
    """Stands in for RQ: keeps each job, with what another connection (as a worker's) saw
    of its message row at that moment and whether the request still had a transaction open."""

    def __init__(self, worker_engine) -> None:
        self.worker_engine = worker_engine
        self.jobs: list[dict] = []
        # RQ writes a job into the pipeline it is given; the caller executes it.
        self.connection = SimpleNamespace(pipeline=lambda: SimpleNamespace(execute=list))

    def enqueue_call(self, func, args, **options) -> None:
        message_id, body = args
        with self.worker_engine.connect() as other:
            status = other.scalar(select(SmsMessage.status).where(SmsMessage.id == message_id))
        self.jobs.append(
            {
                "message_id": message_id,
                "body": body,
                "status_seen_by_others": status,
                "in_transaction": db.session().in_transaction(),
            }
        )


@pytest.fixture
def fake_queue(app):
    worker_engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])  # not recorded
    queue = FakeQueue(worker_engine)
    app.extensions[sms_queue.EXTENSION] = queue
    yield queue
    worker_engine.dispose()


def landing_form(client, number: str) -> dict:
    client.get("/")
    return {"phone": number, "consent": "y"}


def write_all(browser, number: str, fake_queue) -> None:
    """The three hot writes by one browser: submit ``number``, confirm its code, stop all."""
    assert browser.post("/", data=landing_form(browser, number)).status_code == 302
    code = re.search(r"#(\d+)$", fake_queue.jobs[-1]["body"]).group(1)
    page = browser.get("/code")
    data = {**form_fields(page.text), "code": code}
    assert browser.post("/code", data=data).status_code == 302
    page = browser.get("/preferences")
    data = {**form_fields(page.text), "stop_all": "x"}
    assert browser.post("/preferences", data=data).status_code == 302


def test_submitting_a_number_is_one_transaction_then_the_job(app, client, fake_queue):
    """The code and its SMS row commit together; the job is queued after the commit, and
    nothing is read back from the database after it."""
    data = landing_form(client, "040 123 4567")
    with recording(app) as record:
        response = client.post("/", data=data)
    assert response.status_code == 302
    assert record.commits == 1
    assert record.after_commit() == []
    [job] = fake_queue.jobs
    assert job["status_seen_by_others"] == "queued"
    assert job["in_transaction"] is False
    with app.app_context():
        verification = db.session.scalar(select(Verification))
        message = db.session.get(SmsMessage, verification.sms_message_id)
        assert (message.id, message.kind, message.phone_e164) == (job["message_id"], "code", PHONE)
        code = re.search(r"#(\d+)$", job["body"]).group(1)
        assert code not in message.body  # the code travels only in the job


def test_confirming_a_code_writes_the_welcome_sms_in_the_sign_ups_transaction(
    app, client, fake_queue
):
    """The subscriber, the grants and the welcome SMS row commit together; the job is
    queued after the commit, and nothing is read back from the database after it."""
    client.post("/", data=landing_form(client, "040 123 4567"))
    code = re.search(r"#(\d+)$", fake_queue.jobs[0]["body"]).group(1)
    page = client.get("/code")
    with recording(app) as record:
        response = client.post("/code", data={**form_fields(page.text), "code": code})
    assert response.status_code == 302
    assert response.location.endswith("/welcome")
    assert record.commits == 1
    assert record.after_commit() == []
    job = fake_queue.jobs[-1]
    assert job["status_seen_by_others"] == "queued"
    assert job["in_transaction"] is False
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber))
        welcome = db.session.get(SmsMessage, job["message_id"])
        assert (welcome.kind, welcome.subscriber_id) == ("welcome", subscriber.id)
        assert client.get("/welcome").status_code == 200  # the browser holds the link


def test_a_welcome_sms_that_cannot_be_logged_leaves_no_half_sign_up(
    app_context, outbox, monkeypatch
):
    """One transaction: if the welcome SMS row cannot be written, no subscriber, no grant,
    and the code is not used up."""
    monkeypatch.setattr("viihde.register.codes.generate_code", lambda: "042424")
    verification_id = request_code(PHONE, SignupDetails(), NOW).id
    commit_then_send(NOW)

    def broken(*args, **kwargs):
        raise RuntimeError("the SMS log is full")

    monkeypatch.setattr("viihde.register.confirmation.stage", broken)
    with pytest.raises(RuntimeError):
        confirm_code(verification_id, "042424", NOW)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 0
    assert db.session.get(Verification, verification_id).consumed_at is None
    assert len(outbox.messages()) == 1  # the code; no welcome


def test_a_failed_inline_send_keeps_the_failed_sms_and_no_code(app_context, monkeypatch):
    """Sent inline and refused: the SMS row says failed, the code is gone (it must not
    count against the next try), and the visitor is told."""
    from viihde.sms import backends

    def broken(self, message):
        raise backends.SendFailed("down", "503")

    monkeypatch.setattr(backends.FileBackend, "send", broken)
    verification = request_code(PHONE, SignupDetails(), NOW)
    message_id = verification.sms_message_id
    statuses = commit_then_send(NOW)
    with pytest.raises(CodeRefused) as refused:
        after_sending(verification, statuses[message_id])
    db.session.commit()
    assert refused.value.reason == Refusal.SEND_FAILED
    assert db.session.scalar(select(func.count()).select_from(Verification)) == 0
    assert [m.status for m in db.session.scalars(select(SmsMessage))] == ["failed"]


def test_submitting_reads_the_numbers_codes_once(app, app_context, fake_queue):
    """The guessing pause and the resend limits are counted in one query."""
    with recording(app) as record:
        request_code(PHONE, SignupDetails(), NOW)
        commit_then_send(NOW)
    assert len(record.selects("WHERE v.phone_e164 = ")) == 1
    assert record.commits == 1


def test_a_try_is_taken_and_read_in_one_statement(app, app_context, outbox, monkeypatch):
    """UPDATE ... RETURNING: the verification is not read again after its try is taken."""
    monkeypatch.setattr("viihde.register.codes.generate_code", lambda: "042424")
    verification_id = request_code(PHONE, SignupDetails(), NOW).id
    commit_then_send(NOW)
    db.session.get(Verification, verification_id)  # loaded, as the code page has it
    with recording(app) as record:
        result = confirm_code(verification_id, "000000", NOW)
        commit_then_send(NOW)
    assert (result.outcome, result.attempts_left) == (Outcome.WRONG, 4)
    statements = [sql for _, sql in record.statements]
    [update] = [sql for sql in statements if sql.startswith("UPDATE verifications")]
    assert "RETURNING" in update
    after = statements[statements.index(update) + 1 :]
    assert not any(" FROM verifications" in sql for sql in after)
    assert db.session.get(Verification, verification_id).attempts == 1


def test_the_budget_and_the_sign_up_breaker_count_in_one_query_each(app, app_context):
    """The hour's and day's SMS: one query; a sign-up's networks and range: one more."""
    app.config.update(
        CONFIRMATION_RATE_MIN_SAMPLE=3, CONFIRMATION_RATE_FLOOR=0.5, SMS_HOURLY_LIMIT=3
    )
    for n in range(3):
        log_sms(f"+35840123450{n}", "code", "code", NOW)
        network, wide = budget.origin_of("192.0.2.1")
        db.session.add(
            Verification(phone_e164=f"+35850123450{n}", kind="signup", code_hash="x",
                         language="fi", purposes="offers", attempts=0, created_at=NOW,
                         expires_at=NOW, network=network, wide_network=wide,
                         privacy_notice_version="1", consent_text_version="1")
        )  # fmt: skip
    db.session.commit()
    with recording(app) as record:
        pause = budget.sms_pause(NOW)
    assert pause.reason == budget.PauseReason.HOURLY_BUDGET
    assert len(record.selects()) == 1
    with recording(app) as record:
        holdback = budget.signup_holdback("192.0.2.77", "+358441234567", NOW)
    assert holdback.scope == budget.Scope.NETWORK
    assert len(record.selects()) == 1


@pytest.mark.usefixtures("needs_postgresql")
@pytest.mark.parametrize("config_overrides", [{"CONFIRMATION_RATE_SAMPLE": 50}])
def test_the_sign_up_breaker_reads_only_each_scopes_latest_codes(app, app_context):
    """A busy network (3,000 sign-up codes in the hour from one /24, all to one number
    range): the breaker's check reads each scope's latest codes off its index, newest
    first, at most CONFIRMATION_RATE_SAMPLE of them (it read all 3,000 three times over
    before), also once PostgreSQL plans it generically."""
    db.session.execute(
        text(
            "INSERT INTO verifications (phone_e164, kind, code_hash, language, purposes,"
            " attempts, created_at, expires_at, network, wide_network, number_range,"
            " privacy_notice_version, consent_text_version)"
            " SELECT '+35840123' || lpad(i::text, 4, '0'), 'signup', 'h', 'fi', 'offers', 0,"
            " :now - i * interval '1 second', :now, '192.0.2.0/24', '192.0.0.0/16', '+3584012',"
            " 'v', 'v' FROM generate_series(1, 3000) AS i"
        ),
        {"now": NOW},
    )
    db.session.commit()
    db.session.execute(text("ANALYZE verifications"))
    counts = budget.HoldbackCounts("192.0.2.7", "+358401239999", NOW)
    with recording(app) as record:
        row = run(counts.query, counts.parameters).one()
    assert row[0::3] == (50, 50, 50)  # each scope's sample, all unconfirmed
    ((sql, values),) = record.executed
    assert _rows_read(_generic_plan(sql, values)) <= 3 * 50, sql


def _generic_plan(sql: str, values: dict) -> dict:
    """The plan PostgreSQL runs ``sql`` (as psycopg sent it) by once it prepares it and
    plans it for any parameters, run with ``values`` (EXPLAIN ANALYZE)."""
    connection = db.session.connection()
    connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    names = _PARAMETER.findall(sql)
    types = [_TYPES.get(type(values[name]), "text") for name in names]
    connection.exec_driver_sql(f"PREPARE measured({', '.join(types)}) AS {_numbered(sql)}")
    from psycopg import sql as psycopg_sql  # EXECUTE's arguments as literals: a utility
    # statement takes no bound parameters

    arguments = psycopg_sql.SQL(", ").join(psycopg_sql.Literal(values[name]) for name in names)
    explain = psycopg_sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE measured({})").format(
        arguments
    )
    driver = connection.connection.driver_connection
    (plan,) = connection.exec_driver_sql(explain.as_string(driver)).one()
    connection.exec_driver_sql("DEALLOCATE measured")
    return plan[0]["Plan"]


_TYPES = {datetime: "timestamptz", int: "integer"}
_PARAMETER = re.compile(r"%\((\w+)\)s")


def _numbered(sql: str) -> str:
    """psycopg's named placeholders as PREPARE's $1, $2, ... (in order of appearance)."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    return _PARAMETER.sub(number, sql)


def _rows_read(node: dict) -> int:
    """The rows a plan's scans produced or threw away, all of them."""
    own = 0
    if "Scan" in node["Node Type"]:
        own = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        own += node.get("Rows Removed by Index Recheck", 0)
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


def test_the_number_is_parsed_once_per_request(app, client, monkeypatch):
    """Every SMS limit asks for the number, before the view and after it, and the form in
    the view: parsed once, whether it parses or not (it was twice: the limits', the
    form's)."""
    calls = []
    real = phone.parse_mobile

    def counting(*args):
        calls.append(args)
        return real(*args)

    for module in (phone, web_request, throttle, signup_forms):
        if hasattr(module, "parse_mobile"):
            monkeypatch.setattr(module, "parse_mobile", counting)
    assert client.post("/", data=landing_form(client, "040 123 4567")).status_code == 302
    assert len(calls) == 1
    calls.clear()
    assert client.post("/", data=landing_form(client, "12")).status_code == 400
    assert len(calls) == 1


@pytest.mark.parametrize(
    "config_overrides", [{"SMS_LIMIT_PER_NUMBER": "1 per hour", "WTF_CSRF_ENABLED": False}]
)
def test_requests_sharing_an_app_context_each_count_their_own_number(app, outbox):
    """The number kept for a request is that request's, even when requests share ``g``
    (requests made inside one app context do; CSRF is off here, as its token is kept on
    ``g`` too)."""

    def submit(number: str) -> int:
        return app.test_client().post("/", data={"phone": number, "consent": "y"}).status_code

    with app.app_context():
        assert submit("040 123 4567") == 302
        assert submit("040 765 4321") == 302
        assert submit("040 123 4567") == 429
    assert len(outbox.messages()) == 2


def test_unsubscribing_reads_twice_and_commits_once(app, visitor, outbox):
    """Stop all from the preference page: the link's check reads the subscriber under its
    lock (a POST: the change takes no second look), then the open holding, the events its
    stored state rests on and the ledger's last place in ONE select (it was three: the
    fold, the holding, the last place); then the withdrawals and the state, one commit."""
    visitor.sign_up("040 123 4567")
    page = visitor.client.get("/preferences")
    data = {**form_fields(page.text), "stop_all": "x"}
    with recording(app) as record:
        response = visitor.client.post("/preferences", data=data)
    assert response.status_code == 302
    assert record.commits == 1 and record.after_commit() == []
    assert len(record.selects()) == 2, record.selects()
    (combined,) = record.selects("consent_states")
    assert "max(consent_events.seq)" in combined and "FROM holdings" in combined
    assert len([sql for _, sql in record.statements if "INTO consent_states" in sql]) == 1


LOCK = {"postgresql": ["SELECT"], "sqlite": []}  # the number's advisory lock (PostgreSQL)
#: The ledger's new events and the state they make: one statement on PostgreSQL.
LEDGER = {
    "postgresql": ["INSERT consent_events, consent_states"],
    "sqlite": ["INSERT consent_events", "INSERT consent_states"],
}
BEGIN = {"postgresql": ["BEGIN"], "sqlite": ["BEGIN"]}  # psycopg's, or BEGIN IMMEDIATE


def test_each_write_in_its_round_trips(app, visitor, fake_queue):
    """Every round trip of the three hot writes, in order (decision 6 of issue 18; they
    were 8, 19 and 7): submitting a number is the lock, ONE select of every limit (the
    SMS budget, the sign-up breaker, the number's codes), the SMS row and the code;
    confirming a new number's code writes the subscriber, its holding, the grants and their
    state without reading any of them first; unsubscribing is the link's check under the
    lock, one read, the withdrawals and their state. Each row is written by a Core
    statement, not the ORM's unit of work: none of them flushes."""
    with app.app_context():
        dialect = db.engine.dialect.name
    client = visitor.client
    data = landing_form(client, "040 123 4567")
    with recording(app) as submit:
        assert client.post("/", data=data).status_code == 302
    assert submit.kinds() == [

        *BEGIN[dialect], *LOCK[dialect], "SELECT", "INSERT sms_messages",
        "INSERT verifications", "COMMIT",
    ]  # fmt: skip
    (checks,) = [trip for trip in submit.trips if "FROM sms_budget_counts" in trip]
    assert "FROM verifications" in checks and "network" in checks  # all three in one

    code = re.search(r"#(\d+)$", fake_queue.jobs[0]["body"]).group(1)
    page = client.get("/code")
    with recording(app) as confirm:
        data = {**form_fields(page.text), "code": code}
        assert client.post("/code", data=data).status_code == 302
    assert confirm.kinds() == [
        *BEGIN[dialect], "SELECT", *LOCK[dialect], "SELECT",  # the code; the number's codes
        "UPDATE verifications",  # a try taken and the code used up, together
        "INSERT subscribers", "INSERT holdings", *LEDGER[dialect],
        "UPDATE verifications", "UPDATE sms_messages",  # both join the new holding
        "INSERT sms_messages", "COMMIT",  # the welcome SMS
    ]  # fmt: skip

    page = client.get("/preferences")
    with recording(app) as unsubscribe:
        data = {**form_fields(page.text), "stop_all": "x"}
        assert client.post("/preferences", data=data).status_code == 302
    assert unsubscribe.kinds() == [
        *BEGIN[dialect], "SELECT", "SELECT", *LEDGER[dialect], "COMMIT",
    ]  # fmt: skip
    assert (submit.flushes, confirm.flushes, unsubscribe.flushes) == (0, 0, 0)


def test_a_subscribers_lock_is_remembered_only_until_its_transaction_ends(app):
    """The link's check locks the row and the change does not lock it again, but only in
    the same transaction: after a commit or a rollback the lock is gone, and so is the
    memory of it."""
    from viihde.register import consent

    subscriber_id = factories.subscriber(app, PHONE, at=NOW)
    with app.app_context():
        for end in (db.session.commit, db.session.rollback):
            assert consent._already_locked(subscriber_id) is None
            assert consent.lock_subscriber(subscriber_id).id == subscriber_id
            assert consent._already_locked(subscriber_id).id == subscriber_id
            end()
            assert consent._already_locked(subscriber_id) is None


def test_the_writes_statements_are_compiled_once(app, client, fake_queue, outbox):
    """Every statement of a submission, a confirmation and an unsubscribe (and the pages
    between them) is compiled once: the second time, those on the driver's cursor
    (``statements.run``, ``read_once``) compile nothing, and any through Core's execution
    comes from SQLAlchemy's compiled cache (the consent state's multi-row VALUES upsert was
    compiled again on every write: NO_CACHE_KEY)."""
    from sqlalchemy.engine.interfaces import CacheStats

    from viihde.models import statements

    seen: list[tuple[str, object]] = []

    def on_statement(conn, cursor, statement, parameters, context, executemany) -> None:
        if context is not None and getattr(context, "compiled", None) is not None:
            seen.append((statement.split()[0] + " " + statement.split()[2], context.cache_hit))

    write_all(app.test_client(), "040 123 4567", fake_queue)
    with app.app_context():
        engine = db.engine
    prepared = statements._prepared.cache_info()
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        write_all(app.test_client(), "040 765 4321", fake_queue)
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
    again = statements._prepared.cache_info()
    assert again.hits > prepared.hits and again.misses == prepared.misses
    assert [s for s in seen if s[1] != CacheStats.CACHE_HIT] == []


@pytest.mark.usefixtures("needs_postgresql")
def test_a_submissions_statements_run_by_plans_made_once(app, visitor):
    """Submitting a number: after its lock, every statement of the transaction runs by
    PostgreSQL's generic plan (each statement's plan is right for any parameters; the
    checks were planned anew for every code, 0.9 ms of PostgreSQL's time)."""
    client = visitor.client
    data = landing_form(client, "040 123 4567")
    modes = []

    def plan_mode(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO verifications"):
            modes.append(conn.exec_driver_sql("SHOW plan_cache_mode").scalar())

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", plan_mode)
    try:
        assert client.post("/", data=data).status_code == 302
    finally:
        event.remove(engine, "after_cursor_execute", plan_mode)
    assert modes == ["force_generic_plan"]


@pytest.mark.usefixtures("needs_postgresql")
def test_psycopg_parses_each_write_statement_once(app, visitor, fake_queue, monkeypatch):
    """psycopg keeps a statement's placeholders parsed only up to 4,096 bytes and 50
    parameters; a longer one is parsed again on every execution. No statement of the three
    writes, from a client with an address (the sign-up breaker's three scopes), is longer:
    the checks before a code were 4,320 bytes and cost a submission 2-3 % of its CPU."""
    from psycopg import _queries

    reparsed: list[int] = []
    parse = _queries._query2pg_nocache  # its cached wrapper calls the original

    def uncached(query: bytes, encoding: str):
        reparsed.append(len(query))
        return parse(query, encoding)

    monkeypatch.setattr(_queries, "_query2pg_nocache", uncached)
    write_all(visitor.client, "040 123 4567", fake_queue)
    assert reparsed == []
