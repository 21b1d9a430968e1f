"""Number-holder changes: a reassigned number never gets the previous holder's marketing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from viihde.extensions import db
from viihde.models import (
    AuditEntry,
    ConsentEvent,
    Subscriber,
    Tombstone,
)
from viihde.register import access, consent, customers, holders, holdings, lookup
from viihde.register.holdings import Whose

from . import factories
from .factories import (
    BEFORE,
    CHANGED_ON,
    NEW_HOLDER,
    NEW_REPLY,
    NEW_SIGNUP,
    NUMBER,
    PREVIOUS_HOLDER,
    PREVIOUS_MARKETING,
    PREVIOUS_REPLY,
    SINCE,
    ChangedHands,
)
from .helpers import Visitor, form_fields, sync_holders

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
AFTER = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SIGNUP = consent.ConsentContext("signup")
OTHER = "+358501234568"
HEADER = "number,changed_on"


@pytest.fixture
def clock():
    with freeze_time(NOW) as frozen:
        yield frozen


def state(app, subscriber_id: int) -> dict[str, bool]:
    """The subscriber's current consent, granted purposes only."""
    with app.app_context():
        return {p: on for p, on in consent.current_consent(subscriber_id).items() if on}


def link_key(app, subscriber_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(Subscriber.link_key).where(Subscriber.id == subscriber_id))


def holder_since(app, subscriber_id: int) -> datetime | None:
    """Since when the number's current holder has held it (None: it has had one holder)."""
    with app.app_context():
        return holdings.holder_since(subscriber_id)


def event_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ConsentEvent))


def test_grants_before_the_change_are_withdrawn_with_source_register_update(
    app, runner, tmp_path, clock
):
    """Every grant the previous holder gave is withdrawn by the system, as a register update."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers", "new_content"], at=BEFORE)

    result = sync_holders(runner, tmp_path, f"040 123 4567,{CHANGED_ON}\n")

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
    db.session.commit()

    report = holders.sync_holders([HEADER, f"{NUMBER},{CHANGED_ON}"], NOW, ["FI"])
    db.session.commit()

    assert consent.current_consent(subscriber.id) == {
        "offers": False,
        "new_content": False,
        "competitions": True,
    }
    assert (report.numbers_matched, report.consents_withdrawn) == (1, 1)


def test_a_number_whose_grants_are_all_newer_is_left_alone(app, runner, tmp_path, clock):
    """The number entered the register after the change: its one holder is the new one,
    nothing is withdrawn and their links keep working."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers"], at=AFTER)
    key = link_key(app, subscriber_id)

    result = sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n")

    assert result.exit_code == 0, result.output
    assert state(app, subscriber_id) == {"offers": True}
    assert link_key(app, subscriber_id) == key
    assert holder_since(app, subscriber_id) is None
    assert "Numbers matched: 1" in result.output
    assert "Consents withdrawn: 0" in result.output


