"""The customer-relationship basis: buyers imported from the customer register are
marketed the company's own similar products until they refuse, and the ledger says so."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError
from twilio.request_validator import RequestValidator

from viihde.extensions import db
from viihde.models import AuditEntry, ConsentEvent, InboundMessage, LawfulBasis, Refusal, Subscriber
from viihde.register import (
    access,
    api_tokens,
    consent,
    customers,
    erasure,
    holders,
    lookup,
    purchases,
)
from viihde.tokens import preference_url

from . import factories
from .helpers import form_fields, import_customers, race, step_up, sync_holders
from .settings import PUBLIC_BASE_URL

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIGNED_UP = NOW - timedelta(days=30)
PURCHASED = "2026-05-01"
NUMBER = "+358401234567"
OTHER = "+358501234568"
HEADER = "number,purchased_on"
SIGNUP = consent.ConsentContext("signup")
PAGE = consent.ConsentContext("preference_page")
TWILIO_TOKEN = "test-auth-token"
ENGLISH = {"Accept-Language": "en"}


@pytest.fixture
def config_overrides() -> dict:
    return {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "TWILIO_FROM": "+358401110000"}


@pytest.fixture
def clock():
    # The rate limiter's counters keep real time: they expire by their own clock.
    with freeze_time(NOW, ignore=["limits"]) as frozen:
        yield frozen


def imported(runner, tmp_path, body: str = f"{NUMBER},{PURCHASED}\n") -> None:
    result = import_customers(runner, tmp_path, body)
    assert result.exit_code == 0, result.output


def subscriber_id(app, number: str = NUMBER) -> int | None:
    with app.app_context():
        return db.session.scalar(select(Subscriber.id).where(Subscriber.phone_e164 == number))


def ledger(app, number: str = NUMBER) -> list[tuple]:
    """The number's events as (action, purpose, basis, purchased_on, source)."""
    with app.app_context():
        return [
            (e.action, e.purpose, e.basis, e.purchased_on, e.source)
            for e in db.session.scalars(
                select(ConsentEvent)
                .join(Subscriber)
                .where(Subscriber.phone_e164 == number)
                .order_by(ConsentEvent.seq)
            )
        ]


def granted(app, number: str = NUMBER) -> dict[str, bool]:
    subscriber = subscriber_id(app, number)
    with app.app_context():
        state = consent.current_consent(subscriber)
        return {purpose: on for purpose, on in state.items() if on}


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def audit_entries(app) -> list[AuditEntry]:
    with app.app_context():
        entries = list(
            db.session.scalars(select(AuditEntry).where(AuditEntry.action == "import_customers"))
        )
        db.session.expunge_all()
        return entries


def link_path(app, number: str = NUMBER) -> str:
    """The path of the number's preference link (as every SMS carries it)."""
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber).where(Subscriber.phone_e164 == number))
        return preference_url(subscriber.id, subscriber.link_key).removeprefix(PUBLIC_BASE_URL)


CUSTOMER_GRANTS = [
    ("grant", "offers", "customer", date(2026, 5, 1), "customer_import"),
    ("grant", "new_content", "customer", date(2026, 5, 1), "customer_import"),
]


# The import


def test_buyers_are_marketed_as_customers_with_the_purchase_day_in_the_ledger(
    app, runner, tmp_path, clock
):
    """The company's own similar products only (CUSTOMER_PURPOSES), basis customer, by the
    system; the run is audited under the operator's name."""
    result = import_customers(runner, tmp_path, f"040 123 4567,{PURCHASED}\n{OTHER},2025-01-15\n")

    assert result.exit_code == 0, result.output
    assert ledger(app) == CUSTOMER_GRANTS
    assert granted(app, OTHER) == {"offers": True, "new_content": True}
    with app.app_context():
        events = db.session.scalars(select(ConsentEvent)).all()
        assert {(e.actor, e.created_at, e.consent_text_version) for e in events} == {
            ("system", NOW, "customer-1")
        }
        subscriber = db.session.scalar(select(Subscriber).where(Subscriber.phone_e164 == NUMBER))
        assert subscriber.language == "fi"
        assert subscriber.created_at == subscriber.confirmed_at == NOW
    (entry,) = audit_entries(app)
    assert entry.actor.startswith("cli:")
    assert entry.detail == (
        "rows=2 bad=0 repeated=0 erased=0 stopped=0 previous_holder=0 added=2 granted=4 renewed=0 "
        "already_granted=0 refused=0"
    )
    assert "Customers added to the register: 2" in result.output
    assert "Purposes granted as a customer: 4" in result.output


def test_the_latest_grant_names_the_basis_the_campaign_sender_reads(app, runner, tmp_path, clock):
    """What the sender needs: the latest grant for the purpose carries basis customer."""
    imported(runner, tmp_path)
    customer = subscriber_id(app)
    with app.app_context():
        latest = consent.latest_events(customer)
        assert {purpose: event.basis for purpose, event in latest.items()} == {
            "offers": "customer",
            "new_content": "customer",
        }
        assert consent.has_consent(customer, "offers")
        assert not consent.has_consent(customer, "competitions")


