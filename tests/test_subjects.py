"""The data subject's rights from the CLI: export everything, erase to a tombstone."""

from __future__ import annotations

import json
import os
import pwd
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select, text

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import (
    HOLDING_A_NUMBER,
    AuditEntry,
    ConsentEvent,
    InboundMessage,
    SmsMessage,
    Subscriber,
    Tombstone,
    Verification,
)
from viihde.phone import PhoneError
from viihde.register import consent, lookup
from viihde.register.erasure import tombstone_hash


@pytest.fixture
def subscribed(visitor, outbox):
    """+358401234567 signed up from a campaign; returns the welcome link path."""
    with freeze_time("2026-11-25 12:00:00"):
        visitor.sign_up("040 123 4567", landing="/?utm_source=meta&utm_campaign=talvi")
    return outbox.last_link().removeprefix("https://viihdepaketti.fi")


@pytest.mark.parametrize("number", ["040 123 4567", "+358401234567", "00358 40 1234567"])
def test_export_prints_everything_stored_as_json(runner, subscribed, number):
    """Any accepted format finds the person; the JSON has the promised shape."""
    result = runner.invoke(args=["subject", "export", number])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["number"] == "+358401234567"
    assert data["subscribed"] is True
    assert data["consents"] == {"offers": True, "new_content": True, "competitions": True}
    assert [e["purpose"] for e in data["consent_events"]] == list(data["consents"])
    for event in data["consent_events"]:
        assert event["action"] == "grant"
        assert event["source"] == "signup"
        assert event["utm_campaign"] == "talvi"
        assert event["privacy_notice_version"] and event["consent_text_version"] == "signup-1"
        assert event["created_at"].startswith("2026-11-25T12:00:00")
    assert [m["kind"] for m in data["sms_messages"]] == ["code", "welcome"]


def test_export_never_shows_a_code_in_clear(runner, subscribed, outbox):
    """The code SMS appears in the export with the code redacted."""
    code = outbox.messages()[0]["body"].rsplit("#", 1)[1]
    output = runner.invoke(args=["subject", "export", "0401234567"]).output
    assert code not in output
    assert "******" in output


def test_export_of_an_unknown_number_says_nothing_is_stored(runner, app_context):
    """A number never seen: not subscribed, empty history."""
    data = json.loads(runner.invoke(args=["subject", "export", "0501234567"]).output)
    assert data["subscribed"] is False
    assert data["consent_events"] == data["sms_messages"] == []


def test_export_refuses_what_is_not_a_mobile_number(runner, app_context):
    """A landline is a usage error, not a crash."""
    result = runner.invoke(args=["subject", "export", "09 1234 567"])
    assert result.exit_code == 2
    assert "landline" in result.output


def test_erase_leaves_only_a_tombstone(runner, subscribed, app):
    """After erasure nothing about the number remains but a keyed hash and a time."""
    result = runner.invoke(args=["subject", "erase", "040 123 4567", "--yes"])
    assert result.exit_code == 0, result.output
    assert "401234567" not in result.output
    with app.app_context():
        for model in (Subscriber, ConsentEvent, SmsMessage, Verification):
            assert db.session.scalar(select(func.count()).select_from(model)) == 0
        (tombstone,) = db.session.scalars(select(Tombstone))
        assert tombstone.phone_hash == tombstone_hash("+358401234567")
        assert "401234567" not in tombstone.phone_hash
        assert tombstone.source == "cli"


def test_every_table_that_holds_a_number_is_known_to_erasure_and_restore(app):
    """The tables with a number in clear are the ones erasures delete from and a restore
    reads (``models.HOLDING_A_NUMBER``): a table added with a number fails here first."""
    with_a_number = {
        table.name for table in db.metadata.sorted_tables if "phone_e164" in table.columns
    }
    assert with_a_number == {model.__tablename__ for model in HOLDING_A_NUMBER}


def test_erase_leaves_no_row_of_the_number_in_any_table_that_holds_one(runner, subscribed, app):
    """The code, the SMS log, a reply and the subscriber: none is left of the number."""
    with app.app_context():
        db.session.add(
            InboundMessage(
                provider="twilio",
                message_sid="SM" + "7" * 32,
                phone_e164="+358401234567",
                body="Kiitos",
                keyword=None,
                received_at=datetime(2026, 11, 25, 12, 5, tzinfo=UTC),
            )
        )
        db.session.commit()

    def rows_of_the_number(model) -> int:
        return db.session.scalar(select(func.count()).where(model.phone_e164 == "+358401234567"))

    with app.app_context():  # a table added to the list needs a row here for the test to hold
        assert all(rows_of_the_number(model) for model in HOLDING_A_NUMBER)
    assert runner.invoke(args=["subject", "erase", "040 123 4567", "--yes"]).exit_code == 0
    with app.app_context():
        for model in HOLDING_A_NUMBER:
            assert rows_of_the_number(model) == 0, model.__tablename__


def test_erase_asks_before_it_acts(runner, subscribed, app):
    """Without --yes a 'no' leaves everything in place."""
    result = runner.invoke(args=["subject", "erase", "040 123 4567"], input="n\n")
    assert result.exit_code == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1


