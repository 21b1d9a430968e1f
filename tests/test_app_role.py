"""The app's own database role (deploy/app-role.sql, PostgreSQL): it does the app's work,
and cannot rewrite the audit log or the schema, which its owner role keeps."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from viihde import create_app
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.jobs import purge
from viihde.models import (
    AuditEntry,
    ConsentEvent,
    Holding,
    SmsBudgetCount,
    SmsMessage,
    Subscriber,
    Tombstone,
)
from viihde.register import audit, consent, erasure, holders

from .factories import sms_row
from .helpers import Visitor
from .settings import app_settings

APP_ROLE_SQL = Path(__file__).resolve().parent.parent / "deploy" / "app-role.sql"
PASSWORD = "app-role-in-tests"


@pytest.fixture
def role_url(needs_postgresql, app_context) -> Iterator[str]:
    """The register's address as the app's role, its grants applied as the operator applies
    them; afterwards the role loses them and goes. Roles belong to the whole server, so each
    database (each xdist worker, each concurrent run) gets its own: viihde_app_<database>."""
    role = f"viihde_app_{db.engine.url.database}"
    grants = re.sub(r"\bviihde_app\b", role, APP_ROLE_SQL.read_text())
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as owner:
        if _exists(owner, role):  # left behind by a run that stopped half-way
            owner.exec_driver_sql(f"DROP OWNED BY {role}")
            owner.exec_driver_sql(f"DROP ROLE {role}")
        owner.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
        owner.exec_driver_sql(grants)
    try:
        yield db.engine.url.set(username=role, password=PASSWORD).render_as_string(False)
    finally:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as owner:
            owner.exec_driver_sql(f"DROP OWNED BY {role}")
            owner.exec_driver_sql(f"DROP ROLE {role}")


def _exists(connection: Connection, role: str) -> bool:
    return (
        connection.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
        ).first()
        is not None
    )


@pytest.fixture
def as_app_role(role_url) -> Iterator[Connection]:
    """A connection to the register as viihde_app (each statement its own transaction)."""
    engine = create_engine(role_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def refused(connection: Connection, statement) -> bool:
    """Whether the database refuses this role the statement."""
    try:
        connection.execute(text(statement) if isinstance(statement, str) else statement)
    except DBAPIError as error:
        assert error.orig.sqlstate == "42501", error  # insufficient_privilege
        return True
    return False


def test_the_app_role_adds_to_the_audit_log_but_cannot_change_or_empty_it(as_app_role):
    """Entries go in; no UPDATE, DELETE or TRUNCATE, directly or by cascade, and no
    switching the triggers off."""
    as_app_role.execute(
        insert(AuditEntry).values(created_at=utcnow(), actor="cli:ops", action="export")
    )
    assert as_app_role.scalar(select(AuditEntry.action)) == "export"
    assert refused(as_app_role, update(AuditEntry).values(action="nothing"))
    assert refused(as_app_role, delete(AuditEntry))
    assert refused(as_app_role, "TRUNCATE audit_entries")
    assert refused(as_app_role, "TRUNCATE staff_members CASCADE")
    assert refused(as_app_role, "ALTER TABLE audit_entries DISABLE TRIGGER USER")


def test_the_app_role_cannot_change_the_schema(as_app_role):
    """No DROP, no ALTER, no new tables: the migrations run as the owner."""
    assert refused(as_app_role, "DROP TABLE consent_events CASCADE")
    assert refused(as_app_role, "ALTER TABLE subscribers ADD COLUMN note text")
    assert refused(as_app_role, "DROP TRIGGER consent_events_no_update ON consent_events")
    assert refused(as_app_role, "CREATE TABLE public.scratch (id integer)")


def test_the_app_role_keeps_the_ledger_and_erases_from_it(as_app_role):
    """A subscriber and a grant go in; the grant is never changed, only erased with them."""
    now = utcnow()
    subscriber_id = as_app_role.scalar(
        insert(Subscriber)
        .values(
            phone_e164="+358401234567",
            language="fi",
            link_key="k",
            created_at=now,
            confirmed_at=now,
        )
        .returning(Subscriber.id)
    )
    first, second = (
        as_app_role.scalar(
            insert(Holding)
            .values(subscriber_id=subscriber_id, started_at=now, ended_at=ended_at)
            .returning(Holding.id)
        )
        for ended_at in (now, None)
    )
    as_app_role.execute(
        insert(ConsentEvent).values(
            subscriber_id=subscriber_id,
            holding_id=first,
            seq=1,
            purpose="offers",
            action="grant",
            source="signup",
            actor="subject",
            created_at=now,
            privacy_notice_version="1",
            consent_text_version="signup-1",
        )
    )
    assert refused(as_app_role, update(ConsentEvent).values(action="withdraw"))
    assert refused(as_app_role, "TRUNCATE consent_events")
    # A holder change says whose an event is; that is all it may change.
    assert not refused(as_app_role, update(ConsentEvent).values(holding_id=second))
    as_app_role.execute(delete(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id))
    as_app_role.execute(delete(Holding).where(Holding.subscriber_id == subscriber_id))
    as_app_role.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
    assert as_app_role.scalar(select(ConsentEvent.id)) is None


def test_the_app_role_reads_every_table(as_app_role):
    """A table added without a grant in deploy/app-role.sql fails here."""
    for table in db.metadata.sorted_tables:
        as_app_role.execute(select(table).limit(1))
    as_app_role.execute(text("SELECT version_num FROM alembic_version"))


def test_the_app_works_as_the_app_role(role_url, outbox_path, outbox):
    """Sign-up, a holder change, the new holder's erasure of their holding, the retention
    purge and an erasure, with the app connected as viihde_app."""
    app = create_app(app_settings(role_url, SMS_OUTBOX_PATH=str(outbox_path)))
    client = app.test_client()
    assert Visitor(client, outbox).sign_up("040 123 4567").status_code == 302
    assert client.get("/readyz").json == {"status": "ready"}
    with app.app_context():
        assert holders.change_holder("+358401234567", utcnow(), utcnow()).changed
        db.session.commit()
        consent.subscribe("+358401234567", ["offers"], consent.ConsentContext("signup"), utcnow())
        db.session.commit()
        subscriber_id = db.session.scalar(select(Subscriber.id))
        erasure.erase_own(subscriber_id, "subject", utcnow())
        db.session.commit()
        report = purge.run(utcnow() + timedelta(days=400 * 3))
        assert report.failures == {}
        assert (report.verifications, report.sms_messages) == (1, 2)
        assert report.subscribers_erased == 1  # the previous holder's, the number's last
        erasure.erase("+358401234567", "cli", utcnow())
        audit.record(audit.Actor.cli("ops"), "erase", utcnow(), phone_e164="+358401234567")
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    assert db.session.scalar(select(Subscriber.id)) is None
    assert db.session.scalars(select(Tombstone.source).order_by(Tombstone.id)).all() == [
        "subject",
        "retention",
        "cli",
    ]
    actions = db.session.scalars(select(AuditEntry.action)).all()
    assert "erase" in actions and "purge" in actions


def test_the_app_role_writes_the_sms_log_and_its_budget_counts_follow(as_app_role):
    """The SMS log's triggers keep the budget's counts as the app role writes the log (as
    their owner), while the role itself may read and purge the counts but not set one: a
    compromised app cannot zero the money budget."""
    now = utcnow()
    as_app_role.execute(insert(SmsMessage).values(sms_row(now, status="queued")))
    assert as_app_role.scalar(select(func.sum(SmsBudgetCount.sent))) == 2  # its minute, its hour
    assert refused(as_app_role, update(SmsBudgetCount).values(sent=0))
    assert refused(as_app_role, insert(SmsBudgetCount).values(span="hour", starts_at=now, sent=0))
    as_app_role.execute(update(SmsMessage).values(status="failed"))  # the triggers may
    assert as_app_role.scalar(select(func.sum(SmsBudgetCount.sent))) == 0
    as_app_role.execute(delete(SmsBudgetCount))  # the purge may