def test_a_new_customers_language_comes_from_the_file(app, runner, tmp_path, clock):
    """The optional language column: for numbers new to the register; bad ones are reported."""
    body = f"{NUMBER},{PURCHASED},sv\n{OTHER},{PURCHASED},de\n"
    result = import_customers(runner, tmp_path, body, header="number,purchased_on,language")

    assert result.exit_code == 0, result.output
    with app.app_context():
        assert lookup.subscriber_by_phone(NUMBER).language == "sv"
        assert lookup.subscriber_by_phone(OTHER) is None
    assert "line 3: unknown language (one of fi, sv, en)" in result.output


def test_a_subscribers_own_language_is_kept(app, runner, tmp_path, clock):
    with app.app_context():
        consent.subscribe(NUMBER, [], SIGNUP, NOW, language="en")
        db.session.commit()
    result = import_customers(
        runner, tmp_path, f"{NUMBER},{PURCHASED},sv\n", header="number,purchased_on,language"
    )
    assert result.exit_code == 0, result.output
    assert "Purposes granted as a customer: 2" in result.output
    with app.app_context():
        assert lookup.subscriber_by_phone(NUMBER).language == "en"


def test_a_consent_already_given_keeps_its_basis(app, runner, tmp_path, clock):
    """Someone who consented stays on the consent basis: nothing is recorded over it."""
    factories.subscriber(app, NUMBER, ["offers", "new_content", "competitions"], at=SIGNED_UP)
    before = ledger(app)

    result = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n")

    assert result.exit_code == 0, result.output
    assert ledger(app) == before
    assert {basis for _, _, basis, _, _ in before} == {"consent"}
    assert "Customers added to the register: 0" in result.output
    assert "Purposes granted already (left as they were): 2" in result.output


def test_a_refusal_stands_and_only_untouched_purposes_are_granted(app, runner, tmp_path, clock):
    """A purpose switched off is never switched back on; one never asked about is granted."""
    subscriber = factories.subscriber(app, NUMBER, ["offers", "competitions"], at=SIGNED_UP)
    with app.app_context():
        consent.set_consent(subscriber, ["offers"], False, PAGE, NOW - timedelta(days=1))
        db.session.commit()
    before = ledger(app)

    result = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n")

    assert result.exit_code == 0, result.output
    assert ledger(app) == [
        *before,
        ("grant", "new_content", "customer", date(2026, 5, 1), "customer_import"),
    ]
    assert granted(app) == {"new_content": True, "competitions": True}
    assert "Purposes refused earlier (left refused): 1" in result.output
    assert "Purposes granted as a customer: 1" in result.output


def test_someone_who_stopped_all_marketing_gets_nothing_new(app, runner, tmp_path, clock):
    """After STOP, even a purpose the person never had stays off: they refused marketing."""
    subscriber = factories.subscriber(app, NUMBER, ["competitions"], at=SIGNED_UP)
    with app.app_context():
        consent.withdraw_all(subscriber, consent.ConsentContext("sms_keyword"), NOW)
        db.session.commit()
    before = ledger(app)

    result = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n")

    assert result.exit_code == 0, result.output
    assert ledger(app) == before
    assert granted(app) == {}
    assert "Purposes refused earlier (left refused): 2" in result.output


def test_a_customer_refused_earlier_is_not_granted_again(app, runner, tmp_path, clock):
    """Importing the same buyers again (next month's file) changes nothing."""
    imported(runner, tmp_path)
    customer = subscriber_id(app)
    with app.app_context():
        consent.withdraw_all(customer, PAGE, NOW)
        db.session.commit()
    before = ledger(app)

    clock.tick(timedelta(days=30))
    imported(runner, tmp_path, f"{NUMBER},2026-12-20\n")

    assert ledger(app) == before
    assert granted(app) == {}


def test_only_configured_customer_purposes_are_granted(app, runner, tmp_path, clock):
    """CUSTOMER_PURPOSES outside CONSENT_PURPOSES are not offered, so never granted."""
    app.config["CONSENT_PURPOSES"] = ["offers", "competitions"]
    imported(runner, tmp_path)
    assert [purpose for _, purpose, _, _, _ in ledger(app)] == ["offers"]


@pytest.mark.parametrize(
    "cell", ["358405556677.0", "401234567.0", "+358401234567.0", "3.58401234567E11"]
)
def test_a_number_saved_from_a_spreadsheets_number_column_is_a_bad_row(
    app, runner, tmp_path, clock, cell
):
    """ "358405556677.0" read its ".0" as one more digit: +3584055566770, a valid number and
    someone else's. Such a cell is a bad row that says how to save the column; nothing is
    added (the holder file, which reads its rows the same way, likewise)."""
    result = import_customers(runner, tmp_path, f"{cell},{PURCHASED}\n")

    assert result.exit_code == 0, result.output
    assert (
        "line 2: a spreadsheet number (.0 or E at its end): save the column as text"
        in result.output
    )
    assert count(app, Subscriber) == 0


def test_a_number_typed_with_dots_ending_in_zeros_is_read(app, runner, tmp_path, clock):
    """ "040.123.45.00" is how some people write +358401234500: not a spreadsheet's cell."""
    result = import_customers(runner, tmp_path, f"040.123.45.00,{PURCHASED}\n")
    assert result.exit_code == 0, result.output
    assert subscriber_id(app, "+358401234500") is not None


