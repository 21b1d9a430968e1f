"""The schema only changes through migrations, and the migrations match the models."""

from __future__ import annotations

import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, literal_column, select, table, text
from sqlalchemy.exc import IntegrityError, OperationalError

from viihde import create_app
from viihde.extensions import db

from .settings import SECRET_KEY


def head_revision() -> str:
    """The newest migration's revision (in an app context)."""
    from alembic.script import ScriptDirectory
    from flask import current_app

    from viihde.extensions import migrate

    config = migrate.get_config(current_app.extensions["migrate"].directory)
    return ScriptDirectory.from_config(config).get_current_head()


def test_migrated_register_matches_the_models(app_context):
    """Autogenerate finds nothing to do on the register the migrations built."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_migrations_upgrade_and_downgrade_cleanly(tmp_path):
    """From nothing to head and back on a fresh SQLite file."""
    uri = "sqlite:///" + str(tmp_path / "fresh.sqlite3")
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": uri}
    )
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {
            "subscribers",
            "consent_events",
            "verifications",
            "sms_messages",
            "tombstones",
        } <= tables
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        db.engine.dispose()


def test_holder_since_migrates_up_and_down_keeping_the_register(tmp_path):
    """0009 adds subscribers.holder_since and takes it away again without rebuilding the
    table: the ledger stays (no cascade), append-only, and ids stay AUTOINCREMENT."""
    uri = "sqlite:///" + str(tmp_path / "holders.sqlite3")
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": uri}
    )

    def columns() -> set[str]:
        return {column["name"] for column in inspect(db.engine).get_columns("subscribers")}

    def register() -> tuple:
        with db.engine.connect() as connection:
            subscribers = connection.execute(text("SELECT id, phone_e164 FROM subscribers"))
            events = connection.execute(text("SELECT subscriber_id, seq FROM consent_events"))
            table = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'subscribers'")
            ).scalar_one()
            triggers = connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).scalars()
            return list(subscribers), list(events), "AUTOINCREMENT" in table, set(triggers)

    with app.app_context():
        upgrade(revision="0008")
        assert "holder_since" not in columns()
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO subscribers (id, phone_e164, language, link_key, created_at, "
                    "confirmed_at) VALUES (7, '+358401234567', 'fi', 'k', "
                    "'2026-10-01 09:00:00', '2026-10-01 09:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO consent_events (subscriber_id, seq, purpose, action, source, "
                    "actor, created_at, privacy_notice_version, consent_text_version) VALUES "
                    "(7, 1, 'offers', 'grant', 'signup', 'subject', '2026-10-01 09:00:00', "
                    "'1', 'signup-1')"
                )
            )
        before = register()
        assert before[0] and before[1] and before[2]
        assert "consent_events_no_update" in before[3]

        upgrade(revision="0009")
        assert "holder_since" in columns()
        assert register() == before
        with db.engine.begin() as connection:
            connection.execute(
                text("UPDATE subscribers SET holder_since = '2026-11-19 22:00:00' WHERE id = 7")
            )

        downgrade(revision="0008")
        assert "holder_since" not in columns()
        assert register() == before

        upgrade(revision="0013")  # 0014 turns it into holdings (test_holdings_migration)
        assert "holder_since" in columns()
        db.engine.dispose()


def test_the_sms_log_loses_its_link_tokens_on_upgrade(tmp_path):
    """0012 rewrites every logged link as ``.../[link]``; other text stays as it was."""
    uri = "sqlite:///" + str(tmp_path / "links.sqlite3")
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": uri}
    )
    bodies = {
        1: "Tervetuloa! Muuta viestejäsi: https://viihdepaketti.fi/AQ.pQZVoe0Jf9qQbT5q tai STOP",
        2: "Koodisi on ******.\n\n@viihdepaketti.fi #******",
    }
    with app.app_context():
        upgrade(revision="0011")
        with db.engine.begin() as connection:
            for message_id, body in bodies.items():
                connection.execute(
                    text(
                        "INSERT INTO sms_messages (id, phone_e164, kind, body, segments, backend,"
                        " status, attempts, created_at, updated_at) VALUES (:id, '+358401234567',"
                        " 'welcome', :body, 1, 'file', 'sent', 1, '2026-11-01 09:00:00',"
                        " '2026-11-01 09:00:00')"
                    ),
                    {"id": message_id, "body": body},
                )
        upgrade()
        with db.engine.connect() as connection:
            stored = dict(connection.execute(text("SELECT id, body FROM sms_messages")).all())
        db.engine.dispose()
    assert stored == {
        1: "Tervetuloa! Muuta viestejäsi: https://viihdepaketti.fi/[link] tai STOP",
        2: bodies[2],
    }


#: A row of every table 0013 rebuilds on SQLite, with values written before it existed.
BEFORE_0013 = [
    "INSERT INTO subscribers (id, phone_e164, language, link_key, created_at, confirmed_at) "
    "VALUES (7, '+358401234567', 'fi', 'k', '2026-10-01 09:00:00', '2026-10-01 09:00:00')",
    "INSERT INTO consent_events (subscriber_id, seq, purpose, action, source, actor, created_at,"
    " privacy_notice_version, consent_text_version, basis) VALUES (7, 1, 'offers', 'withdraw',"
    " 'staff', 'staff:3', '2026-10-01 09:00:00', '1', 'signup-1', 'customer')",
    "INSERT INTO sms_messages (id, phone_e164, subscriber_id, kind, body, segments, backend,"
    " status, attempts, created_at, updated_at) VALUES (5, '+358401234567', 7, 'campaign', 'Hei',"
    " 1, 'file', 'sent', 1, '2026-10-01 09:00:00', '2026-10-01 09:00:00')",
    "INSERT INTO verifications (id, phone_e164, kind, code_hash, language, purposes,"
    " privacy_notice_version, attempts, created_at, expires_at, sms_message_id) VALUES (3,"
    " '+358401234567', 'step_up', 'h', 'fi', '', '1', 0, '2026-10-01 09:00:00',"
    " '2026-10-01 09:10:00', 5)",
    "INSERT INTO campaigns (id, name, purpose, body_fi, body_sv, body_en, status, created_at)"
    " VALUES (1, 'Talvi', 'offers', 'Hei', 'Hej', 'Hi', 'finished', '2026-10-01 09:00:00')",
    "INSERT INTO campaign_messages (campaign_id, subscriber_id, sms_message_id, status, language,"
    " basis, created_at) VALUES (1, 7, 5, 'sent', 'fi', 'customer', '2026-10-01 09:00:00')",
    "INSERT INTO audit_entries (created_at, actor, action, detail) VALUES"
    " ('2026-10-01 09:00:00', 'cli:ops', 'end_customer_grants', 'x')",
    "INSERT INTO tombstones (phone_hash, source, erased_at) VALUES ('h', 'retention',"
    " '2026-10-01 09:00:00')",
]
REBUILT = (
    "consent_events",
    "sms_messages",
    "verifications",
    "campaign_messages",
    "audit_entries",
    "tombstones",
)


def test_the_vocabulary_checks_keep_every_row_and_pointer(tmp_path):
    """0013 rebuilds tables on SQLite to add its CHECKs, and takes them away again: every
    row stays, a code and a campaign recipient still point at their SMS, the ledgers stay
    append-only, and a value outside the words is refused only while the CHECKs are on."""
    uri = "sqlite:///" + str(tmp_path / "words.sqlite3")
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": uri}
    )

    def register() -> tuple:
        with db.engine.connect() as connection:
            rows = {
                name: connection.execute(
                    select(literal_column("*")).select_from(table(name)).order_by(text("id"))
                ).all()
                for name in REBUILT
            }
            triggers = connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).scalars()
            return rows, set(triggers)

    def takes_any_kind() -> bool:
        with db.engine.connect() as connection:
            try:
                connection.execute(
                    text(
                        "INSERT INTO sms_messages (phone_e164, kind, body, segments, backend,"
                        " status, attempts, created_at, updated_at) VALUES ('+358401234567',"
                        " 'fax', 'x', 1, 'file', 'sent', 1, '2026-10-01', '2026-10-01')"
                    )
                )
            except IntegrityError:
                return False
            finally:
                connection.rollback()
        return True

    with app.app_context():
        upgrade(revision="0012")
        with db.engine.begin() as connection:
            for statement in BEFORE_0013:
                connection.execute(text(statement))
        before = register()
        assert before[1] == {
            "consent_events_no_update",
            "audit_entries_no_update",
            "audit_entries_no_delete",
        }
        assert takes_any_kind()

        upgrade(revision="0013")
        assert register() == before
        assert not takes_any_kind()

        downgrade(revision="0012")
        assert register() == before
        assert takes_any_kind()

        upgrade()
        db.engine.dispose()


@pytest.mark.parametrize("empty_database", ["postgresql"], indirect=True)
def test_a_migration_waiting_for_a_lock_gives_up_instead_of_holding_everyone(empty_database):
    """A transaction writing the SMS log (an export, a long request) holds its lock: the
    migration that needs the table waits MIGRATION_LOCK_TIMEOUT and fails, rather than
    making every request behind it wait in the lock's queue; run again, it goes through."""
    from sqlalchemy import create_engine

    app = create_app(
        {
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": empty_database,
            "MIGRATION_LOCK_TIMEOUT": "500ms",
        }
    )
    with app.app_context():
        upgrade(revision="0019")
        other = create_engine(empty_database)
        with other.connect() as holder:
            holder.execute(text("LOCK TABLE sms_messages IN ROW EXCLUSIVE MODE"))
            started = time.monotonic()
            with pytest.raises(OperationalError, match="lock timeout"):
                upgrade()  # 0020's index needs the table still
            assert time.monotonic() - started < 5
            holder.rollback()
        other.dispose()
        upgrade()
        with db.engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert revision.scalar() == head_revision()
        db.engine.dispose()


