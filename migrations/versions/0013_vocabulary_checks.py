"""The register's words are checked by the database: where a consent event came from and
who gave it, what kind an SMS is, what an audit entry records, who erased a number, and
the basis a campaign message went under.

The values are a frozen copy of the enums in ``viihde.models`` at this revision. They are
every value the app has ever written, so existing rows pass (PostgreSQL checks them as it
adds each constraint, and refuses the upgrade if one does not).

SQLite cannot add a constraint to a table: batch mode rebuilds each table. The triggers
that keep consent_events and audit_entries append-only go with the old table and are made
again. Dropping the old sms_messages (foreign keys are on) sets the verifications' and
campaign recipients' pointers to their message to NULL, so they are kept and put back.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

CONSENT_SOURCES = (
    "signup",
    "preference_page",
    "sms_keyword",
    "staff",
    "cli",
    "register_update",
    "customer_import",
    "customer_relationship_ended",
)
#: A staff member acts as "staff:<id>".
CONSENT_ACTORS = ("subject", "system", "provider")
SMS_KINDS = ("code", "welcome", "link", "reply", "test", "campaign", "campaign_test")
AUDIT_ACTIONS = (
    "search",
    "view_card",
    "withdraw",
    "send_link",
    "export",
    "erase",
    "audience_export",
    "api_audience",
    "sync_holders",
    "import_customers",
    "purge",
    "end_customer_grants",
    "create_campaign",
    "edit_campaign",
    "test_send_campaign",
    "start_campaign",
    "pause_campaign",
    "resume_campaign",
    "cancel_campaign",
    "login",
    "logout",
    "enrol_totp",
    "replace_totp",
    "reset_totp",
    "reset_password",
    "create_staff",
    "disable_staff",
    "create_api_token",
    "revoke_api_token",
    "read_audit_log",
)
ERASURE_SOURCES = ("subject", "staff", "cli", "retention")
BASES = ("consent", "customer")


def one_of(column, values):
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


#: Each table's new constraints, by name (the naming convention makes ck_<table>_<name>).
CHECKS = {
    "consent_events": {
        "source": one_of("source", CONSENT_SOURCES),
        "actor": one_of("actor", CONSENT_ACTORS) + " OR actor LIKE 'staff:%'",
    },
    "sms_messages": {"kind": one_of("kind", SMS_KINDS)},
    "audit_entries": {"action": one_of("action", AUDIT_ACTIONS)},
    "tombstones": {"source": one_of("source", ERASURE_SOURCES)},
    "campaign_messages": {"basis": one_of("basis", BASES)},
}

#: The append-only triggers of 0001 and 0004 on SQLite, which a rebuild drops.
SQLITE_TRIGGERS = {
    "consent_events": {
        "consent_events_no_update": "CREATE TRIGGER consent_events_no_update BEFORE UPDATE "
        "ON consent_events BEGIN SELECT RAISE(ABORT, 'consent_events is append-only'); END",
    },
    "audit_entries": {
        f"audit_entries_no_{event.lower()}": f"CREATE TRIGGER audit_entries_no_{event.lower()} "
        f"BEFORE {event} ON audit_entries "
        "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END"
        for event in ("UPDATE", "DELETE")
    },
}
#: The columns that point at an SMS row, by table.
POINTERS_TO_MESSAGES = {"verifications": "sms_message_id", "campaign_messages": "sms_message_id"}


def _change(table, change):
    """Apply ``change(batch)`` to ``table``; on SQLite keep what a rebuild would lose."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    kept = _pointers_to_messages() if sqlite and table == "sms_messages" else {}
    with op.batch_alter_table(table) as batch:
        change(batch)
    if sqlite:
        for name, create in SQLITE_TRIGGERS.get(table, {}).items():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
            op.execute(create)
        _put_back(kept)


def _pointers_to_messages():
    connection = op.get_bind()
    return {
        (table, column): connection.execute(
            sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")
        ).all()
        for table, column in POINTERS_TO_MESSAGES.items()
    }


def _put_back(kept):
    connection = op.get_bind()
    for (table, column), rows in kept.items():
        if rows:
            connection.execute(
                sa.text(f"UPDATE {table} SET {column} = :message WHERE id = :id"),
                [{"id": row_id, "message": message_id} for row_id, message_id in rows],
            )


def upgrade():
    for table, checks in CHECKS.items():

        def add(batch, checks=checks, table=table):
            for name, condition in checks.items():
                batch.create_check_constraint(op.f(f"ck_{table}_{name}"), condition)

        _change(table, add)


def downgrade():
    for table, checks in reversed(CHECKS.items()):

        def drop(batch, checks=checks, table=table):
            for name in checks:
                batch.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")

        _change(table, drop)
