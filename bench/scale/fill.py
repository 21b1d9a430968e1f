"""Fill: an empty register as the migrations build it, filled by COPY in two processes."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

from bench.scale.database import connect, flask_app
from bench.scale.rows import COLUMNS, FILLED, Register

#: What "the schema the migrations built" means here: every index, constraint, column
#: and trigger, as PostgreSQL itself prints them.
SCHEMA = """
SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT concat_ws(' ', 'column', table_name, column_name, data_type, character_maximum_length,
                 is_nullable, column_default)
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'trigger ' || tgrelid::regclass || ' ' || pg_get_triggerdef(oid) FROM pg_trigger
WHERE NOT tgisinternal
ORDER BY 1
"""

#: Dropped for the COPY and rebuilt after it from their own definitions: the unique and
#: foreign-key constraints on or pointing at the filled tables, and their plain indexes.
#: Primary keys stay (the ids arrive in order, so they cost little during the COPY), and so
#: do partial indexes: they hold the few rows their predicate names, and PostgreSQL's text
#: of a predicate does not always read back as the same one (``status IN ('queued',
#: 'sending')`` comes back as an ``= ANY`` of an array cast, which it then reads as another
#: expression), so one rebuilt from it would differ from the migrations' schema.
SECONDARY = """
SELECT 'constraint', conrelid::regclass::text, conname, pg_get_constraintdef(oid)
FROM pg_constraint
WHERE contype IN ('u', 'f')
  AND (conrelid = ANY(%(tables)s::regclass[]) OR confrelid = ANY(%(tables)s::regclass[]))
UNION ALL
SELECT 'index', tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename = ANY(%(tables)s::text[])
  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))
  AND indexdef NOT LIKE '%% WHERE %%'
"""


def migrate_empty() -> None:
    """An empty register, as the migrations build it."""
    with connect() as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    from flask_migrate import upgrade

    from viihde.extensions import db

    with flask_app().app_context():
        upgrade()
        db.engine.dispose()


#: The consent state beside the ledger (migration 0015): emptied with it, filled from its
#: fold once the events are in.
STATE = "consent_states"
FOLD = """
    INSERT INTO consent_states
        (holding_id, purpose, granted, event_id, basis, consent_text_version, changed_at)
    SELECT DISTINCT ON (holding_id, purpose)
           holding_id, purpose, action = 'grant', id, basis, consent_text_version, created_at
    FROM consent_events ORDER BY holding_id, purpose, seq DESC
"""

#: The SMS budget's counts by minute and hour (migration 0018), from the whole log at once.
BUDGET = """
    INSERT INTO sms_budget_counts (span, starts_at, sent)
    SELECT 'hour', date_trunc('hour', created_at, 'UTC'), count(*) FROM sms_messages
    WHERE kind IN ('code', 'welcome', 'link', 'reply', 'test') AND status <> 'failed'
    GROUP BY 2;
    INSERT INTO sms_budget_counts (span, starts_at, sent)
    SELECT 'minute', date_trunc('minute', created_at, 'UTC'), count(*) FROM sms_messages
    WHERE kind IN ('code', 'welcome', 'link', 'reply', 'test') AND status <> 'failed'
    GROUP BY 2;