def test_the_stops_the_sms_log_keeps_become_refusals(tmp_path):
    """0021 turns each number's last STOP or START in the kept replies, where it is a STOP,
    into a refusal (the number's keyed hash, the STOP's time), so that the refusals are the
    one place the customer import reads: a STOP stands, a START after a STOP lifts it, a
    START alone refuses nothing."""
    from viihde.models import Refusal
    from viihde.register.erasure import tombstone_hash

    uri = "sqlite:///" + str(tmp_path / "refusals.sqlite3")
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": uri}
    )
    stopped, lifted, started = "+358401110001", "+358401110002", "+358401110003"
    replies = [
        (stopped, "stop", "2026-01-01 10:00:00"),
        (lifted, "stop", "2026-01-01 10:00:00"),
        (lifted, "start", "2026-01-02 10:00:00"),
        (started, "start", "2026-01-01 10:00:00"),
        (stopped, None, "2026-01-03 10:00:00"),  # a text that is no keyword changes nothing
    ]
    with app.app_context():
        upgrade(revision="0020")
        with db.engine.begin() as connection:
            for n, (phone, keyword, at) in enumerate(replies):
                connection.execute(
                    text(
                        "INSERT INTO inbound_messages (provider, message_sid, phone_e164, body,"
                        " keyword, received_at) VALUES ('twilio', :sid, :phone, 'x', :keyword, :at)"
                    ),
                    {"sid": f"SM{n}", "phone": phone, "keyword": keyword, "at": at},
                )
        upgrade()
        refusals = [
            (r.phone_hash, r.refused_at.isoformat()) for r in db.session.scalars(select(Refusal))
        ]
        assert refusals == [(tombstone_hash(stopped), "2026-01-01T10:00:00+00:00")]
        db.engine.dispose()
