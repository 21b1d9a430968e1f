"""The SMS budget's counts, kept by the database beside the SMS log.

The check before every code counted the last day's budgeted messages one row at a time:
3,600 of them in a benchmark's ten seconds took 1.7 ms of PostgreSQL's time a code, and
a busy day's would take more (the whole day, however far below the limit). Now
``sms_budget_counts`` holds how many budgeted messages (every kind but a campaign's, not
failed) were created in each minute and each hour (UTC), and the check adds up at most
24 hours and 121 minutes of it.

Triggers keep the counts, so that no way of writing the log (the app, a job, a fix by
hand) can forget them: a message counts when it is written, stops counting when it
fails or is deleted, and counts again if a failed one is sent after all. A message
counts its minute and its hour; a count it would take away that is gone already (older
than the purge keeps) stays gone. On PostgreSQL the triggers are deferred to the commit,
so that the current minute's and hour's rows are locked only while a transaction
commits, not while it does the rest of its work (every code's transaction adds to the
same two rows).

The counts start from the last two days of the log, and the index on the log's (kind,
created_at), which only the old count used (0016), goes.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

#: models.BUDGETED_KINDS when this was written: the kinds the budget counts.
BUDGETED = "('code', 'welcome', 'link', 'reply', 'test')"


def _counted(row: str) -> str:
    return f"({row}.kind IN {BUDGETED} AND {row}.status <> 'failed')"


#: The counts are written by the function's owner (the migrations' role): the app's role
#: writes the log, and may read and purge the counts but not set them. A count is locked
#: hour first, then minute, by every message added or taken away, so that two commits
#: touching the same minute never wait for each other crosswise.
POSTGRESQL_FUNCTION = f"""
CREATE FUNCTION sms_budget_count() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND {_counted("OLD")} THEN
        UPDATE sms_budget_counts SET sent = sent - 1
        WHERE span = 'hour' AND starts_at = date_trunc('hour', OLD.created_at, 'UTC');
        UPDATE sms_budget_counts SET sent = sent - 1
        WHERE span = 'minute' AND starts_at = date_trunc('minute', OLD.created_at, 'UTC');
    END IF;
    IF TG_OP <> 'DELETE' AND {_counted("NEW")} THEN
        INSERT INTO sms_budget_counts AS counts (span, starts_at, sent)
        VALUES ('hour', date_trunc('hour', NEW.created_at, 'UTC'), 1)
        ON CONFLICT (span, starts_at) DO UPDATE SET sent = counts.sent + 1;
        INSERT INTO sms_budget_counts AS counts (span, starts_at, sent)
        VALUES ('minute', date_trunc('minute', NEW.created_at, 'UTC'), 1)
        ON CONFLICT (span, starts_at) DO UPDATE SET sent = counts.sent + 1;
    END IF;
    RETURN NULL;
