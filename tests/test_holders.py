"""Number-holder changes: a reassigned number never gets the previous holder's marketing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from viihde import consent, holders
from viihde.extensions import db
from viihde.models import AuditEntry, ConsentEvent, Subscriber

from .conftest import PERSONAL_NUMBER

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CHANGED_ON = "2026-11-20"  # starts at 2026-11-19 22:00 UTC (00:00 in Helsinki)
BEFORE = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
AFTER = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SIGNUP = consent.ConsentContext("signup")
NUMBER = "+358401234567"
OTHER = "+358501234568"
HEADER = "number,changed_on"


@pytest.fixture
def clock():
    with freeze_time(NOW) as frozen:
        yield frozen


def signed_up(app, number: str, purposes: list[str], at: datetime) -> int:
    """A subscriber who granted ``purposes`` at ``at``; their id."""
    with app.app_context():
        subscriber = consent.subscribe(number, purposes, SIGNUP, at)
        db.session.commit()
        return subscriber.id


def state(app, subscriber_id: int) -> dict[str, bool]:
    """The subscriber's current consent, granted purposes only."""
    with app.app_context():
        return {p: on for p, on in consent.current_consent(subscriber_id).items() if on}


def link_key(app, subscriber_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(Subscriber.link_key).where(Subscriber.id == subscriber_id))


def event_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ConsentEvent))


def sync(runner, tmp_path, body: str, *options: str, header: str = HEADER):
    """Run ``flask register sync-holders`` on a CSV with ``body`` under ``header``."""
    path = tmp_path / "holders.csv"
    path.write_text(f"{header}\n{body}", encoding="utf-8")
    result = runner.invoke(args=["register", "sync-holders", str(path), *options])
    assert not PERSONAL_NUMBER.search(result.output), "a number in clear in the output"
    return result


def test_grants_before_the_change_are_withdrawn_with_source_register_update(
    app, runner, tmp_path, clock
):
    """Every grant the previous holder gave is withdrawn by the system, as a register update."""
    subscriber_id = signed_up(app, NUMBER, ["offers", "new_content"], BEFORE)

    result = sync(runner, tmp_path, f"040 123 4567,{CHANGED_ON}\n")

    assert result.exit_code == 0, result.output
    assert state(app, subscriber_id) == {}
    with app.app_context():
        withdrawals = db.session.scalars(
            select(ConsentEvent).where(ConsentEvent.action == "withdraw")
        ).all()
        assert sorted(e.purpose for e in withdrawals) == ["new_content", "offers"]
        assert {(e.source, e.actor, e.created_at) for e in withdrawals} == {
            ("register_update", "system", NOW)
        }
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sync_holders"))
        assert entry.actor.startswith("cli:")
        assert entry.detail == "rows=1 bad=0 matched=1 withdrawn=2 links_revoked=1"
    assert "Numbers matched: 1" in result.output
    assert "Consents withdrawn: 2" in result.output


def test_a_grant_on_or_after_the_change_date_stays(app, app_context):
    """The new holder's own grants stay; the day starts at midnight in Helsinki."""
    subscriber = consent.subscribe(
        NUMBER, ["offers"], SIGNUP, datetime(2026, 11, 19, 21, 59, tzinfo=UTC)
    )
    db.session.commit()
    midnight_in_helsinki = datetime(2026, 11, 19, 22, 0, tzinfo=UTC)
    consent.set_consent(subscriber.id, ["competitions"], True, SIGNUP, midnight_in_helsinki)

    report = holders.sync_holders([HEADER, f"{NUMBER},{CHANGED_ON}"], NOW, ["FI"])

    assert consent.current_consent(subscriber.id) == {
        "offers": False,
        "new_content": False,
        "competitions": True,
    }
    assert (report.numbers_matched, report.consents_withdrawn) == (1, 1)


