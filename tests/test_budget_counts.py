"""The SMS budget's counts by minute and hour (``models.SmsBudgetCount``): the database
keeps them as the SMS log is written (migration 0018's triggers), they always equal the
log's own count, and the check before every code reads them instead of the day's
messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask_migrate import upgrade
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, insert, select, text, update

from viihde import create_app
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import BUDGETED_KINDS, SMS_STATUSES, SmsBudgetCount, SmsKind, SmsMessage
from viihde.models.statements import run
from viihde.register import budget, expiry

from .factories import sms_row as message
from .helpers import race
from .settings import SECRET_KEY
from .test_write_paths import _generic_plan, _rows_read, recording

NOW = datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC)


def counted(row) -> bool:
    return row.kind in BUDGETED_KINDS and row.status != "failed"


def stored_counts() -> dict[tuple[str, datetime], int]:
    rows = db.session.execute(select(SmsBudgetCount)).scalars()
    return {(row.span, row.starts_at): row.sent for row in rows if row.sent}


def fold_of_the_log() -> dict[tuple[str, datetime], int]:
    """What the counts must be: the log's counted messages, by minute and by hour."""
    folded: dict[tuple[str, datetime], int] = {}
    for row in db.session.execute(
        select(SmsMessage.kind, SmsMessage.status, SmsMessage.created_at)
    ):
        if counted(row):
            minute = row.created_at.replace(second=0, microsecond=0)
            for key in (("minute", minute), ("hour", minute.replace(minute=0))):
                folded[key] = folded.get(key, 0) + 1
    return folded


OPERATIONS = st.one_of(
    st.tuples(
        st.just("add"),
        st.sampled_from(list(SmsKind)),
        st.sampled_from(SMS_STATUSES),
        st.integers(min_value=0, max_value=180),  # seconds before NOW, across minutes
    ),
    st.tuples(
        st.just("status"), st.integers(min_value=0, max_value=20), st.sampled_from(SMS_STATUSES)
    ),
    st.tuples(st.just("delete"), st.integers(min_value=0, max_value=20)),
    st.tuples(
        st.just("kind"), st.integers(min_value=0, max_value=20), st.sampled_from(list(SmsKind))
    ),
    st.tuples(st.just("time"), st.integers(min_value=0, max_value=20), st.integers(0, 180)),
)


#: An operation that changes a message: the column it changes.
CHANGES = {"status": "status", "kind": "kind", "time": "created_at"}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(st.lists(OPERATIONS, min_size=1, max_size=4), max_size=6))
def test_the_counts_always_equal_the_logs_own_count(app_context, steps):
    """Any messages of any kind and status written, failed, sent after all, changed in kind
    or time, or deleted, a few to a transaction: after every commit the counts by minute
    and hour are the log's."""
    db.session.execute(delete(SmsMessage))
    db.session.execute(delete(SmsBudgetCount))
    db.session.commit()
    for transaction in steps:
        for operation in transaction:
            ids = db.session.scalars(select(SmsMessage.id).order_by(SmsMessage.id)).all()
            if operation[0] == "add":
                _, kind, status, seconds = operation
                created = NOW - timedelta(seconds=seconds)
                db.session.execute(insert(SmsMessage).values(message(created, kind, status)))
            elif ids and operation[0] in CHANGES:
                _, index, value = operation
                if operation[0] == "time":
                    value = NOW - timedelta(seconds=value)
                db.session.execute(
                    update(SmsMessage)
                    .where(SmsMessage.id == ids[index % len(ids)])
                    .values({CHANGES[operation[0]]: value})
                )
            elif ids:
                db.session.execute(
                    delete(SmsMessage).where(SmsMessage.id == ids[operation[1] % len(ids)])
                )
        db.session.commit()  # PostgreSQL's triggers run now
        assert stored_counts() == fold_of_the_log()


def test_a_rolled_back_message_is_not_counted(app_context):
    db.session.execute(insert(SmsMessage).values(message(NOW)))
    db.session.rollback()
    assert stored_counts() == {}


