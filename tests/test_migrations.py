"""The schema only changes through migrations, and the migrations match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from viihde import create_app
from viihde.extensions import db

from .conftest import SECRET


def test_migrated_register_matches_the_models(app_context):
    """Autogenerate finds nothing to do on the register the migrations built."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_migrations_upgrade_and_downgrade_cleanly(tmp_path):
    """From nothing to head and back on a fresh SQLite file."""
    uri = "sqlite:///" + str(tmp_path / "fresh.sqlite3")
    app = create_app({"APP_ENV": "testing", "SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": uri})
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