def test_a_new_holder_who_buys_is_marketed_as_a_customer(app, runner, tmp_path, clock):
    """The previous holder's grants ended by the register update are nobody's refusal: the
    new holder's purchase gives the customer basis as for anyone new."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers", "new_content"], at=BEFORE)
    assert sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n").exit_code == 0
    assert state(app, subscriber_id) == {}

    with app.app_context():
        context = consent.ConsentContext("customer_import", actor="system")
        grants = customers.grant_as_customer(NUMBER, AFTER.date(), "fi", context, NOW)
        db.session.commit()
        assert sorted(event.purpose for event in grants.granted) == ["new_content", "offers"]
        assert {event.basis for event in grants.granted} == {"customer"}
    assert state(app, subscriber_id) == {"offers": True, "new_content": True}


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
        result = sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n")

    assert result.exit_code == 0, result.output
    assert app.test_client().get(link).status_code == 404
    assert browser.get("/preferences").status_code == 404
    assert len(outbox.messages()) == sent


def test_bad_rows_are_reported_by_line_and_skipped_while_good_rows_apply(
    app, runner, tmp_path, clock
):
    """Line numbers count the header as line 1; a bad row never stops the good ones."""
    first = factories.subscriber(app, NUMBER, ["offers"], at=BEFORE)
    second = factories.subscriber(app, OTHER, ["offers"], at=BEFORE)
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

    result = sync_holders(runner, tmp_path, body)

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
    first = factories.subscriber(app, NUMBER, ["offers"], at=BEFORE)
    second = factories.subscriber(app, OTHER, ["offers"], at=BEFORE)
    keys = link_key(app, first), link_key(app, second)
    events = event_count(app)
    append = consent.append
    calls = []

    def fails_second_time(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise failure
        return append(*args, **kwargs)

    monkeypatch.setattr(consent, "append", fails_second_time)

    result = sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n{OTHER},{CHANGED_ON}\n")

    assert len(calls) == 2
    assert result.exit_code != 0
    assert state(app, first) == {"offers": True}
    assert state(app, second) == {"offers": True}
    assert (link_key(app, first), link_key(app, second)) == keys
    assert holder_since(app, first) is None
    assert event_count(app) == events
    with app.app_context():
        assert (
            db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sync_holders")) is None
        )


def test_unknown_numbers_are_harmless(app, runner, tmp_path, clock):
    """A number nobody in the register has changes nothing."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers"], at=BEFORE)
    events = event_count(app)

    result = sync_holders(runner, tmp_path, f"{OTHER},{CHANGED_ON}\n")

    assert result.exit_code == 0, result.output
    assert state(app, subscriber_id) == {"offers": True}
    assert holder_since(app, subscriber_id) is None
    assert event_count(app) == events
    assert "Numbers matched: 0" in result.output
    assert "Consents withdrawn: 0" in result.output


@pytest.mark.parametrize(
    "written",
    ["040 123 4567", "0401234567", "+358401234567", "+358 40 123 4567", "00358401234567"],
)
def test_numbers_are_matched_in_any_format_people_write(app, runner, tmp_path, clock, written):
    """The register's numbers are E.164; the file's are whatever its maker typed."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers"], at=BEFORE)

    result = sync_holders(runner, tmp_path, f'"{written}",{CHANGED_ON}\n')

    assert result.exit_code == 0, result.output
    assert state(app, subscriber_id) == {}


def test_a_semicolon_separated_file_with_a_bom_is_read(app, runner, tmp_path, clock):
    """Spreadsheets in Finnish locales save ";" separated files, often with a BOM."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers"], at=BEFORE)
    path = tmp_path / "holders.csv"
    path.write_bytes(f"\ufeffNumber;Changed_on\r\n040 123 4567;{CHANGED_ON}\r\n".encode())

    result = runner.invoke(args=["register", "sync-holders", str(path)])

    assert result.exit_code == 0, result.output
    assert state(app, subscriber_id) == {}


def test_a_file_the_csv_module_cannot_read_is_refused_whole(app, runner, tmp_path, clock):
    """A quote left open runs the rest of the file into one field, past the csv module's
    limit: the command fails saying where, nothing is changed, and no number is shown (it
    was a traceback)."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers"], at=BEFORE)
    rows = f"{NUMBER},{CHANGED_ON}\n" + f'"040 765 4321,{CHANGED_ON}\n' + "x" * 140_000 + "\n"

    result = sync_holders(runner, tmp_path, rows)

    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)  # no traceback
    assert "line 3 cannot be read as CSV" in result.output
    assert "nothing was changed" in result.output and "765" not in result.output
    assert state(app, subscriber_id) == {"offers": True}


def test_a_quote_left_open_is_refused_however_short_the_rest(app, runner, tmp_path, clock):
    """Below the csv module's limit an open quote silently runs the next lines into one
    field (their changes would be lost, the file read "fine"): the file is refused whole,
    naming the line."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers"], at=BEFORE)
    rows = f"{NUMBER},{CHANGED_ON}\n" + f'"040 765 4321,{CHANGED_ON}\n' + "040 111 2222,x\n" * 3

    result = sync_holders(runner, tmp_path, rows)

    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "line 3 has a quote left open: lines 3-6 run into one field" in result.output
    assert "765" not in result.output and "111" not in result.output
    assert state(app, subscriber_id) == {"offers": True}