def test_the_budget_reads_the_counts_to_the_minute(app_context):
    """A message every 30 seconds for 25 hours (every seventh failed) and a campaign's
    thousand in the last hour: the hour and the day are the counted messages since the
    start of the minute an hour and a day ago, and each first minute is the window's."""
    times = [NOW - timedelta(seconds=30 * i) for i in range(3000)]
    rows = [message(t, status="failed" if i % 7 == 0 else "sent") for i, t in enumerate(times)]
    rows += [message(NOW - timedelta(seconds=i), SmsKind.CAMPAIGN) for i in range(1000)]
    db.session.execute(insert(SmsMessage), rows)
    db.session.commit()

    hour_from = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    day_from = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    log = [r for r in rows if r["kind"] == SmsKind.CODE and r["status"] != "failed"]
    sent = budget._Sent(*run(*budget.sent_counts(NOW)).one())
    assert sent.hour == sum(r["created_at"] >= hour_from for r in log)
    assert sent.day == sum(r["created_at"] >= day_from for r in log)
    assert sent.first_minute_in_hour == hour_from
    assert sent.first_minute_in_day == day_from
    # Nothing the exact window counts is left out: at most the first minute's more.
    assert 0 <= sent.day - sum(r["created_at"] > NOW - timedelta(days=1) for r in log) <= 2


@pytest.mark.parametrize("config_overrides", [{"SMS_DAILY_LIMIT": 3}])
def test_a_failed_message_frees_its_budget_at_once(app, app_context):
    """A message the provider refused cost nothing: the budget stops counting it when it
    fails, and counts it again if it is sent after all."""
    ids = [
        db.session.execute(
            insert(SmsMessage).values(message(NOW)).returning(SmsMessage.id)
        ).scalar()
        for _ in range(3)
    ]
    db.session.commit()
    assert budget.sms_pause(NOW) is not None
    db.session.execute(update(SmsMessage).where(SmsMessage.id == ids[0]).values(status="failed"))
    db.session.commit()
    assert budget.sms_pause(NOW) is None
    db.session.execute(update(SmsMessage).where(SmsMessage.id == ids[0]).values(status="sent"))
    db.session.commit()
    assert budget.sms_pause(NOW) is not None


@pytest.mark.usefixtures("needs_postgresql")
@pytest.mark.parametrize(
    "config_overrides", [{"SMS_HOURLY_LIMIT": 100_000, "SMS_DAILY_LIMIT": 100_000}]
)
def test_the_budget_reads_a_few_counts_not_the_days_messages(app, app_context):
    """10,000 budgeted messages and 10,000 campaign messages in a day: the check before a
    code reads at most the hour's 61 minutes, the day's 24 hours and 60 minutes, and a
    first minute of each, off the primary key, also once PostgreSQL plans it generically
    and two months of counts are kept (it read every message of the day before, 1.7 ms
    of PostgreSQL at 3,600)."""
    rows = [message(NOW - timedelta(seconds=8 * i)) for i in range(10_000)]
    rows += [message(NOW - timedelta(seconds=8 * i), SmsKind.CAMPAIGN) for i in range(10_000)]
    db.session.execute(insert(SmsMessage), rows)
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(SmsBudgetCount)) > 1_300  # 22 hours
    # And the counts of two months before, as they are kept with the log they count.
    db.session.execute(
        text(
            "INSERT INTO sms_budget_counts (span, starts_at, sent) SELECT 'minute', "
            ":start + i * interval '1 minute', 1 FROM generate_series(1, 86400) AS i"
        ),
        {"start": NOW - timedelta(days=62)},
    )
    db.session.commit()
    # The rows' old versions gone, as autovacuum leaves them (each message above rewrote its
    # hour's row once: 450 versions of each).
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE sms_budget_counts")
    with recording(app) as record:
        assert budget.sms_pause(NOW) is None
    ((sql, values),) = record.executed
    plan = _generic_plan(sql, values)
    assert "sms_messages" not in repr(plan)
    assert _rows_read(plan) <= 61 + 1 + 24 + 60 + 1, plan