"""

#: The fill's two halves, each in a process of its own, and the tables each writes.
PARTS = {"people": ("subscribers", "holdings", "sms_messages"), "events": ("consent_events",)}


def copy_part(
    part: str, subscribers: int, events_per_subscriber: float, seed: int, now: float
) -> dict[str, int]:
    """COPY one half of the register: each table on its own connection, in the
    transaction that emptied it, so that COPY FREEZE writes rows already frozen and
    all-visible (no hint-bit rewrite or freezing vacuum later)."""
    from psycopg.copy import QueuedLibpqWriter

    register = Register(subscribers, events_per_subscriber, seed, now)
    rows = register.subscribers_and_sms() if part == "people" else register.consent_events()
    counts = dict.fromkeys(PARTS[part], 0)
    with contextlib.ExitStack() as stack:
        copies = {}
        for table in PARTS[part]:
            conn = stack.enter_context(connect(autocommit=False))
            conn.execute("SET synchronous_commit = off")
            # The ledger refuses TRUNCATE (migration 0010): its triggers are off for this
            # TRUNCATE only, in a transaction nobody else sees before they are back on.
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            conn.execute(
                f"TRUNCATE {table}, {STATE}" if table == "consent_events" else f"TRUNCATE {table}"
            )
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            if table == "sms_messages":
                # A bulk load: the SMS budget's triggers (migration 0018) stay quiet for this
                # connection's COPY, and ``fill`` counts the log once it is in (BUDGET).
                conn.execute("SET session_replication_role = replica")
            cursor = stack.enter_context(conn.cursor())
            statement = f"COPY {table} ({COLUMNS[table]}) FROM STDIN (FREEZE)"
            # The writer thread sends while this one formats the next rows.
            copies[table] = stack.enter_context(
                cursor.copy(statement, writer=QueuedLibpqWriter(cursor))
            )
        for table, lines in rows:
            if lines:
                copies[table].write("".join(lines))
                counts[table] += len(lines)
        # Leaving the stack ends each COPY, then commits and closes its connection.
    return counts


def fill(subscribers: int, events_per_subscriber: float, seed: int) -> dict:
    """Migrate an empty register and fill it by COPY; the seconds each step took."""
    seconds: dict[str, float] = {}
    began = mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        seconds[name] = round(now - mark, 2)
        mark = now

    migrate_empty()
    lap("migrate")
    now = time.time()
    Register(subscribers, events_per_subscriber, seed, now)  # refuses a bad mean early
    counts = dict.fromkeys(FILLED, 0)
    with connect() as conn:
        migrated = [row[0] for row in conn.execute(SCHEMA)]
        secondary = conn.execute(SECONDARY, {"tables": list(FILLED)}).fetchall()
        with conn.transaction():
            for kind, table, name, _ in secondary:
                if kind == "constraint":
                    conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for kind, _, name, _ in secondary:
                if kind == "index":
                    conn.execute(f'DROP INDEX "{name}"')

        # Two processes fill the tables side by side (subscribers and SMS log; consent
        # events), so that both cores generate rows while PostgreSQL reads them.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(PARTS), mp_context=spawn) as pool:
            parts = [
                pool.submit(copy_part, part, subscribers, events_per_subscriber, seed, now)
                for part in PARTS
            ]
            for part in parts:
                counts.update(part.result())
        for table in FILLED:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608  (ours)
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
        lap("copy")

        conn.execute("SET maintenance_work_mem = '512MB'")
        for kind, _, _, definition in secondary:
            if kind == "index":
                conn.execute(definition)
        for kind, table, name, definition in secondary:
            if kind == "constraint":
                conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        lap("indexes")
        conn.execute(FOLD)
        conn.execute(BUDGET)
        lap("state")
        conn.execute("VACUUM (ANALYZE) " + ", ".join((*FILLED, STATE)))
        lap("analyze")
        seconds["total"] = round(time.perf_counter() - began, 2)
        rebuilt = [row[0] for row in conn.execute(SCHEMA)]
        if rebuilt != migrated:
            differences = "\n".join(sorted(set(migrated) ^ set(rebuilt)))
            raise SystemExit(f"the schema is not the one the migrations built:\n{differences}")
        in_force = conn.execute(
            """SELECT count(DISTINCT subscriber_id) FROM (
                 SELECT DISTINCT ON (subscriber_id, purpose) subscriber_id, action
                 FROM consent_events ORDER BY subscriber_id, purpose, seq DESC
               ) last WHERE action = 'grant'"""
        ).fetchone()[0]
        sizes = dict(
            conn.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)",
                [list(FILLED)],
            ).fetchall()
        )
    return {
        "seconds": seconds,
        "rows": counts,
        "with_a_grant_in_force": round(in_force / subscribers, 3),
        "megabytes": {t: round(sizes[t] / 2**20) for t in FILLED},
        "seed": seed,
    }
