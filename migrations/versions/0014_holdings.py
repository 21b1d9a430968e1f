"""Holdings: each period a number is held by one person is its own row, and every row
about a person points at its holding (consent events, codes, the SMS log, replies,
tombstones). ``subscribers.holder_since`` goes: a number that changed hands has a closed
holding (until the change) and an open one (from it).

Carrying a register over: a subscriber without ``holder_since`` gets one open holding
from its creation; one with it gets a closed holding up to that day and an open one from
it (only the open one when the change came before the number entered the register).
Rows go to the holding whose period holds their time, as the pages showed them before;
the withdrawals a holder change made (``register_update``), and any withdrawal that
ended a grant from before the change, stay with the previous holding, which so ends
with nothing in force; rows from before a number's first holding (the code that
confirmed the sign-up) go to that first holding.

The consent ledger stays append-only, but for the one column a holder change may
correct: which holding an event belongs to (the trigger now names every other column).

On SQLite the tables that get a column with a foreign key are rebuilt (batch mode): the
append-only triggers are made again, and the pointers to SMS rows that dropping the old
sms_messages clears are put back (as in 0013).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

#: Every column of consent_events but holding_id: an UPDATE of any of them is refused.
LEDGER_COLUMNS = (
    "id, subscriber_id, seq, purpose, action, source, actor, created_at, basis, purchased_on, "
    "utm_source, utm_medium, utm_campaign, click_id, privacy_notice_version, "
    "consent_text_version, ip, user_agent"
)
OLD_SQLITE_LEDGER_TRIGGER = (
    "CREATE TRIGGER consent_events_no_update BEFORE UPDATE "
    "ON consent_events BEGIN SELECT RAISE(ABORT, 'consent_events is append-only'); END"
)
NEW_SQLITE_LEDGER_TRIGGER = (
    f"CREATE TRIGGER consent_events_no_update BEFORE UPDATE OF {LEDGER_COLUMNS} "
    "ON consent_events BEGIN SELECT RAISE(ABORT, 'consent_events is append-only'); END"
)
OLD_POSTGRESQL_LEDGER_TRIGGER = (
    "CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events "
    "FOR EACH ROW EXECUTE FUNCTION consent_events_append_only()"
)
NEW_POSTGRESQL_LEDGER_TRIGGER = (
    f"CREATE TRIGGER consent_events_no_update BEFORE UPDATE OF {LEDGER_COLUMNS} "
    "ON consent_events FOR EACH ROW EXECUTE FUNCTION consent_events_append_only()"
)
#: The tables that get a holding_id, with what deleting a holding does to their rows.
HOLDING_COLUMNS = {
    "consent_events": "CASCADE",
    "verifications": "SET NULL",
    "sms_messages": "SET NULL",
    "inbound_messages": "SET NULL",
    "tombstones": "SET NULL",
}
POINTERS_TO_MESSAGES = {"verifications": "sms_message_id", "campaign_messages": "sms_message_id"}


def _holding_index(table: str) -> tuple[str, list[str]]:
    """The index on holding_id; the ledger's serves "the last event per holding and
    purpose" too."""
    if table == "consent_events":
        return "ix_consent_events_holding_purpose_seq", ["holding_id", "purpose", "seq"]
    return op.f(f"ix_{table}_holding_id"), ["holding_id"]


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _drop_ledger_trigger() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS consent_events_no_update"
        + (" ON consent_events" if _postgresql() else "")
    )


def _create_ledger_trigger(new: bool) -> None:
    if _postgresql():
        op.execute(NEW_POSTGRESQL_LEDGER_TRIGGER if new else OLD_POSTGRESQL_LEDGER_TRIGGER)
    else:
        op.execute(NEW_SQLITE_LEDGER_TRIGGER if new else OLD_SQLITE_LEDGER_TRIGGER)


def _pointers_to_messages():
    connection = op.get_bind()
    return {
        (table, column): connection.execute(
            sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")
        ).all()
        for table, column in POINTERS_TO_MESSAGES.items()
    }


def _put_back(kept) -> None:
    connection = op.get_bind()
    for (table, column), rows in kept.items():
        if rows:
            connection.execute(
                sa.text(f"UPDATE {table} SET {column} = :message WHERE id = :id"),
                [{"id": row_id, "message": message_id} for row_id, message_id in rows],
            )


def _alter(table, change) -> None:
    """Apply ``change(batch)`` to ``table``; on SQLite keep what a rebuild would lose."""
    sqlite = not _postgresql()
    kept = _pointers_to_messages() if sqlite and table == "sms_messages" else {}
    with op.batch_alter_table(table) as batch:
        change(batch)
    _put_back(kept)


