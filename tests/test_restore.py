"""After a restore to an earlier moment (docs/deploy.md, "Restore"): the erasures and the
withdrawals made since are read off the failed database and made again on the restored
one, so that nobody erased comes back and nobody who stopped marketing gets it again.

Each test runs a register on SQLite files of its own: the "backup" is a copy taken at the
restore point (VACUUM INTO), the "failed" database goes on after it."""

from __future__ import annotations

import sqlite3
import stat
from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import select, text

from viihde.clock import HELSINKI, utcnow
from viihde.extensions import db
from viihde.models import (
    AuditAction,
    AuditEntry,
    ConsentEvent,
    ConsentSource,
    ErasureSource,
    Holding,
    Tombstone,
)
from viihde.register import consent, erasure, holders, lookup

from . import factories
from .helpers import app_on, number_in_clear

ERASED, STOPPED, KEPT, LATE = (factories.number(n) for n in (1, 2, 3, 4))


def register_on(path):
    return app_on(f"sqlite:///{path}")


def back_up(tmp_path) -> None:
    """The backup of the failed register at this moment: the restore point."""
    with closing(sqlite3.connect(tmp_path / "failed.sqlite3")) as live:
        live.execute("VACUUM INTO ?", (str(tmp_path / "backup.sqlite3"),))


def changes_since(app, moment: datetime, files) -> str:
    """``flask register changes-since`` on ``app``'s register; its output."""
    result = app.test_cli_runner().invoke(
        args=["register", "changes-since", moment.isoformat(),
              "--tombstones", str(files[0]), "--withdrawals", str(files[1])],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with app.app_context():
        db.engine.dispose()
    return result.output


@pytest.fixture
def failed_and_restored(tmp_path):
    """Three subscribers before the restore point; after it one erased, one stopped, one
    new and erased. The failed register's changes since, in two files; the restored
    register (the backup at the restore point)."""
    start = utcnow() - timedelta(hours=3)
    failed = register_on(tmp_path / "failed.sqlite3")
    with failed.app_context():
        upgrade()
    factories.subscribers(failed, {1: ("offers",), 2: ("offers",), 3: ("offers",)}, at=start)
    restore_point = start + timedelta(hours=1)
    back_up(tmp_path)
    after = restore_point + timedelta(minutes=30)
    with failed.app_context():
        erasure.erase(ERASED, ErasureSource.SUBJECT, after)
        stopped = lookup.subscriber_by_phone(STOPPED).id
        context = consent.ConsentContext(ConsentSource.PREFERENCE_PAGE)
        consent.set_consent(stopped, ["offers"], False, context, after)
        db.session.commit()
    factories.subscriber(failed, LATE, at=after + timedelta(minutes=1))
    with failed.app_context():
        erasure.erase(LATE, ErasureSource.STAFF, after + timedelta(minutes=2))
        db.session.commit()
    files = tmp_path / "tombstones.csv", tmp_path / "withdrawals.csv"
    output = changes_since(failed, restore_point.astimezone(HELSINKI), files)  # another zone
    assert "Erasures written: 2" in output and "Withdrawals written: 1" in output
    return files, register_on(tmp_path / "backup.sqlite3")


def reapply(app, files, *options):
    result = app.test_cli_runner().invoke(args=["register", "reapply", *map(str, files), *options])
    assert result.exit_code == 0, result.output
    assert not number_in_clear(result.output), "a number in clear in the output"
    return result.output


def test_the_restored_register_keeps_the_erasures_and_withdrawals_made_since(
    failed_and_restored,
):
    files, restored = failed_and_restored
    with restored.app_context():  # as the backup brought it back
        assert lookup.subscriber_by_phone(ERASED) is not None
        assert consent.current_consent(lookup.subscriber_by_phone(STOPPED).id)["offers"]
    output = reapply(restored, files)
    assert "Numbers erased again: 1" in output
    assert "Tombstones kept (nothing of it here): 1" in output
    assert "Purposes withdrawn again: 1" in output
    with restored.app_context():
        assert lookup.subscriber_by_phone(ERASED) is None
        stopped = lookup.subscriber_by_phone(STOPPED)
        assert not consent.current_consent(stopped.id)["offers"]
        assert consent.latest_events(stopped.id)["offers"].source == ConsentSource.PREFERENCE_PAGE
        assert consent.current_consent(lookup.subscriber_by_phone(KEPT).id)["offers"]
        erased = {erasure.tombstone_hash(ERASED), erasure.tombstone_hash(LATE)}
        assert erased <= set(db.session.scalars(select(Tombstone.phone_hash)))
        entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(e.action, e.subject_hash) for e in entries] == [
            (AuditAction.ERASE, erasure.tombstone_hash(ERASED)),
            (AuditAction.ERASE, erasure.tombstone_hash(LATE)),  # its tombstone only
            (AuditAction.WITHDRAW, erasure.tombstone_hash(STOPPED)),
            (AuditAction.ERASE, None),  # the run's counts: an erasure entry without a subject
        ]
        assert all("again after a restore" in entry.detail for entry in entries[:3])
        assert entries[3].detail.startswith("again after a restore: ")
        assert "erased=1" in entries[3].detail and "withdrawn=1" in entries[3].detail
        db.session.rollback()
    # Meanwhile the erased number signs up anew, the stopped one takes offers again.
    factories.subscriber(restored, ERASED, at=utcnow())
    factories.subscriber(restored, STOPPED, at=utcnow())
    with restored.app_context():
        db.engine.dispose()
    again = reapply(restored, files)  # twice: nothing more, and nobody new touched
    assert "Numbers erased again: 0" in again and "Purposes withdrawn again: 0" in again
    assert "Erased already: 2" in again and "Granted again since (left as they are): 1" in again
    with restored.app_context():
        assert lookup.subscriber_by_phone(ERASED) is not None
        assert consent.current_consent(lookup.subscriber_by_phone(STOPPED).id)["offers"]