def test_bad_rows_are_reported_by_line_and_skipped_while_good_rows_apply(
    app, runner, tmp_path, clock
):
    """Line numbers count the header as line 1; nothing about a bad row is imported."""
    body = (
        f"{NUMBER},{PURCHASED}\n"  # line 2
        f"12345,{PURCHASED}\n"  # line 3
        f"09 123 4567,{PURCHASED}\n"  # line 4: a landline
        f"+46 70 123 45 67,{PURCHASED}\n"  # line 5: a Swedish mobile
        "0401234599,1.5.2026\n"  # line 6
        "0401234599,2026-11-26\n"  # line 7: tomorrow
        "0401234599,2024-11-24\n"  # line 8: 24 months and a day ago
        "0401234599\n"  # line 9
        "\n"  # line 10: blank, ignored
        "0401234599,2026-02-30\n"  # line 11
        f"050 123 4568,{PURCHASED}\n"  # line 12
    )

    result = import_customers(runner, tmp_path, body)

    assert result.exit_code == 0, result.output
    assert "Rows read: 10" in result.output
    assert "Bad rows (skipped): 8" in result.output
    assert "line 3: not a mobile number (too_short)" in result.output
    assert "line 4: not a mobile number (" in result.output
    assert "line 5: not a mobile number (" in result.output
    assert "line 6: bad date (YYYY-MM-DD expected)" in result.output
    assert "line 7: future date" in result.output
    assert "line 8: purchase too old (over 24 months ago)" in result.output
    assert "line 9: missing column" in result.output
    assert "line 11: bad date (YYYY-MM-DD expected)" in result.output
    assert "line 2:" not in result.output and "line 12:" not in result.output
    assert ledger(app) == CUSTOMER_GRANTS
    assert granted(app, OTHER) == {"offers": True, "new_content": True}
    assert subscriber_id(app, "+358401234599") is None
    assert count(app, Subscriber) == 2


def test_the_relationship_lasts_the_configured_months_to_the_day(app, clock):
    """24 months ago today is in; a day earlier is too old; today is fine, tomorrow is not."""
    rules = purchases.Rules(["FI"], ["fi"], "fi", 24)
    report = purchases.ImportReport()
    lines = [HEADER, f"{NUMBER},2024-11-25", f"{OTHER},2026-11-25", "0401234599,2024-11-24"]
    with app.app_context():
        read = purchases.read_purchases(lines, NOW, rules, report)
    assert [p.purchased_on for p in read] == [date(2024, 11, 25), date(2026, 11, 25)]
    assert [(bad.line, bad.reason) for bad in report.bad_rows] == [
        (4, "purchase too old (over 24 months ago)")
    ]


def test_a_repeated_number_counts_its_latest_purchase(app, runner, tmp_path, clock):
    body = f"{NUMBER},2026-01-10\n{NUMBER},{PURCHASED}\n{NUMBER},2026-03-01\n"
    result = import_customers(runner, tmp_path, body)

    assert result.exit_code == 0, result.output
    assert ledger(app) == CUSTOMER_GRANTS
    assert "Rows repeating a number (its latest purchase counts): 2" in result.output


def test_a_number_erased_after_the_purchase_is_not_brought_back(app, runner, tmp_path, clock):
    """The owner asked to be forgotten after buying: the old purchase cannot re-add them."""
    with app.app_context():
        erasure.erase(NUMBER, "subject", datetime(2026, 6, 1, 9, tzinfo=UTC))
        db.session.commit()
        erasure.erase(OTHER, "subject", datetime(2026, 4, 1, 9, tzinfo=UTC))
        db.session.commit()

    result = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n{OTHER},{PURCHASED}\n")

    assert result.exit_code == 0, result.output
    assert subscriber_id(app) is None
    assert ledger(app, OTHER) == CUSTOMER_GRANTS  # erased before buying: a new relationship
    assert "Numbers erased after the purchase (skipped): 1" in result.output