END
$$
"""

#: The changes of a message that change what it counts (its kind or failure, its time).
_COUNTED_CHANGE = (
    f"{_counted('OLD')} IS DISTINCT FROM {_counted('NEW')} "
    "OR OLD.kind IS DISTINCT FROM NEW.kind OR OLD.created_at IS DISTINCT FROM NEW.created_at"
)

POSTGRESQL_TRIGGERS = {
    "sms_budget_on_insert": f"AFTER INSERT ON sms_messages {{deferred}} WHEN {_counted('NEW')}",
    "sms_budget_on_update": (
        "AFTER UPDATE OF kind, status, created_at ON sms_messages {deferred} "
        f"WHEN ({_COUNTED_CHANGE})"
    ),
    "sms_budget_on_delete": f"AFTER DELETE ON sms_messages {{deferred}} WHEN {_counted('OLD')}",
}

#: SQLite stores times as text, "YYYY-MM-DD HH:MM:SS.ffffff" (SQLAlchemy's format).
_SQLITE_HOUR = "strftime('%Y-%m-%d %H:00:00.000000', {row}.created_at)"
_SQLITE_MINUTE = "strftime('%Y-%m-%d %H:%M:00.000000', {row}.created_at)"


def _sqlite_take_away(row: str) -> str:
    return (
        f"UPDATE sms_budget_counts SET sent = sent - 1 WHERE {_counted(row)} AND ("
        f"(span = 'hour' AND starts_at = {_SQLITE_HOUR.format(row=row)}) OR "
        f"(span = 'minute' AND starts_at = {_SQLITE_MINUTE.format(row=row)}));"
    )


def _sqlite_add(row: str) -> str:
    return (
        "INSERT INTO sms_budget_counts (span, starts_at, sent) SELECT * FROM (VALUES "
        f"('hour', {_SQLITE_HOUR.format(row=row)}, 1), "
        f"('minute', {_SQLITE_MINUTE.format(row=row)}, 1)) WHERE {_counted(row)} "
        "ON CONFLICT (span, starts_at) DO UPDATE SET sent = sent + 1;"
    )


SQLITE_TRIGGERS = {
    "sms_budget_on_insert": (
        f"AFTER INSERT ON sms_messages WHEN {_counted('NEW')} BEGIN {_sqlite_add('NEW')} END"
    ),
    "sms_budget_on_update": (
        "AFTER UPDATE OF kind, status, created_at ON sms_messages "
        f"WHEN ({_COUNTED_CHANGE.replace('IS DISTINCT FROM', 'IS NOT')}) "
        f"BEGIN {_sqlite_take_away('OLD')} {_sqlite_add('NEW')} END"
    ),
    "sms_budget_on_delete": (
        f"AFTER DELETE ON sms_messages WHEN {_counted('OLD')} BEGIN {_sqlite_take_away('OLD')} END"
    ),
}


def _backfill(hour: str, minute: str, since: str) -> None:
    for span, start in (("hour", hour), ("minute", minute)):
        op.execute(
            "INSERT INTO sms_budget_counts (span, starts_at, sent) "
            f"SELECT '{span}', {start}, count(*) FROM sms_messages AS message "
            f"WHERE {_counted('message')} AND message.created_at > {since} GROUP BY {start}"
        )


def upgrade() -> None:
    op.create_table(
        "sms_budget_counts",
        sa.Column("span", sa.String(6), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.CheckConstraint("span IN ('minute', 'hour')", name=op.f("ck_sms_budget_counts_span")),
        sa.PrimaryKeyConstraint("span", "starts_at", name=op.f("pk_sms_budget_counts")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # No message written or failed between the backfill and the triggers goes uncounted
        # (the app may run on while this migrates): the log takes no writes until the commit.
        op.execute("LOCK TABLE sms_messages IN SHARE ROW EXCLUSIVE MODE")
        _backfill(
            "date_trunc('hour', message.created_at, 'UTC')",
            "date_trunc('minute', message.created_at, 'UTC')",
            "now() - interval '2 days'",
        )
        op.execute(POSTGRESQL_FUNCTION)
        for name, definition in POSTGRESQL_TRIGGERS.items():
            deferred = "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
            op.execute(
                f"CREATE CONSTRAINT TRIGGER {name} {definition.format(deferred=deferred)} "
                "EXECUTE FUNCTION sms_budget_count()"
            )
    else:
        _backfill(
            _SQLITE_HOUR.format(row="message"),
            _SQLITE_MINUTE.format(row="message"),
            "strftime('%Y-%m-%d %H:%M:%f', 'now', '-2 days')",
        )
        for name, definition in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {definition}")
    op.drop_index("ix_sms_messages_kind_created_at", table_name="sms_messages")


def downgrade() -> None:
    op.create_index("ix_sms_messages_kind_created_at", "sms_messages", ["kind", "created_at"])
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in POSTGRESQL_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON sms_messages" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS sms_budget_count()")
    op.drop_table("sms_budget_counts")