def test_a_dry_run_changes_nothing(failed_and_restored):
    files, restored = failed_and_restored
    output = reapply(restored, files, "--dry-run")
    assert "Numbers would be erased again: 1" in output and "Dry run" in output
    with restored.app_context():
        assert lookup.subscriber_by_phone(ERASED) is not None
        assert db.session.scalar(select(db.func.count()).select_from(AuditEntry)) == 0


def test_bad_rows_are_named_by_file_and_line_and_a_bad_file_changes_nothing(failed_and_restored):
    files, restored = failed_and_restored
    tombstones, withdrawals = files
    good = withdrawals.read_text()
    withdrawals.write_text("number,purpose\n")
    result = restored.test_cli_runner().invoke(args=["register", "reapply", *map(str, files)])
    assert result.exit_code != 0 and "nothing was changed" in result.output
    assert "the withdrawals file: the header (line 1) lacks" in result.output
    with restored.app_context():
        assert lookup.subscriber_by_phone(ERASED) is not None
        db.engine.dispose()
    withdrawals.write_text(
        good + f"{factories.number(9)},offers,preference_page,subject,yesterday\n"
    )
    tombstones.write_text(
        tombstones.read_text() + "not-a-hash,subject,2026-01-01T00:00:00+00:00,\n"
    )
    output = reapply(restored, files)
    assert "Bad rows (skipped): 2" in output
    assert "line 4: erasures: not a tombstone's hash" in output
    assert "line 3: withdrawals: bad time" in output
    assert "Numbers erased again: 1" in output  # the good rows all the same


def test_changes_since_needs_a_zone_and_keeps_its_files_private(tmp_path):
    """Also on a failed register whose record of the hash key cannot be read: the command
    copies hashes, it makes none, and writes nothing but its audit entry."""
    app = register_on(tmp_path / "register.sqlite3")
    with app.app_context():
        upgrade()
        db.session.execute(text("DROP TABLE register_keys"))
        db.session.commit()
        db.engine.dispose()
    files = tmp_path / "t.csv", tmp_path / "w.csv"
    args = ["--tombstones", str(files[0]), "--withdrawals", str(files[1])]
    runner = app.test_cli_runner()
    naive = runner.invoke(args=["register", "changes-since", "2026-12-07T10:00:00", *args])
    assert naive.exit_code != 0 and "zone" in naive.output
    moment = datetime(2026, 12, 7, 10, tzinfo=UTC).isoformat()
    assert runner.invoke(args=["register", "changes-since", moment, *args]).exit_code == 0
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    # The register is empty: both files hold their header alone.
    assert [file.read_text().count("\n") for file in files] == [1, 1]