BACKFILL = [
    # The holdings.
    "INSERT INTO holdings (subscriber_id, started_at, ended_at) "
    "SELECT id, created_at, NULL FROM subscribers "
    "WHERE holder_since IS NULL OR holder_since <= created_at",
    "INSERT INTO holdings (subscriber_id, started_at, ended_at) "
    "SELECT id, created_at, holder_since FROM subscribers WHERE holder_since > created_at",
    "INSERT INTO holdings (subscriber_id, started_at, ended_at) "
    "SELECT id, holder_since, NULL FROM subscribers WHERE holder_since > created_at",
    # Consent events: the open holding's; those of a number that changed hands are sorted
    # below (``_sort_changed_ledgers``).
    "UPDATE consent_events SET holding_id = (SELECT h.id FROM holdings h "
    "WHERE h.subscriber_id = consent_events.subscriber_id AND h.ended_at IS NULL)",
]
#: The rows of a number, by time: the holding whose period holds them; before the first
#: holding, the first (the code that confirmed the number's sign-up).
BY_TIME = (
    "UPDATE {table} SET holding_id = (SELECT h.id FROM holdings h "
    "JOIN subscribers s ON s.id = h.subscriber_id WHERE s.phone_e164 = {table}.phone_e164 "
    "AND {table}.{time} >= h.started_at AND (h.ended_at IS NULL OR {table}.{time} < h.ended_at))"
)
BEFORE_THE_FIRST = (
    "UPDATE {table} SET holding_id = (SELECT h.id FROM holdings h "
    "JOIN subscribers s ON s.id = h.subscriber_id WHERE s.phone_e164 = {table}.phone_e164 "
    "ORDER BY h.started_at LIMIT 1) WHERE holding_id IS NULL"
)
TIMES = {"verifications": "created_at", "sms_messages": "created_at", "inbound_messages": "received_at"}


def _sort_changed_ledgers(connection) -> None:
    """The events of a number that changed hands that were the previous holder's go to
    the closed holding: those from before the change, the change's own withdrawals
    (``register_update``), and any withdrawal that ended a grant from before the change
    (the pages redacted those as an earlier holder's), so no grant of the closed holding
    is left in force."""
    changed = connection.execute(
        sa.text(
            "SELECT h.subscriber_id, h.id, h.ended_at FROM holdings h WHERE h.ended_at IS NOT NULL"
        )
    ).all()
    for subscriber_id, closed_id, until in changed:
        events = connection.execute(
            sa.text(
                "SELECT id, purpose, action, source, created_at FROM consent_events "
                "WHERE subscriber_id = :subscriber ORDER BY seq"
            ),
            {"subscriber": subscriber_id},
        ).all()
        earlier, grant_at = [], {}
        for event_id, purpose, action, source, created_at in events:
            created_at = _aware(created_at)
            ended_earlier = action == "withdraw" and grant_at.get(purpose, until) < _aware(until)
            if created_at < _aware(until) or source == "register_update" or ended_earlier:
                earlier.append(event_id)
            if action == "grant":
                grant_at[purpose] = created_at
            else:
                grant_at.pop(purpose, None)
        if earlier:
            connection.execute(
                sa.text("UPDATE consent_events SET holding_id = :holding WHERE id = :id"),
                [{"holding": closed_id, "id": event_id} for event_id in earlier],
            )


def _aware(moment):
    """SQLite gives naive UTC times back, PostgreSQL aware ones: compare them as aware."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def upgrade():
    op.create_table(
        "holdings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "ended_at IS NULL OR ended_at >= started_at", name=op.f("ck_holdings_ends_after_start")
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_holdings_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holdings")),
    )
    op.create_index(op.f("ix_holdings_subscriber_id"), "holdings", ["subscriber_id"])
    op.create_index(
        "uq_holdings_one_open_per_subscriber",
        "holdings",
        ["subscriber_id"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    _drop_ledger_trigger()
    for table, on_delete in HOLDING_COLUMNS.items():

        def add(batch, table=table, on_delete=on_delete):
            batch.add_column(sa.Column("holding_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(
                op.f(f"fk_{table}_holding_id_holdings"),
                "holdings",
                ["holding_id"],
                ["id"],
                ondelete=on_delete,
            )
            batch.create_index(*_holding_index(table))

        _alter(table, add)
    connection = op.get_bind()
    for statement in BACKFILL:
        connection.execute(sa.text(statement))
    _sort_changed_ledgers(connection)
    for table, time in TIMES.items():
        connection.execute(sa.text(BY_TIME.format(table=table, time=time)))
        connection.execute(sa.text(BEFORE_THE_FIRST.format(table=table)))
    _alter("consent_events", lambda batch: batch.alter_column("holding_id", nullable=False))
    _create_ledger_trigger(new=True)
    op.drop_column("subscribers", "holder_since")


def downgrade():
    op.add_column(
        "subscribers", sa.Column("holder_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.get_bind().execute(
        sa.text(
            "UPDATE subscribers SET holder_since = (SELECT h.started_at FROM holdings h "
            "WHERE h.subscriber_id = subscribers.id AND h.ended_at IS NULL) "
            "WHERE (SELECT count(*) FROM holdings h WHERE h.subscriber_id = subscribers.id) > 1"
        )
    )
    _drop_ledger_trigger()
    for table in reversed(HOLDING_COLUMNS):

        def drop(batch, table=table):
            batch.drop_index(_holding_index(table)[0])
            batch.drop_constraint(op.f(f"fk_{table}_holding_id_holdings"), type_="foreignkey")
            batch.drop_column("holding_id")

        _alter(table, drop)
    _create_ledger_trigger(new=False)
    op.drop_index("uq_holdings_one_open_per_subscriber", table_name="holdings")
    op.drop_index(op.f("ix_holdings_subscriber_id"), table_name="holdings")
    op.drop_table("holdings")