def test_an_erasure_on_the_day_of_the_purchase_counts_as_after_it(app, runner, tmp_path, clock):
    """The day starts at midnight in Helsinki (21:00 UTC in summer)."""
    with app.app_context():
        erasure.erase(NUMBER, "subject", datetime(2026, 4, 30, 21, 0, tzinfo=UTC))
        db.session.commit()
    imported(runner, tmp_path)
    assert subscriber_id(app) is None


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("a bug"),
        OperationalError("INSERT", {"phone": NUMBER}, Exception("database is locked")),
    ],
    ids=["bug", "database"],
)
def test_a_failure_midway_imports_nothing_and_exits_non_zero(
    app, runner, tmp_path, clock, monkeypatch, failure
):
    """All the good rows or none: the first buyer's subscriber and grants are rolled back."""
    append = consent.append
    calls = []

    def fails_second_time(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise failure
        return append(*args, **kwargs)

    monkeypatch.setattr(consent, "append", fails_second_time)

    result = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n{OTHER},{PURCHASED}\n")

    assert len(calls) == 2
    assert result.exit_code != 0
    assert count(app, Subscriber) == 0
    assert count(app, ConsentEvent) == 0
    assert audit_entries(app) == []


def test_a_dry_run_reports_the_import_and_makes_none(app, runner, tmp_path, clock):
    """The counts of a real run; the register as it was, and no audit entry."""
    factories.subscriber(app, OTHER, ["offers"], at=SIGNED_UP)
    events = count(app, ConsentEvent)

    result = import_customers(
        runner, tmp_path, f"{NUMBER},{PURCHASED}\n{OTHER},{PURCHASED}\n", "--dry-run"
    )

    assert result.exit_code == 0, result.output
    assert "Customers would be added to the register: 1" in result.output
    assert "Purposes would be granted as a customer: 3" in result.output
    assert "Dry run: nothing was changed." in result.output
    assert subscriber_id(app) is None
    assert count(app, ConsentEvent) == events
    assert audit_entries(app) == []


def test_a_semicolon_separated_file_with_a_bom_is_read(app, runner, tmp_path, clock):
    path = tmp_path / "customers.csv"
    path.write_bytes(f"\ufeffNumber;Purchased_on\r\n040 123 4567;{PURCHASED}\r\n".encode())
    result = runner.invoke(args=["register", "import-customers", str(path)])
    assert result.exit_code == 0, result.output
    assert ledger(app) == CUSTOMER_GRANTS


def test_a_file_without_the_purchase_date_is_refused(app, runner, tmp_path, clock):
    result = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n", header="number,date")
    assert result.exit_code != 0
    assert "purchased_on" in result.output
    assert count(app, Subscriber) == 0


def test_a_customer_grant_needs_the_purchase_day(app_context):
    """The ledger never says "customer" without the purchase it rests on."""
    context = consent.ConsentContext("customer_import", basis=LawfulBasis.CUSTOMER)
    with pytest.raises(ValueError, match="purchase"):
        consent.subscribe(NUMBER, ["offers"], context, NOW)
    db.session.rollback()


# Refusing: the same one tap or STOP, and the ledger says "the customer refused"


def test_one_tap_stop_all_ends_customer_grants_and_keeps_their_basis(app, runner, tmp_path, clock):
    """The preference link opens the page, which tells a customer how to refuse."""
    imported(runner, tmp_path)
    browser = app.test_client()
    browser.get(link_path(app))
    page = browser.get("/preferences", headers=ENGLISH)
    assert page.text.count("You get these as our customer. Switch this off to refuse them.") == 2

    browser.post("/preferences", data={**form_fields(page.text), "stop_all": "x"})

    assert granted(app) == {}
    assert ledger(app)[2:] == [
        ("withdraw", "offers", "customer", date(2026, 5, 1), "preference_page"),
        ("withdraw", "new_content", "customer", date(2026, 5, 1), "preference_page"),
    ]
    assert "as our customer" not in browser.get("/preferences", headers=ENGLISH).text


def test_switching_a_customer_purpose_on_again_is_a_consent(app, runner, tmp_path, clock):
    """Once the person chooses themselves, the basis is their consent."""
    imported(runner, tmp_path)
    customer = subscriber_id(app)
    with app.app_context():
        consent.set_consent(customer, ["offers"], False, PAGE, NOW)
        db.session.commit()
        consent.set_consent(customer, ["offers"], True, PAGE, NOW)
        db.session.commit()
    assert [event[:3] for event in ledger(app)[2:]] == [
        ("withdraw", "offers", "customer"),
        ("grant", "offers", "consent"),
    ]


def texted(app, body: str, sender: str = NUMBER):
    """A signed reply from ``sender`` to our number, as Twilio delivers it."""
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": sender,
        "To": "+358401110000",
        "Body": body,
    }
    url = f"{PUBLIC_BASE_URL}/webhooks/twilio/inbound"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    return app.test_client().post(
        "/webhooks/twilio/inbound", data=params, headers={"X-Twilio-Signature": signature}
    )


def test_a_stop_from_a_number_not_yet_in_the_register_keeps_its_purchase_out(
    app, runner, tmp_path, clock
):
    """A buyer who texts STOP before the purchase register is imported: the STOP (kept as
    their reply, with no subscriber to record it on) stands against that purchase. A
    START since lifts it; a STOP before the purchase does not count (the purchase is a new
    relationship, offered its own refusal)."""
    assert texted(app, "STOP").status_code == 200
    assert texted(app, "Lopeta", sender=OTHER).status_code == 200
    clock.tick(timedelta(minutes=1))
    assert texted(app, "START", sender=OTHER).status_code == 200
    third = "+358401234599"
    with freeze_time(datetime(2026, 4, 20, 9, tzinfo=UTC)):
        assert texted(app, "STOP", sender=third).status_code == 200
    assert count(app, Subscriber) == 0

    result = import_customers(
        runner, tmp_path, f"{NUMBER},{PURCHASED}\n{OTHER},{PURCHASED}\n{third},{PURCHASED}\n"
    )

    assert result.exit_code == 0, result.output
    assert "Numbers that texted STOP after the purchase (skipped): 1" in result.output
    assert subscriber_id(app) is None
    assert ledger(app, OTHER) == CUSTOMER_GRANTS
    assert ledger(app, third) == CUSTOMER_GRANTS


def test_a_strangers_stop_outlives_the_sms_log_it_came_in(app, runner, tmp_path, clock):
    """A STOP from a number not in the register, 400 days ago: the purge has removed the
    reply itself (the SMS log keeps a year), but the refusal it left (a keyed hash, no
    number) still keeps out a purchase from before it, for as long as one can be imported."""
    with freeze_time(NOW - timedelta(days=400)):
        assert texted(app, "STOP").status_code == 200
    assert runner.invoke(args=["register", "purge"]).exit_code == 0
    assert count(app, InboundMessage) == 0
    with app.app_context():
        (refusal,) = db.session.scalars(select(Refusal)).all()
        assert refusal.phone_hash == erasure.tombstone_hash(NUMBER)
    bought = (NOW - timedelta(days=430)).date().isoformat()

    result = import_customers(runner, tmp_path, f"{NUMBER},{bought}\n")

    assert result.exit_code == 0, result.output
    assert "Numbers that texted STOP after the purchase (skipped): 1" in result.output
    assert subscriber_id(app) is None