def held_three_days(tmp_path, now):
    """The failed register, migrated, ERASED signed up three days before ``now``."""
    failed = register_on(tmp_path / "failed.sqlite3")
    with failed.app_context():
        upgrade()
    factories.subscriber(failed, ERASED, at=now - timedelta(days=3))
    return failed


def change_hands(failed, now) -> None:
    """ERASED passed to a new holder two days before ``now``, who signed up a day later."""
    with failed.app_context():
        changed_on = (now - timedelta(days=2)).date().isoformat()
        holders.sync_holders(
            ["number,changed_on", f"{ERASED},{changed_on}"], now - timedelta(days=2), ("FI",)
        )
        db.session.commit()
    factories.subscriber(failed, ERASED, at=now - timedelta(days=1))  # the new holder


@pytest.mark.parametrize("changed_hands", ["before", "after"])
def test_a_holders_own_erasure_is_made_again_and_the_earlier_holders_proof_kept(
    tmp_path, changed_hands
):
    """The number changed hands, and its new holder erased their own holding after the
    restore point (the earlier holder's records stay as proof of that person's consent).
    Changed before the restore point: the restored register erases that holding again,
    and only it. Changed after it: the restored register knows no new holder (the holder
    file is run again), but keeps the erasure's tombstone, so that no import of the new
    holder's purchase brings them back."""
    now = utcnow()
    failed = held_three_days(tmp_path, now)

    if changed_hands == "before":
        change_hands(failed, now)
    back_up(tmp_path)
    if changed_hands == "after":
        change_hands(failed, now)
    with failed.app_context():
        subscriber = lookup.subscriber_by_phone(ERASED)
        erasure.erase_own(subscriber.id, ErasureSource.SUBJECT, now - timedelta(minutes=30))
        db.session.commit()
    files = tmp_path / "t.csv", tmp_path / "w.csv"
    assert "Erasures written: 1" in changes_since(failed, now - timedelta(hours=1), files)
    restored = register_on(tmp_path / "backup.sqlite3")
    output = reapply(restored, files)
    with restored.app_context():
        held = db.session.scalars(select(Holding).order_by(Holding.id)).all()
        kept = db.session.scalars(select(ConsentEvent.holding_id)).all()
        assert kept and set(kept) == {held[0].id}  # the earlier holder's proof only
        assert erasure.tombstone_hash(ERASED) in db.session.scalars(select(Tombstone.phone_hash))
        assert lookup.subscriber_by_phone(ERASED) is not None
        if changed_hands == "before":
            assert "Holdings erased again: 1" in output
            assert [h.erased_at is not None for h in held] == [False, True]
        else:
            assert "Tombstones kept (nothing of it here): 1" in output
            assert [h.erased_at is not None for h in held] == [False]
        db.engine.dispose()
    assert "Erased already: 1" in reapply(restored, files)


def test_an_erasure_made_while_nobody_held_the_number_is_not_made_again_as_the_whole(tmp_path):
    """The new holder erased their holding, then (a link from the answer to HELP) erased
    again while nobody held the number: that second erasure removed only what came after
    the holding. Made again on the restored register it does the same, and the earlier
    holder's proof of consent stays (before: reapply erased the whole number)."""
    now = utcnow()
    failed = held_three_days(tmp_path, now)
    change_hands(failed, now)
    back_up(tmp_path)
    with failed.app_context():
        subscriber_id = lookup.subscriber_by_phone(ERASED).id
        erasure.erase_own(subscriber_id, ErasureSource.SUBJECT, now - timedelta(minutes=30))
        db.session.commit()
        erasure.erase_own(subscriber_id, ErasureSource.SUBJECT, now - timedelta(minutes=20))
        db.session.commit()
        earlier = db.session.scalars(select(ConsentEvent.holding_id)).all()
        assert earlier  # the earlier holder's proof, in the failed register too
    files = tmp_path / "t.csv", tmp_path / "w.csv"
    assert "Erasures written: 2" in changes_since(failed, now - timedelta(hours=1), files)
    restored = register_on(tmp_path / "backup.sqlite3")

    reapply(restored, files)

    with restored.app_context():
        held = db.session.scalars(select(Holding).order_by(Holding.id)).all()
        kept = db.session.scalars(select(ConsentEvent.holding_id)).all()
        assert kept and set(kept) == {held[0].id}
        assert [h.erased_at is not None for h in held] == [False, True]
        assert lookup.subscriber_by_phone(ERASED) is not None
        db.engine.dispose()