def test_links_stop_working_after_erasure(runner, subscribed, app):
    """The welcome link of an erased number gives the 404 page."""
    browser = app.test_client()
    assert browser.get(subscribed).status_code == 302
    runner.invoke(args=["subject", "erase", "+358401234567", "--yes"])
    assert browser.get("/preferences").status_code == 404
    assert app.test_client().get(subscribed).status_code == 404


def test_export_after_erasure_shows_only_the_erasure(runner, subscribed):
    """The tombstone is found by the keyed hash of the number."""
    runner.invoke(args=["subject", "erase", "+358401234567", "--yes"])
    data = json.loads(runner.invoke(args=["subject", "export", "0401234567"]).output)
    assert data["subscribed"] is False
    assert data["consent_events"] == []
    assert len(data["erasures"]) == 1


def test_the_access_answer_shows_a_stops_refusal(app, runner, subscribed):
    """A STOP leaves a refusal, a keyed hash of the number and when: the person's data
    shows it (the JSON and the CSV), as it shows an erasure's tombstone."""
    from viihde.register.access import export_csv
    from viihde.register.replies import handle_inbound

    with app.app_context():
        handle_inbound("twilio", "SM" + "3" * 32, "+358401234567", "STOP", utcnow())
        db.session.commit()
    data = json.loads(runner.invoke(args=["subject", "export", "0401234567"]).output)
    assert len(data["refusals"]) == 1 and data["refusals"][0]["refused_at"]
    assert "\nrefusal," in export_csv(data)


def test_a_new_subscriber_never_inherits_an_erased_subscribers_link(
    runner, subscribed, visitor, outbox, app
):
    """Ids are not reused, so an old link cannot open someone else's page."""
    runner.invoke(args=["subject", "erase", "+358401234567", "--yes"])
    with freeze_time("2026-11-25 13:00:00"):
        visitor.sign_up("050 765 4321")
    assert app.test_client().get(subscribed).status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("040 123 4567", lookup.Search(phone_e164="+358401234567")),
        ("+358 40 123 4567", lookup.Search(phone_e164="+358401234567")),
        ("234567", lookup.Search(last_digits="234567")),
        ("1234 567", lookup.Search(last_digits="1234567")),
        # A valid short number too (+358 45 6789), but typed bare it is a tail.
        ("456789", lookup.Search(last_digits="456789")),
        ("50 123 4567", lookup.Search(last_digits="501234567")),
        ("358401234567", lookup.Search(phone_e164="+358401234567")),
    ],
)
def test_support_search_reads_a_whole_number_or_its_last_digits(query, expected):
    """Any accepted format is a number; six or more digits otherwise are its tail."""
    assert lookup.read_search(query, ["FI"]) == expected


@pytest.mark.parametrize("query", ["4567", "+358 40", "hello"])
def test_support_search_refuses_too_little_or_the_wrong_kind(query):
    """Fewer than six digits, or no number at all, is not something to look up."""
    with pytest.raises(PhoneError):
        lookup.read_search(query, ["FI"])


NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_last_digits_match_only_the_end_of_a_number(app_context):
    """The same answer on both databases: the end of the number, never its middle."""
    for number in ("+358401234567", "+358412345670", "+358501234567"):
        consent.subscribe(number, ["offers"], consent.ConsentContext("signup"), NOW)
    db.session.commit()
    found = [s.phone_e164 for s in lookup.find_by_last_digits("234567")]
    assert found == ["+358401234567", "+358501234567"]
    assert lookup.find_by_last_digits("12345_") == []


def test_last_digits_are_found_through_the_reversed_number_index(app_context):
    """PostgreSQL: the look-up is an index range scan (migration 0008), not a scan of the
    whole register, which at a million people took 100 ms and more."""
    if db.session.get_bind().dialect.name != "postgresql":
        pytest.skip("the expression index is PostgreSQL's")
    db.session.execute(text("SET LOCAL enable_seqscan = off"))
    captured = []

    @sqlalchemy_event.listens_for(db.engine, "before_cursor_execute", retval=True)
    def explain(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "reverse" in statement:
            cursor.execute("EXPLAIN " + statement, parameters)
            captured.append("\n".join(row[0] for row in cursor.fetchall()))
        return statement, parameters

    try:
        lookup.find_by_last_digits("234567")
    finally:
        sqlalchemy_event.remove(db.engine, "before_cursor_execute", explain)
    assert captured and "ix_subscribers_phone_reversed" in captured[0]


ACCOUNT = pwd.getpwuid(os.getuid()).pw_name


@pytest.mark.parametrize(
    ("environment", "actor"),
    [
        ({"LOGNAME": "somebody_else", "USER": "somebody_else"}, f"cli:{ACCOUNT}"),
        ({"SUDO_USER": "alice"}, f"cli:{ACCOUNT} (sudo by alice)"),
    ],
    ids=["LOGNAME and USER set", "under sudo"],
)
def test_a_command_is_audited_as_the_account_it_runs_as(
    runner, subscribed, app, monkeypatch, environment, actor
):
    """The audit names the operating-system account, not LOGNAME or USER (anyone sets
    those: they made an export look like somebody else's), and says whom sudo ran it for."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert runner.invoke(args=["subject", "export", "0401234567"]).exit_code == 0
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry.actor == actor