def test_a_stop_with_nothing_to_withdraw_is_kept_and_a_start_lifts_it(app, runner, tmp_path, clock):
    """The number passed to a new holder, who has nothing granted yet and texts STOP: the
    ledger has nothing to record it on, so the refusal keeps it after the SMS log's year
    (the reply purged here); a purchase from before it is skipped. A START lifts it."""
    imported(runner, tmp_path)
    with app.app_context():
        holders.change_holder(NUMBER, NOW - timedelta(days=20), NOW - timedelta(days=20))
        db.session.commit()
    with freeze_time(NOW - timedelta(days=10)):
        assert texted(app, "STOP").status_code == 200
    with app.app_context():
        db.session.execute(delete(InboundMessage))  # the purge, a year on
        db.session.commit()
    bought = (NOW - timedelta(days=15)).date().isoformat()

    skipped = import_customers(runner, tmp_path, f"{NUMBER},{bought}\n")
    assert "Numbers that texted STOP after the purchase (skipped): 1" in skipped.output

    assert texted(app, "START").status_code == 200
    assert count(app, Refusal) == 0
    taken = import_customers(runner, tmp_path, f"{NUMBER},{bought}\n")
    assert "Numbers that texted STOP after the purchase (skipped): 0" in taken.output


def test_stop_by_sms_ends_customer_grants_and_keeps_their_basis(app, runner, tmp_path, clock):
    """A STOP reply to our number: the customer refused, every purpose at once."""
    imported(runner, tmp_path)

    response = texted(app, "Stop")

    assert response.status_code == 200
    assert granted(app) == {}
    assert ledger(app)[2:] == [
        ("withdraw", "offers", "customer", date(2026, 5, 1), "sms_keyword"),
        ("withdraw", "new_content", "customer", date(2026, 5, 1), "sms_keyword"),
    ]


def test_sync_holders_withdraws_a_reassigned_numbers_customer_grants(app, runner, tmp_path, clock):
    """The number passed to a new holder: the previous holder's purchase is not theirs."""
    imported(runner, tmp_path)
    clock.tick(timedelta(days=2))
    path = tmp_path / "holders.csv"
    path.write_text("number,changed_on\n0401234567,2026-11-26\n", encoding="utf-8")

    result = runner.invoke(args=["register", "sync-holders", str(path)])

    assert result.exit_code == 0, result.output
    assert granted(app) == {}
    assert [event[:3] + event[4:] for event in ledger(app)[2:]] == [
        ("withdraw", "offers", "customer", "register_update"),
        ("withdraw", "new_content", "customer", "register_update"),
    ]


def changed_hands(runner, tmp_path, changed_on: str) -> None:
    """The operator's register says the number passed to a new holder on ``changed_on``."""
    result = sync_holders(runner, tmp_path, f"0401234567,{changed_on}\n")
    assert result.exit_code == 0, result.output


def test_the_previous_holders_purchase_gives_the_new_holder_nothing(app, runner, tmp_path, clock):
    """The same customer file again after the number changed hands: that purchase was
    the previous holder's; the new holder's own purchase makes them a customer."""
    imported(runner, tmp_path)
    clock.tick(timedelta(days=2))
    changed_hands(runner, tmp_path, "2026-11-26")

    again = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n")
    assert again.exit_code == 0, again.output
    assert "Purchases before the number passed to a new holder (skipped): 1" in again.output
    assert "Purposes granted as a customer: 0" in again.output
    assert granted(app) == {}

    imported(runner, tmp_path, f"{NUMBER},2026-11-27\n")
    assert granted(app) == {"offers": True, "new_content": True}


def test_a_previous_holders_refusal_does_not_bind_the_new_holder(app, runner, tmp_path, clock):
    """The previous holder stopped all marketing; the number changed hands; its new
    holder buys: they are a customer, the earlier refusal was someone else's."""
    subscriber = factories.subscriber(app, NUMBER, ["offers", "competitions"], at=SIGNED_UP)
    with app.app_context():
        consent.withdraw_all(subscriber, PAGE, NOW - timedelta(days=20))
        db.session.commit()
    changed_hands(runner, tmp_path, "2026-11-20")

    imported(runner, tmp_path, f"{NUMBER},2026-11-22\n")

    assert granted(app) == {"offers": True, "new_content": True}


def test_a_stop_after_a_lapse_stands_at_the_next_purchase(app, runner, tmp_path, clock):
    """The customer marketing lapsed, then the person stopped all marketing: their own
    last word is a refusal, and a new purchase does not override it."""
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n")
    clock.move_to(LATER)
    purged(runner)
    subscriber = factories.subscriber(app, NUMBER, ["competitions"], at=SIGNED_UP)
    with app.app_context():
        consent.withdraw_all(subscriber, PAGE, LATER)
        db.session.commit()

    result = import_customers(runner, tmp_path, f"{NUMBER},2027-01-20\n")

    assert result.exit_code == 0, result.output
    assert "Purposes refused earlier (left refused): 2" in result.output
    assert granted(app) == {}