def test_a_stops_refusal_made_since_the_restore_point_is_kept_again(tmp_path):
    """A number not in the register texted STOP after the restore point: its refusal (a
    keyed hash and a time) travels in the tombstones' file and is kept again, once, so that
    a purchase from before the STOP still brings no marketing."""
    from viihde.models import Refusal
    from viihde.register.replies import handle_inbound

    now = utcnow()
    failed = register_on(tmp_path / "failed.sqlite3")
    with failed.app_context():
        upgrade()
    back_up(tmp_path)
    with failed.app_context():
        handle_inbound("twilio", "SM" + "2" * 32, LATE, "STOP", now - timedelta(minutes=10))
        db.session.commit()
    files = tmp_path / "t.csv", tmp_path / "w.csv"
    assert "Erasures written: 1" in changes_since(failed, now - timedelta(hours=1), files)
    restored = register_on(tmp_path / "backup.sqlite3")

    assert "STOP refusals kept again: 1" in reapply(restored, files)
    assert "STOP refusals kept again: 0" in reapply(restored, files)
    with restored.app_context():
        hashes = db.session.scalars(select(Refusal.phone_hash)).all()
        assert hashes == [erasure.tombstone_hash(LATE)]
        assert lookup.subscriber_by_phone(LATE) is None  # a refusal erases nobody
        db.engine.dispose()


def test_a_file_the_failed_database_could_not_give_whole_is_not_left_half_written(
    tmp_path, monkeypatch
):
    """A damaged database fails partway: the file it failed for is removed (half a file
    would pass for the whole), the other one is written, and the command fails."""
    from sqlalchemy.exc import OperationalError

    from viihde.register import restore

    app = register_on(tmp_path / "register.sqlite3")
    with app.app_context():
        upgrade()

    def damaged(moment, out):
        out.write(",".join(restore.WITHDRAWAL_COLUMNS) + "\n")
        raise OperationalError("SELECT", {}, Exception("could not read block"))

    monkeypatch.setattr(restore, "write_withdrawals", damaged)
    files = tmp_path / "t.csv", tmp_path / "w.csv"
    result = app.test_cli_runner().invoke(
        args=["register", "changes-since", "2026-12-07T10:00:00+00:00",
              "--tombstones", str(files[0]), "--withdrawals", str(files[1])],
    )  # fmt: skip
    assert result.exit_code != 0
    assert (
        "withdrawals (OperationalError" in result.output and "Erasures written: 0" in result.output
    )
    assert files[0].exists() and not files[1].exists()


def test_reapply_on_the_suites_register(app, runner, tmp_path):
    """The same on the suite's register (PostgreSQL in CI): the files as changes-since
    writes them; the phones streamed off a server-side cursor, the tombstone's moment
    compared as the database keeps it."""
    at = utcnow() - timedelta(hours=2)
    factories.subscribers(app, {1: ("offers",), 2: ("offers",)}, at=at)
    erased_at = (at + timedelta(minutes=30)).astimezone(HELSINKI)
    tombstones, withdrawals = tmp_path / "t.csv", tmp_path / "w.csv"
    with app.app_context():
        phone_hash = erasure.tombstone_hash(ERASED)
    tombstones.write_text(
        f"phone_hash,source,erased_at,holding_id\n{phone_hash},subject,{erased_at.isoformat()},\n"
    )
    withdrawals.write_text(
        "number,purpose,source,actor,withdrawn_at\n"
        f"{STOPPED},offers,sms_keyword,staff:7,{erased_at.isoformat()}\n"
    )
    first = runner.invoke(args=["register", "reapply", str(tombstones), str(withdrawals)])
    assert (
        "Numbers erased again: 1" in first.output and "Purposes withdrawn again: 1" in first.output
    )
    with app.app_context():
        assert lookup.subscriber_by_phone(ERASED) is None
        event = consent.latest_events(lookup.subscriber_by_phone(STOPPED).id)["offers"]
        assert (event.action, event.source, event.actor) == ("withdraw", "sms_keyword", "system")
        db.session.rollback()
    again = runner.invoke(args=["register", "reapply", str(tombstones), str(withdrawals)])
    assert (
        "Erased already: 1" in again.output
        and "Not granted here (left as they are): 1" in again.output
    )