def test_a_file_without_the_date_column_is_refused(app, runner, tmp_path, clock):
    """A header without changed_on: nothing is read or changed, and the command fails."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers"], at=BEFORE)

    result = sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n", header="number,date")

    assert result.exit_code != 0
    assert "changed_on" in result.output
    assert state(app, subscriber_id) == {"offers": True}


def test_a_dry_run_reports_the_changes_and_makes_none(app, runner, tmp_path, clock):
    """The counts of a real run; the ledger and the links as they were."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers", "competitions"], at=BEFORE)
    key = link_key(app, subscriber_id)
    events = event_count(app)

    result = sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Consents would be withdrawn: 2" in result.output
    assert "Dry run: nothing was changed." in result.output
    assert state(app, subscriber_id) == {"offers": True, "competitions": True}
    assert link_key(app, subscriber_id) == key
    assert holder_since(app, subscriber_id) is None
    assert event_count(app) == events
    with app.app_context():  # only what changes the register is audited
        assert (
            db.session.scalar(select(AuditEntry).where(AuditEntry.action == "sync_holders")) is None
        )


def test_the_sync_records_when_the_number_changed_hands_and_never_moves_it_back(
    app, runner, tmp_path, clock
):
    """The new holding starts at the change's first moment; an older date in a later file
    leaves it, a newer change (the number passed on again) opens another."""
    subscriber_id = factories.subscriber(app, NUMBER, ["offers"], at=BEFORE)
    assert holder_since(app, subscriber_id) is None

    assert sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n").exit_code == 0
    assert holder_since(app, subscriber_id) == SINCE

    assert sync_holders(runner, tmp_path, f"{NUMBER},2026-11-10\n").exit_code == 0
    assert holder_since(app, subscriber_id) == SINCE

    assert sync_holders(runner, tmp_path, f"{NUMBER},2026-11-23\n").exit_code == 0
    assert holder_since(app, subscriber_id) == datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    with app.app_context():
        periods = [(h.started_at, h.ended_at) for h in holdings.of_number(subscriber_id)]
    third = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    assert periods == [(BEFORE, SINCE), (SINCE, third), (third, None)]


# What the new holder and support see of a number that changed hands


@pytest.fixture
def changed_hands(app, runner, outbox, tmp_path) -> ChangedHands:
    return factories.a_number_that_changed_hands(app, runner, outbox, tmp_path)


@pytest.fixture
def support_agent(app, changed_hands):
    """A support agent signed in a few minutes after the new holder's sign-up."""
    with freeze_time(NEW_SIGNUP + timedelta(minutes=5), ignore=["limits"]):
        yield factories.signed_in_staff(app, "support")


def card_of(app) -> str:
    with app.app_context():
        return f"/staff/card/{lookup.subscriber_by_phone(NUMBER).id}"


def test_the_staff_card_marks_the_new_holder_and_keeps_the_whole_history(
    app, changed_hands, support_agent
):
    """Support still sees the previous holder's proof of consent, under a line saying
    since when the number has been someone else's."""
    page = support_agent.get(card_of(app), headers={"Accept-Language": "en"}).text
    assert "New holder since 11/20/26" in page
    assert page.index("New holder since") < page.index("Consent timeline")
    for record in [
        "vanha-kampanja",
        PREVIOUS_MARKETING,
        PREVIOUS_REPLY,
        "uusi-kampanja",
        NEW_REPLY,
    ]:
        assert record in page
    finnish = support_agent.get(card_of(app), headers={"Accept-Language": "fi"}).text
    assert "Uusi haltija 20.11.2026 alkaen" in finnish


def test_the_staff_card_of_a_number_that_never_changed_hands_has_no_such_line(app, support_agent):
    """Only a holder change makes the line: a number the sync never named has none."""
    with app.app_context():
        consent.subscribe(OTHER, ["offers"], SIGNUP, BEFORE)
        db.session.commit()
        other = lookup.subscriber_by_phone(OTHER).id
    page = support_agent.get(f"/staff/card/{other}", headers={"Accept-Language": "en"}).text
    assert "Consent timeline" in page
    assert "New holder since" not in page


