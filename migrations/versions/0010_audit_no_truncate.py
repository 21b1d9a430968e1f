"""The audit log and the consent ledger refuse TRUNCATE as well (PostgreSQL).

The row triggers of 0001 and 0004 never see a TRUNCATE, which empties a table without
touching a row; a statement-level trigger refuses it through the same functions, also
when another table's TRUNCATE ... CASCADE reaches these. Nothing in the app truncates
either table (erasure deletes one person's consent events). SQLite has no TRUNCATE.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: Each table, with the function its append-only row trigger already calls.
APPEND_ONLY = {
    "audit_entries": "audit_entries_append_only",
    "consent_events": "consent_events_append_only",
}


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table, function in APPEND_ONLY.items():
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