def test_messages_written_at_once_are_all_counted(app):
    """Eight transactions add to the same minute's and hour's counts at the same moment,
    twice over (each waits for the commit before it on PostgreSQL): none is lost."""

    def add_two() -> None:
        db.session.execute(insert(SmsMessage).values(message(NOW)))
        db.session.execute(insert(SmsMessage).values(message(NOW, status="queued")))

    for _ in range(2):
        race(*[add_two] * 8, app=app)
    with app.app_context():
        minute = NOW.replace(second=0)
        assert stored_counts() == {("minute", minute): 32, ("hour", minute.replace(minute=0)): 32}


def test_the_retention_purge_forgets_counts_with_the_log(app_context):
    """Counts older than the SMS log's retention go with its messages; newer ones stay."""
    cutoff = NOW - timedelta(days=90)
    for created in (cutoff - timedelta(minutes=1), cutoff + timedelta(minutes=1)):
        db.session.execute(insert(SmsMessage).values(message(created)))
    db.session.commit()
    expiry.purge_sms_log(cutoff, dry_run=False)
    db.session.commit()
    newer = (cutoff + timedelta(minutes=1)).replace(second=0)
    kept = db.session.execute(select(SmsBudgetCount.span, SmsBudgetCount.starts_at)).all()
    assert sorted(kept) == [("hour", newer.replace(minute=0)), ("minute", newer)]
    assert stored_counts() == fold_of_the_log()


def test_the_migration_counts_the_last_two_days_of_the_log(empty_database):
    """0018 starts the counts from the log's messages of the last two days (the budget's
    windows are at most one), counted as the triggers count them from then on, on either
    database (PostgreSQL's by date_trunc in UTC, SQLite's by the text of the times)."""
    uri = empty_database
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": uri}
    )
    now = utcnow()
    rows = [
        message(now - timedelta(minutes=5)),
        message(now - timedelta(minutes=5), status="failed"),
        message(now - timedelta(minutes=5), SmsKind.CAMPAIGN),
        message(now - timedelta(hours=30), SmsKind.WELCOME),
        message(now - timedelta(days=3)),
    ]
    with app.app_context():
        upgrade(revision="0017")
        with db.engine.begin() as connection:
            connection.execute(insert(SmsMessage.__table__), rows)
        upgrade()
        expected = {}
        for created in (now - timedelta(minutes=5), now - timedelta(hours=30)):
            minute = created.replace(second=0, microsecond=0)
            expected |= {("minute", minute): 1, ("hour", minute.replace(minute=0)): 1}
        assert stored_counts() == expected  # not the failed, the campaign's, the old one
        db.session.execute(insert(SmsMessage).values(message(now)))  # the triggers count on
        db.session.commit()
        minute = now.replace(second=0, microsecond=0)
        assert stored_counts()[("minute", minute)] == 1 + expected.get(("minute", minute), 0)
        db.session.remove()
        db.engine.dispose()


def test_messages_failing_and_written_at_once_never_wait_for_each_other(app):
    """Codes written while others of the same minute fail (a delivery callback, the
    sweep), all committing at once, round after round: each takes the hour's count and
    then the minute's, so no two wait for each other crosswise (PostgreSQL would abort
    one as a deadlock), and the counts stay the log's."""
    with app.app_context():
        for _ in range(8):
            db.session.execute(insert(SmsMessage).values(message(NOW)))
        db.session.commit()
        ids = db.session.scalars(select(SmsMessage.id)).all()

    def fail(message_id: int):
        return lambda: db.session.execute(
            update(SmsMessage).where(SmsMessage.id == message_id).values(status="failed")
        )

    def add() -> None:
        db.session.execute(insert(SmsMessage).values(message(NOW)))

    for round_ in range(2):
        race(*[fail(i) for i in ids[4 * round_ : 4 * round_ + 4]], *[add] * 4, app=app)
    with app.app_context():
        assert stored_counts() == fold_of_the_log()
        minute = NOW.replace(second=0)
        assert stored_counts()[("minute", minute)] == 8  # 8 written, 8 failed, 8 more written