def test_the_staff_access_answer_is_the_current_holders_unless_asked_for_the_earlier(
    app, changed_hands, support_agent
):
    """The printed answer and the JSON leave the previous holder's records out, and say
    so; asked for the earlier holding (the previous holder's own request) they hold only
    those records."""
    card = card_of(app)
    english = {"Accept-Language": "en"}
    printed = support_agent.get(f"{card}/export", headers=english).text
    answer = support_agent.get(f"{card}/export.json").text
    for text in (printed, answer):
        for record in changed_hands.previous_holders_data:
            assert record not in text
    assert "uusi-kampanja" in printed and "/[link]" in printed  # its SMS, never a live link
    assert changed_hands.new_link not in printed
    assert "New holder since 11/20/26. Earlier records belong to a previous holder" in printed
    for record in changed_hands.new_holders_data:
        assert record in answer
    assert json.loads(answer)["holdings"] == [{"started_at": SINCE.isoformat(), "ended_at": None}]

    earlier = support_agent.get(f"{card}/export?holding=earlier", headers=english).text
    earlier_answer = support_agent.get(f"{card}/export.json?holding=earlier").text
    for text in (earlier, earlier_answer):
        for record in changed_hands.new_holders_data:
            assert record not in text
    assert "vanha-kampanja" in earlier and PREVIOUS_MARKETING in earlier
    assert "The number passed to a new holder on 11/20/26" in earlier
    for record in changed_hands.previous_holders_data:
        assert record in earlier_answer
    data = json.loads(earlier_answer)
    # As they stood when the number changed hands; then the change withdrew them.
    assert data["consents"] == {"offers": True, "new_content": True, "competitions": True}
    assert [e["source"] for e in data["consent_events"]] == ["signup"] * 3 + ["register_update"] * 3
    assert data["holdings"] == [{"started_at": BEFORE.isoformat(), "ended_at": SINCE.isoformat()}]
    with app.app_context():
        details = db.session.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "export")
        ).all()
    assert details == ["print", "json", "print earlier holder", "json earlier holder"]


def cli_export(runner, *options: str) -> str:
    result = runner.invoke(args=["subject", "export", "040 123 4567", *options])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_cli_export_is_the_current_holders_unless_asked_otherwise(app, runner, changed_hands):
    """`flask subject export` answers as the console does; --holding picks the others."""
    current, earlier, every = (
        cli_export(runner, *options)
        for options in ((), ("--holding", "earlier"), ("--holding", "all"))
    )
    for record in changed_hands.previous_holders_data:
        assert record not in current
        assert record in earlier and record in every
    for record in changed_hands.new_holders_data:
        assert record in current and record in every
        assert record not in earlier
    with app.app_context():
        details = db.session.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "export").order_by(AuditEntry.id)
        ).all()
    assert details[-3:] == ["cli", "cli earlier holder", "cli all holders"]


def test_a_number_that_never_changed_hands_has_no_earlier_holder(app, runner, clock):
    factories.subscriber(app, NUMBER, ["offers"], at=BEFORE)
    result = runner.invoke(args=["subject", "export", NUMBER, "--holding", "earlier"])
    assert result.exit_code == 2
    assert "not changed hands" in result.output