def test_the_card_says_a_holder_changes_end_of_customer_marketing_is_no_refusal(
    app, runner, tmp_path, clock
):
    imported(runner, tmp_path)
    clock.tick(timedelta(days=2))
    changed_hands(runner, tmp_path, "2026-11-26")
    card = (
        factories.signed_in_staff(app, "support")
        .get(f"/staff/card/{subscriber_id(app)}", headers={"Accept-Language": "en"})
        .text
    )
    assert card.count("Customer marketing ended") == 2
    assert "refused" not in card


# Showing the basis


def test_the_staff_card_shows_each_purposes_basis_and_the_purchase(app, runner, tmp_path, clock):
    imported(runner, tmp_path)
    factories.subscriber(app, OTHER, ["offers"], at=SIGNED_UP)
    support = factories.signed_in_staff(app, "support")

    card = support.get(f"/staff/card/{subscriber_id(app)}", headers=ENGLISH).text
    assert "Offers: <strong>yes</strong> · basis: Customer relationship" in card
    assert "New content: <strong>yes</strong> · basis: Customer relationship" in card
    assert "Competitions: <strong>no</strong></li>" in card
    assert "Customer marketing started: Offers" in card
    assert "Customer register" in card
    assert "purchase 5/1/26" in card
    assert "customer-1" in card

    other = support.get(f"/staff/card/{subscriber_id(app, OTHER)}", headers=ENGLISH).text
    assert "Offers: <strong>yes</strong> · basis: Consent" in other
    assert "Consent given: Offers" in other


def test_the_printed_answer_to_an_access_request_shows_the_basis(app, runner, tmp_path, clock):
    imported(runner, tmp_path)
    support = factories.signed_in_staff(app, "support")

    text = support.get(f"/staff/card/{subscriber_id(app)}/export", headers=ENGLISH).text

    assert "Offers: yes (Customer relationship)" in text
    assert "Customer marketing started: Offers" in text
    assert text.count("Customer relationship (5/1/26)") == 2


def test_a_customer_grants_receipt_names_the_basis_and_purchase(
    app, runner, tmp_path, clock, outbox
):
    imported(runner, tmp_path)
    browser = app.test_client()
    browser.get(link_path(app))
    step_up(browser, outbox)

    text = browser.get("/preferences/receipt/1", headers=ENGLISH).text

    assert "Customer marketing started: Offers" in text
    assert "Customer relationship (purchase 5/1/26)" in text


def test_the_persons_data_page_shows_the_basis_of_each_purpose(
    app, runner, tmp_path, clock, outbox
):
    imported(runner, tmp_path)
    browser = app.test_client()
    browser.get(link_path(app))
    step_up(browser, outbox)
    customer = subscriber_id(app)
    with app.app_context():
        consent.set_consent(customer, ["new_content"], False, PAGE, NOW)
        db.session.commit()

    text = browser.get("/preferences/data", headers=ENGLISH).text

    assert "Offers: <strong>yes</strong> (basis: Customer relationship)" in text
    assert "New content: <strong>no</strong> (basis: Customer relationship)" in text
    assert "Customer marketing refused: New content" in text
    assert text.count("(purchase 5/1/26)") == 3


def test_the_data_export_gives_each_events_basis_and_purchase(app, runner, tmp_path, clock):
    """The JSON (and the CSV built from it) that the person and support download."""
    imported(runner, tmp_path)
    customer = subscriber_id(app)
    with app.app_context():
        consent.set_consent(customer, ["offers"], False, PAGE, NOW)
        db.session.commit()
        data = access.export(NUMBER)
        table = list(csv.DictReader(io.StringIO(access.export_csv(data))))
    assert data["bases"] == {"offers": "customer", "new_content": "customer"}
    assert [(e["action"], e["basis"], e["purchased_on"]) for e in data["consent_events"]] == [
        ("grant", "customer", "2026-05-01"),
        ("grant", "customer", "2026-05-01"),
        ("withdraw", "customer", "2026-05-01"),
    ]
    assert {row["basis"] for row in table if row["record"] == "consent_event"} == {"customer"}
    cli = json.loads(runner.invoke(args=["subject", "export", "0401234567"]).output)
    assert cli["consent_events"][0]["basis"] == "customer"


def test_the_audience_export_names_each_members_basis(app, runner, tmp_path, clock):
    """CSV and JSON Lines: the campaign tool can tell a customer from a consenter."""
    imported(runner, tmp_path)
    factories.subscriber(app, OTHER, ["offers"], at=SIGNED_UP)

    result = runner.invoke(args=["audience", "export", "--purpose", "offers"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["number"], row["basis"]) for row in rows] == [
        (NUMBER, "customer"),
        (OTHER, "consent"),
    ]
    out = tmp_path / "audience.jsonl"
    result = runner.invoke(
        args=["audience", "export", "--purpose", "offers", "--format", "jsonl", "--output", out]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["number"], line["basis"]) for line in lines] == [
        (NUMBER, "customer"),
        (OTHER, "consent"),
    ]


def test_the_audience_api_names_each_members_basis(app, runner, tmp_path, clock):
    imported(runner, tmp_path)
    factories.subscriber(app, OTHER, ["offers"], at=SIGNED_UP)
    with app.app_context():
        token = api_tokens.create("campaign tool", None, NOW)[1]
        db.session.commit()

    response = app.test_client().get(
        "/api/v1/audience?purpose=offers", headers={"Authorization": f"Bearer {token}"}
    )

    assert [(row["number"], row["basis"]) for row in response.get_json()["data"]] == [
        (NUMBER, "customer"),
        (OTHER, "consent"),
    ]