def test_a_number_whose_grants_are_all_newer_is_left_alone(app, runner, tmp_path, clock):
    """Nothing to withdraw: the new holder's links keep working too."""
    subscriber_id = signed_up(app, NUMBER, ["offers"], AFTER)
    key = link_key(app, subscriber_id)

    result = sync(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n")

    assert result.exit_code == 0, result.output
    assert state(app, subscriber_id) == {"offers": True}
    assert link_key(app, subscriber_id) == key
    assert "Numbers matched: 1" in result.output
    assert "Consents withdrawn: 0" in result.output


def test_the_previous_holders_links_stop_working_and_no_sms_goes_out(
    app, runner, tmp_path, visitor, outbox
):
    """Links already sent (and browsers that opened one) stop working; the new holder
    is not texted a link to the previous holder's preferences."""
    with freeze_time(BEFORE):
        visitor.sign_up("040 123 4567")
    link = outbox.last_link().removeprefix("https://viihdepaketti.fi")
    browser = app.test_client()
    assert browser.get(link).status_code == 302
    sent = len(outbox.messages())

    with freeze_time(NOW):
        result = sync(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n")

    assert result.exit_code == 0, result.output
    assert app.test_client().get(link).status_code == 404
    assert browser.get("/preferences").status_code == 404
    assert len(outbox.messages()) == sent


def test_bad_rows_are_reported_by_line_and_skipped_while_good_rows_apply(
    app, runner, tmp_path, clock
):
    """Line numbers count the header as line 1; a bad row never stops the good ones."""
    first = signed_up(app, NUMBER, ["offers"], BEFORE)
    second = signed_up(app, OTHER, ["offers"], BEFORE)
    body = (
        f"{NUMBER},{CHANGED_ON}\n"  # line 2
        f"12345,{CHANGED_ON}\n"  # line 3
        "0401234599,20.11.2026\n"  # line 4
        "0401234599,2026-11-26\n"  # line 5: tomorrow
        "0401234599\n"  # line 6
        "\n"  # line 7: blank, ignored
        f"050 123 4568,{CHANGED_ON}\n"  # line 8
        "0401234599,2026-02-30\n"  # line 9
    )

    result = sync(runner, tmp_path, body)

    assert result.exit_code == 0, result.output
    assert state(app, first) == {}
    assert state(app, second) == {}
    assert "Rows read: 7" in result.output
    assert "Bad rows (skipped): 5" in result.output
    assert "line 3: not a mobile number (too_short)" in result.output
    assert "line 4: bad date (YYYY-MM-DD expected)" in result.output
    assert "line 5: future date" in result.output
    assert "line 6: missing column" in result.output
    assert "line 9: bad date (YYYY-MM-DD expected)" in result.output
    assert "line 2:" not in result.output
    assert "line 8:" not in result.output
    assert "Consents withdrawn: 2" in result.output


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("a bug"),
        OperationalError("SELECT", {"phone": NUMBER}, Exception("database is locked")),
    ],
    ids=["bug", "database"],
)
def test_a_failure_midway_applies_nothing_and_exits_non_zero(
    app, runner, tmp_path, clock, monkeypatch, failure
):
    """All the good rows or none: the first number's withdrawal is rolled back too."""
    first = signed_up(app, NUMBER, ["offers"], BEFORE)
    second = signed_up(app, OTHER, ["offers"], BEFORE)
    keys = link_key(app, first), link_key(app, second)
    events = event_count(app)
    append = consent._append
    calls = []

    def fails_second_time(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise failure
        return append(*args, **kwargs)

    monkeypatch.setattr(consent, "_append", fails_second_time)

    result = sync(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n{OTHER},{CHANGED_ON}\n")

    assert len(calls) == 2
    assert result.exit_code != 0
    assert state(app, first) == {"offers": True}
    assert state(app, second) == {"offers": True}
    assert (link_key(app, first), link_key(app, second)) == keys
    assert event_count(app) == events
    with app.app_context():
        assert (
            db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sync_holders")) is None
        )


def test_unknown_numbers_are_harmless(app, runner, tmp_path, clock):
    """A number nobody in the register has changes nothing."""
    subscriber_id = signed_up(app, NUMBER, ["offers"], BEFORE)
    events = event_count(app)

    result = sync(runner, tmp_path, f"{OTHER},{CHANGED_ON}\n")

    assert result.exit_code == 0, result.output
    assert state(app, subscriber_id) == {"offers": True}
    assert event_count(app) == events
    assert "Numbers matched: 0" in result.output
    assert "Consents withdrawn: 0" in result.output


@pytest.mark.parametrize(
    "written",
    ["040 123 4567", "0401234567", "+358401234567", "+358 40 123 4567", "00358401234567"],
)
def test_numbers_are_matched_in_any_format_people_write(app, runner, tmp_path, clock, written):
    """The register's numbers are E.164; the file's are whatever its maker typed."""
    subscriber_id = signed_up(app, NUMBER, ["offers"], BEFORE)

    result = sync(runner, tmp_path, f'"{written}",{CHANGED_ON}\n')

    assert result.exit_code == 0, result.output
    assert state(app, subscriber_id) == {}


def test_a_semicolon_separated_file_with_a_bom_is_read(app, runner, tmp_path, clock):
    """Spreadsheets in Finnish locales save ";" separated files, often with a BOM."""
    subscriber_id = signed_up(app, NUMBER, ["offers"], BEFORE)
    path = tmp_path / "holders.csv"
    path.write_bytes(f"\ufeffNumber;Changed_on\r\n040 123 4567;{CHANGED_ON}\r\n".encode())

    result = runner.invoke(args=["register", "sync-holders", str(path)])

    assert result.exit_code == 0, result.output
    assert state(app, subscriber_id) == {}


def test_a_file_without_the_date_column_is_refused(app, runner, tmp_path, clock):
    """A header without changed_on: nothing is read or changed, and the command fails."""
    subscriber_id = signed_up(app, NUMBER, ["offers"], BEFORE)

    result = sync(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n", header="number,date")

    assert result.exit_code != 0
    assert "changed_on" in result.output
    assert state(app, subscriber_id) == {"offers": True}


def test_a_dry_run_reports_the_changes_and_makes_none(app, runner, tmp_path, clock):
    """The counts of a real run; the ledger and the links as they were."""
    subscriber_id = signed_up(app, NUMBER, ["offers", "competitions"], BEFORE)
    key = link_key(app, subscriber_id)
    events = event_count(app)

    result = sync(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Consents would be withdrawn: 2" in result.output
    assert "Dry run: nothing was changed." in result.output
    assert state(app, subscriber_id) == {"offers": True, "competitions": True}
    assert link_key(app, subscriber_id) == key
    assert event_count(app) == events
    with app.app_context():  # only what changes the register is audited
        assert (
            db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sync_holders")) is None
        )