def test_the_new_holder_erases_their_own_holding_and_not_the_previous_proof(
    app, changed_hands, support_agent
):
    """Erasing from the link removes the new holder's records; the previous holder's
    proof of consent stays (with the withdrawals that ended it) for the purge to take."""
    browser = changed_hands.new_holder.client
    page = browser.get("/preferences/erase")
    done = browser.post("/preferences/erase", data={**form_fields(page.text), "understood": "y"})
    assert done.status_code == 200

    card = support_agent.get(card_of(app), headers={"Accept-Language": "en"}).text
    for record in ["vanha-kampanja", PREVIOUS_MARKETING, PREVIOUS_REPLY]:
        assert record in card
    for record in changed_hands.new_holders_data:
        assert record not in card
    with app.app_context():
        subscriber = lookup.subscriber_by_phone(NUMBER)
        assert not any(consent.current_consent(subscriber.id).values())
        sources = {e.source for e in subscriber.consent_events}
        assert sources == {"signup", "register_update"}
        tombstones = db.session.scalar(select(func.count()).select_from(Tombstone))
        assert tombstones == 1
    for link in (changed_hands.previous_link, changed_hands.new_link):
        assert app.test_client().get(link).status_code == 404


def test_a_previous_holders_stop_between_the_change_and_the_sync_leaves_no_trace_of_them(
    app, runner, outbox, tmp_path
):
    """The previous holder stopped all marketing from their link two days after the
    change, before the sync: that is their word, in their holding. The new holder sees
    none of it (nor a receipt of it), and erasing their own holding brings none of the
    previous holder's grants back."""
    previous = Visitor(app.test_client(), outbox)
    previous.client.environ_base.update(PREVIOUS_HOLDER)
    with freeze_time(BEFORE):
        previous.sign_up("040 123 4567", landing="/?utm_campaign=vanha-kampanja")
    link = outbox.last_link()
    with freeze_time(datetime(2026, 11, 22, 9, 0, tzinfo=UTC)):
        path = "/" + link.split("/", 3)[3]  # the link on the test client's own host
        assert previous.client.get(path).status_code == 302
        page = previous.client.get("/preferences")
        stopped = previous.client.post(
            "/preferences", data={**form_fields(page.text), "stop_all": "y"}
        )
        assert stopped.status_code == 302
    with app.app_context():
        stops = db.session.scalars(
            select(ConsentEvent.seq).where(ConsentEvent.source == "preference_page")
        ).all()
    assert stops
    with freeze_time(NOW):
        assert sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n").exit_code == 0
    new_holder = Visitor(app.test_client(), outbox)
    new_holder.client.environ_base.update(NEW_HOLDER)
    with freeze_time(NEW_SIGNUP):
        new_holder.sign_up("040 123 4567")
        browser = new_holder.client
        data = browser.get("/preferences/data.json").text
        assert {e["source"] for e in json.loads(data)["consent_events"]} == {"signup"}
        texts = [
            data,
            browser.get("/preferences/data.csv").text,
            browser.get("/preferences/data").text,
        ]
        for seq in stops:
            assert browser.get(f"/preferences/receipt/{seq}").status_code == 404
        page = browser.get("/preferences/erase")
        erased = browser.post(
            "/preferences/erase", data={**form_fields(page.text), "understood": "y"}
        )
        assert erased.status_code == 200
    for text in texts:
        for trace in (*PREVIOUS_HOLDER.values(), "vanha-kampanja"):
            assert trace not in text
    with app.app_context():
        subscriber = lookup.subscriber_by_phone(NUMBER)
        assert not any(consent.current_consent(subscriber.id).values())
        earlier = access.export(NUMBER, Whose.EARLIER)
    assert "preference_page" in {e["source"] for e in earlier["consent_events"]}


def test_a_previous_holders_refused_basis_is_not_the_new_holders(app, runner, tmp_path):
    """The previous holder refused their customer marketing; the new holder never set
    those purposes: the new holder's access shows no basis for them."""
    with app.app_context():
        context = consent.ConsentContext("customer_import", actor="system")
        grants = customers.grant_as_customer(NUMBER, BEFORE.date(), "fi", context, BEFORE)
        db.session.commit()
        consent.withdraw_all(grants.subscriber.id, SIGNUP, BEFORE + timedelta(days=1))
        db.session.commit()
    with freeze_time(NOW):
        assert sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n").exit_code == 0
    with app.app_context():
        consent.subscribe(NUMBER, ["competitions"], SIGNUP, NEW_SIGNUP)
        db.session.commit()
        assert access.export(NUMBER, Whose.CURRENT)["bases"] == {"competitions": "consent"}