def test_a_refused_customer_is_not_in_the_audience(app, runner, tmp_path, clock):
    imported(runner, tmp_path)
    customer = subscriber_id(app)
    with app.app_context():
        consent.withdraw_all(customer, PAGE, NOW)
        db.session.commit()
    result = runner.invoke(args=["audience", "export", "--purpose", "offers"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("number,")  # the header: an export, and empty
    assert list(csv.DictReader(io.StringIO(result.stdout))) == []


def test_an_import_racing_a_sign_up_gives_one_subscriber_and_an_ordered_ledger(app):
    """The buyer signs up while the import runs: one row, and the consent has the last word."""
    for round_ in range(6):
        number = f"+35840123{round_:04d}"

        def import_one(number=number):
            outcome = customers.grant_as_customer(
                number, date(2026, 5, 1), "fi", customers.CONTEXT, NOW
            )
            db.session.commit()
            return outcome.created

        def sign_up(number=number):
            consent.subscribe(number, ["offers", "new_content", "competitions"], SIGNUP, NOW)
            db.session.commit()

        race(import_one, sign_up, app=app)

        assert subscriber_id(app, number) is not None
        events = ledger(app, number)
        assert events[-3:] == [
            ("grant", purpose, "consent", None, "signup")
            for purpose in ("offers", "new_content", "competitions")
        ]
        assert len(events) in (3, 5)  # the import came first, or found the consent


# The relationship: renewed by a newer purchase, ended when the last one is too old

RENEWED = "Customer grants renewed by a newer purchase"
LAPSED = "customer marketing ended (purchase too long ago)"
#: The first day with 2025-01-15 over 24 months ago (the cutoff is 2025-02-01).
LATER = datetime(2027, 2, 1, 12, 0, tzinfo=UTC)


def purged(runner) -> str:
    result = runner.invoke(args=["register", "purge"])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_newer_purchase_renews_the_customer_grants_with_its_day(app, runner, tmp_path, clock):
    """A new grant per purpose, basis customer, the new purchase day; counted apart."""
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n")
    clock.tick(timedelta(days=1))

    result = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n")

    assert result.exit_code == 0, result.output
    assert ledger(app) == [
        ("grant", "offers", "customer", date(2025, 1, 15), "customer_import"),
        ("grant", "new_content", "customer", date(2025, 1, 15), "customer_import"),
        *CUSTOMER_GRANTS,
    ]
    assert f"{RENEWED}: 2" in result.output
    assert "Purposes granted as a customer: 0" in result.output
    assert "Purposes granted already (left as they were): 0" in result.output
    entry = max(audit_entries(app), key=lambda entry: entry.id)
    assert "granted=0 renewed=2 already_granted=0" in entry.detail


def test_the_same_or_an_older_purchase_renews_nothing(app, runner, tmp_path, clock):
    imported(runner, tmp_path)
    before = ledger(app)

    result = import_customers(runner, tmp_path, f"{NUMBER},2026-03-01\n{OTHER},{PURCHASED}\n")
    again = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n")

    assert ledger(app) == before
    for output in (result.output, again.output):
        assert f"{RENEWED}: 0" in output
        assert "Purposes granted already (left as they were): 2" in output


def test_a_newer_purchase_leaves_a_consent_and_a_refusal_as_they_are(app, runner, tmp_path, clock):
    """Only a grant resting on a purchase is renewed: a consent keeps its basis (and needs
    no purchase), a refusal stands."""
    factories.subscriber(app, NUMBER, ["offers"], at=SIGNED_UP)
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n{OTHER},2025-01-15\n")
    with app.app_context():
        consent.set_consent(subscriber_id(app, OTHER), ["offers"], False, PAGE, NOW)
        db.session.commit()
    before, other_before = ledger(app), ledger(app, OTHER)

    result = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n{OTHER},{PURCHASED}\n")

    assert result.exit_code == 0, result.output
    assert ledger(app) == [
        *before,
        ("grant", "new_content", "customer", date(2026, 5, 1), "customer_import"),
    ]
    assert ledger(app, OTHER) == [
        *other_before,
        ("grant", "new_content", "customer", date(2026, 5, 1), "customer_import"),
    ]
    assert granted(app, OTHER) == {"new_content": True}
    assert f"{RENEWED}: 2" in result.output
    assert "Purposes granted already (left as they were): 1" in result.output
    assert "Purposes refused earlier (left refused): 1" in result.output


def test_a_dry_run_reports_the_renewals_and_records_none(app, runner, tmp_path, clock):
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n")
    before = ledger(app)

    result = import_customers(runner, tmp_path, f"{NUMBER},{PURCHASED}\n", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Customer grants would be renewed by a newer purchase: 2" in result.output
    assert ledger(app) == before


def test_a_renewed_relationship_outlives_its_first_purchase(app, runner, tmp_path, clock):
    """The purge ends a relationship from the latest purchase, not the first."""
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n")
    imported(runner, tmp_path, f"{NUMBER},{PURCHASED}\n")

    clock.move_to(LATER)
    assert f"{LAPSED}: 0" in purged(runner)
    assert granted(app) == {"offers": True, "new_content": True}

    clock.move_to(datetime(2028, 5, 2, 12, tzinfo=UTC))  # 2026-05-01 is over 24 months ago
    assert f"{LAPSED}: 2" in purged(runner)
    assert granted(app) == {}


def test_the_purge_ends_a_relationship_whose_purchase_is_too_old(app, runner, tmp_path, clock):
    """The system withdraws, with its own source; the withdrawal keeps the basis and the
    purchase of the grant it ends."""
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n")

    clock.move_to(LATER)
    assert f"{LAPSED}: 2" in purged(runner)

    assert granted(app) == {}
    assert ledger(app)[2:] == [
        ("withdraw", purpose, "customer", date(2025, 1, 15), "customer_relationship_ended")
        for purpose in ("offers", "new_content")
    ]
    with app.app_context():
        events = db.session.scalars(select(ConsentEvent).where(ConsentEvent.action == "withdraw"))
        assert {(event.actor, event.created_at) for event in events} == {("system", LATER)}


def test_a_buyer_whose_relationship_ended_is_a_customer_again_after_a_new_purchase(
    app, runner, tmp_path, clock
):
    """A lapse is nobody's refusal: a later purchase starts the customer marketing again."""
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n")
    clock.move_to(LATER)
    purged(runner)

    imported(runner, tmp_path, f"{NUMBER},2027-01-20\n")

    assert granted(app) == {"offers": True, "new_content": True}
    assert ledger(app)[4:] == [
        ("grant", purpose, "customer", date(2027, 1, 20), "customer_import")
        for purpose in ("offers", "new_content")
    ]


def test_a_refusal_outlives_the_lapse_of_the_other_customer_grant(app, runner, tmp_path, clock):
    """Refused by the person: stays refused; lapsed: starts again with a new purchase."""
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n")
    with app.app_context():
        consent.set_consent(subscriber_id(app), ["offers"], False, PAGE, NOW)
        db.session.commit()
    clock.move_to(LATER)
    purged(runner)
    assert granted(app) == {}

    imported(runner, tmp_path, f"{NUMBER},2027-01-20\n")

    assert granted(app) == {"new_content": True}


def test_the_cutoff_is_the_one_the_import_uses(app):
    """Purchases on or after it are a relationship (the import takes them); before: over."""
    assert customers.relationship_cutoff(LATER, 24) == date(2025, 2, 1)
    assert customers.relationship_cutoff(NOW, 24) == date(2024, 11, 25)
    # 22:30 UTC on 24 November is already the 25th in Helsinki (UTC+2).
    late = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)
    assert customers.relationship_cutoff(late, 24) == date(2024, 11, 25)


def test_a_consent_given_after_the_search_is_not_withdrawn(app, runner, tmp_path, clock):
    """The buyer signs up between the purge's search and the lock: ``lapse`` reads the
    ledger again under the lock, and only the purpose still resting on the old purchase
    ends."""
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n")
    customer = subscriber_id(app)
    cutoff = customers.relationship_cutoff(LATER, 24)
    with app.app_context():
        found = db.session.execute(customers.lapsed_grants(cutoff)).all()
        assert sorted(found) == [(customer, "new_content"), (customer, "offers")]
        consent.subscribe(NUMBER, ["offers"], SIGNUP, LATER)
        db.session.commit()

        ended = [
            (event.purpose, event.source) for event in customers.lapse(customer, cutoff, LATER)
        ]
        db.session.commit()

    assert ended == [("new_content", "customer_relationship_ended")]
    assert granted(app) == {"offers": True}
    assert ledger(app)[-2:] == [
        ("grant", "offers", "consent", None, "signup"),
        ("withdraw", "new_content", "customer", date(2025, 1, 15), "customer_relationship_ended"),
    ]


def test_lapse_ends_nothing_for_a_customer_within_the_relationship(app, runner, tmp_path, clock):
    imported(runner, tmp_path)
    with app.app_context():
        assert customers.lapse(subscriber_id(app), date(2026, 5, 1), NOW) == []
        assert customers.lapse(-1, date(2026, 5, 2), NOW) == []  # erased meanwhile
    assert len(ledger(app)) == 2


def test_a_customer_whose_relationship_ended_is_not_in_the_audience(app, runner, tmp_path, clock):
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n{OTHER},{PURCHASED}\n")

    clock.move_to(LATER)
    purged(runner)

    result = runner.invoke(args=["audience", "export", "--purpose", "offers"])
    assert result.exit_code == 0, result.output
    assert [row["number"] for row in csv.DictReader(io.StringIO(result.stdout))] == [OTHER]


@pytest.mark.parametrize(
    ("language", "source", "action", "refused"),
    [
        ("en", "Customer relationship ended", "Customer marketing ended", "refused"),
        ("fi", "Asiakkuus päättyi", "Asiakasmarkkinointi päättyi", "kielletty"),
        ("sv", "Kundförhållandet upphörde", "Kundmarknadsföringen upphörde", "nekad"),
    ],
)
def test_the_staff_card_names_the_end_of_the_relationship(
    app, runner, tmp_path, clock, language, source, action, refused
):
    """A lapse is nobody's refusal: the card says the marketing ended, and why."""
    imported(runner, tmp_path, f"{NUMBER},2025-01-15\n")
    clock.move_to(LATER)
    purged(runner)
    support = factories.signed_in_staff(app, "support")

    card = support.get(
        f"/staff/card/{subscriber_id(app)}", headers={"Accept-Language": language}
    ).text

    assert card.count(source) == 2
    assert card.count(action) == 2
    assert refused not in card
