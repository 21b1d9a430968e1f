"""The data subject's rights from the link: see, download, erase, sign out the links.

Links get forwarded, so seeing, downloading and erasing need a fresh code to the
number, unless this browser confirmed the number in the last 10 minutes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select

from viihde.extensions import db
from viihde.models import ConsentEvent, Subscriber, Tombstone
from viihde.register import consent, customers

from . import factories
from .factories import (
    BEFORE,
    CHANGED_ON,
    NEW_SIGNUP,
    NUMBER,
    SINCE,
    ChangedHands,
)
from .helpers import Visitor, form_fields, step_up, sync_holders

START = "2026-11-25 12:00:00"
PROTECTED = ["/preferences/data", "/preferences/data.json", "/preferences/data.csv"]


@pytest.fixture
def clock():
    with freeze_time(START) as frozen:
        yield frozen


@pytest.fixture
def link(app, outbox, clock) -> str:
    """+358401234567 signed up (in some other browser) from a campaign."""
    Visitor(app.test_client(), outbox).sign_up("040 123 4567", landing="/?utm_campaign=talvi")
    return outbox.last_link().removeprefix("https://viihdepaketti.fi")


@pytest.fixture
def forwarded(app, link, clock):
    """A browser that only has the link (forwarded, or another device), an hour later."""
    clock.tick(3600)
    browser = app.test_client()
    browser.get(link)
    return browser


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize("path", [*PROTECTED, "/preferences/erase", "/preferences/receipt/1"])
def test_a_forwarded_link_alone_cannot_see_download_or_erase(forwarded, path):
    """Without a fresh code every data page redirects to the step-up page."""
    response = forwarded.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/preferences/verify?next=")


def test_a_forwarded_link_cannot_erase_by_posting_either(forwarded, app):
    """Posting the erase form without the step-up erases nothing."""
    page = forwarded.get("/preferences")
    forwarded.post("/preferences/erase", data={**form_fields(page.text), "understood": "y"})
    assert count(app, Subscriber) == 1
    assert count(app, Tombstone) == 0


def test_step_up_sends_a_code_to_the_number_and_opens_the_data(forwarded, outbox, clock):
    """The code goes to the subscriber's number; the right one leads to the data page."""
    sent_before = len(outbox.messages())
    response = step_up(forwarded, outbox)
    assert response.status_code == 302
    assert response.headers["Location"] == "/preferences/data"
    code_sms = outbox.messages()[sent_before]
    assert code_sms["to"] == "+358401234567"
    assert code_sms["kind"] == "code"
    assert forwarded.get("/preferences/data").status_code == 200


def test_step_up_with_a_wrong_code_shows_the_tries_left(forwarded, outbox):
    """A wrong step-up code is a 400 with the count, and the data stays closed."""
    page = forwarded.get("/preferences/verify")
    forwarded.post("/preferences/verify/send", data={**form_fields(page.text)})
    wrong = "111111" if outbox.last_code() != "111111" else "222222"
    page = forwarded.get("/preferences/verify")
    response = forwarded.post(
        "/preferences/verify",
        data={**form_fields(page.text), "code": wrong},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 400
    assert "4 tries left" in response.text
    assert forwarded.get("/preferences/data").status_code == 302


def test_step_up_codes_follow_the_sign_up_limits(forwarded, outbox, clock):
    """A second code within 60 seconds is refused with a 429 and no SMS."""
    page = forwarded.get("/preferences/verify")
    forwarded.post("/preferences/verify/send", data={**form_fields(page.text)})
    sent = len(outbox.messages())
    page = forwarded.get("/preferences/verify")
    response = forwarded.post("/preferences/verify/send", data={**form_fields(page.text)})
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert len(outbox.messages()) == sent


def test_step_up_lasts_ten_minutes(forwarded, outbox, clock):
    """After 10 minutes the data needs a new code."""
    step_up(forwarded, outbox)
    clock.tick(599)
    assert forwarded.get("/preferences/data").status_code == 200
    clock.tick(2)
    assert forwarded.get("/preferences/data").status_code == 302


def test_signing_up_in_this_browser_counts_as_a_fresh_code(app, outbox, clock):
    """Within 10 minutes of confirming here, the data opens without another code."""
    visitor = Visitor(app.test_client(), outbox)
    visitor.sign_up("050 765 4321")
    assert visitor.client.get("/preferences/data").status_code == 200
    clock.tick(601)
    assert visitor.client.get("/preferences/data").status_code == 302


def test_unsubscribing_never_needs_a_code(forwarded, app):
    """Stop-all works from a forwarded link at once."""
    page = forwarded.get("/preferences")
    response = forwarded.post("/preferences", data={**form_fields(page.text), "stop_all": "x"})
    assert response.headers["Location"] == "/preferences?saved=stopped"
    with app.app_context():
        actions = db.session.scalars(select(ConsentEvent.action)).all()
    assert actions.count("withdraw") == 3


def test_data_page_lists_everything_stored_in_plain_language(forwarded, outbox):
    """The number, current consents, the history with sources, and the SMS sent."""
    step_up(forwarded, outbox)
    page = forwarded.get("/preferences/data", headers={"Accept-Language": "en"})
    assert page.headers["Cache-Control"] == "no-store"
    text = page.text
    assert "+358 40 1234567" in text
    assert "Sign-up form" in text
    assert "talvi" in text
    assert "Welcome message" in text
    assert "Confirmation code" in text
    assert text.count('href="/preferences/receipt/') == 3
    code = outbox.last_code()
    assert code not in text


def test_json_download_is_the_same_as_the_cli_export(forwarded, outbox, runner):
    """The person's download and support's export are one and the same."""
    step_up(forwarded, outbox)
    response = forwarded.get("/preferences/data.json")
    assert response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    cli = json.loads(runner.invoke(args=["subject", "export", "0401234567"]).output)
    assert json.loads(response.text) == cli


def test_csv_download_has_a_row_per_record(forwarded, outbox):
    """One table: each consent event, SMS and code request is a row."""
    step_up(forwarded, outbox)
    response = forwarded.get("/preferences/data.csv")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    records = [row["record"] for row in rows]
    assert records.count("consent_event") == 3
    assert records.count("sms_message") == 3  # sign-up code, welcome, step-up code
    assert {row["number"] for row in rows} == {"'+358401234567"}


def test_csv_download_defuses_spreadsheet_formulas(app, outbox, clock):
    """A campaign value from the URL cannot become a formula in the person's spreadsheet."""
    visitor = Visitor(app.test_client(), outbox)
    visitor.sign_up("050 765 4321", landing="/?utm_campaign=%3DHYPERLINK(%22x%22)")
    response = visitor.client.get("/preferences/data.csv")
    campaigns = {row["utm_campaign"] for row in csv.DictReader(io.StringIO(response.text))}
    assert '\'=HYPERLINK("x")' in campaigns


def test_receipt_shows_the_text_and_versions_consented_to(forwarded, outbox):
    """A printable proof: what text, which version, when, from which campaign."""
    step_up(forwarded, outbox)
    page = forwarded.get("/preferences/receipt/1", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    text = page.text
    assert "Yes, send me Viihdepaketti.fi" in text
    assert "signup-1" in text
    assert "2026-11-25.2" in text
    assert "talvi" in text
    assert "Lucentia Group Oy" in text


def test_receipt_shows_only_the_persons_own_events(app, forwarded, outbox, clock):
    """Receipts are numbered per person: another person's events are out of reach."""
    Visitor(app.test_client(), outbox).sign_up("050 765 4321")
    step_up(forwarded, outbox)
    assert forwarded.get("/preferences/receipt/3").status_code == 200
    assert forwarded.get("/preferences/receipt/4").status_code == 404


def test_erase_explains_then_erases_and_leaves_a_tombstone(forwarded, outbox, app, link):
    """The page says what happens; a ticked confirmation erases everything at once."""
    step_up(forwarded, outbox)
    page = forwarded.get("/preferences/erase", headers={"Accept-Language": "en"})
    assert "cannot be undone" in page.text
    unticked = forwarded.post("/preferences/erase", data={**form_fields(page.text)})
    assert unticked.status_code == 400
    assert count(app, Subscriber) == 1
    done = forwarded.post("/preferences/erase", data={**form_fields(page.text), "understood": "y"})
    assert done.status_code == 200
    assert count(app, Subscriber) == 0
    assert count(app, ConsentEvent) == 0
    assert count(app, Tombstone) == 1
    assert forwarded.get("/preferences").status_code == 404
    assert app.test_client().get(link).status_code == 404


def test_sign_out_my_links_revokes_them_and_texts_a_new_one(forwarded, outbox, app, link):
    """Every earlier link dies; the new one, sent by SMS, works."""
    page = forwarded.get("/preferences")
    response = forwarded.post(
        "/preferences/sign-out",
        data={**form_fields(page.text)},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 200
    assert "+358 40 *** **67" in response.text
    message = outbox.last()
    assert message["kind"] == "link"
    assert message["to"] == "+358401234567"
    new_link = outbox.last_link().removeprefix("https://viihdepaketti.fi")
    assert new_link != link
    assert len(outbox.last_link()) <= 48
    assert forwarded.get("/preferences").status_code == 404
    assert app.test_client().get(link).status_code == 404
    assert app.test_client().get(new_link).status_code == 302


def test_step_up_cannot_be_steered_to_another_site(forwarded, outbox):
    """The 'next' page is one of ours, whatever the URL says."""
    page = forwarded.get("/preferences/verify?next=https://evil.example")
    assert "evil.example" not in " ".join(re.findall(r'action="([^"]*)"', page.text))
    forwarded.post(
        "/preferences/verify/send?next=https://evil.example",
        data={**form_fields(page.text)},
    )
    code = outbox.last_code()
    page = forwarded.get("/preferences/verify")
    response = forwarded.post(
        "/preferences/verify?next=//evil.example",
        data={**form_fields(page.text), "code": code},
    )
    assert response.headers["Location"] == "/preferences/data"


def test_privacy_notice_lists_purposes_retention_processor_and_rights(client, app):
    """The notice shows what is configured, not what was once written."""
    app.config["RETENTION_SMS_LOG_DAYS"] = 200
    text = client.get("/privacy", headers={"Accept-Language": "en"}).text
    assert "Offers" in text and "New content" in text and "Competitions" in text
    assert "200 days" in text
    assert "36 months" in text
    assert "Twilio Ireland Limited" in text
    assert "European Union" in text
    assert re.search(r"download it as JSON or CSV", text)
    assert "Data Protection Ombudsman" in text


# A number that changed hands: the new holder sees their own holding only


@pytest.fixture
def changed_hands(app, runner, outbox, tmp_path):
    """The new holder's browser, a couple of minutes after their sign-up (no code needed)."""
    number = factories.a_number_that_changed_hands(app, runner, outbox, tmp_path)
    with freeze_time(NEW_SIGNUP + timedelta(minutes=2)):
        yield number


def assert_only_the_new_holders(text: str, changed_hands: ChangedHands) -> None:
    for record in changed_hands.previous_holders_data:
        assert record not in text, record


def test_the_new_holder_sees_none_of_the_previous_holders_data(changed_hands):
    """The data page lists the new holder's consents, messages and receipts only."""
    browser = changed_hands.new_holder.client
    page = browser.get("/preferences/data", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert_only_the_new_holders(page.text, changed_hands)
    assert "uusi-kampanja" in page.text
    assert "/[link]" in page.text  # the new holder's welcome message, its link kept out
    assert changed_hands.new_link not in page.text
    # The change's withdrawals (seq 4-6) ended the previous holder's grants: theirs.
    assert "Register update" not in page.text
    receipts = re.findall(r'href="/preferences/receipt/(\d+)"', page.text)
    assert sorted(map(int, receipts)) == [7, 8, 9]
    assert "10/1/26" not in page.text  # the previous holder's "subscriber since"


def test_the_new_holders_downloads_hold_only_their_own_records(changed_hands):
    """JSON and CSV: no IP, browser, campaign, message or reply of the previous holder;
    every one of the new holder's."""
    browser = changed_hands.new_holder.client
    response = browser.get("/preferences/data.json")
    assert_only_the_new_holders(response.text, changed_hands)
    for record in changed_hands.new_holders_data:
        assert record in response.text
    data = json.loads(response.text)
    assert data["holdings"] == [{"started_at": SINCE.isoformat(), "ended_at": None}]
    assert data["confirmed_at"] == NEW_SIGNUP.isoformat()
    assert data["consents"] == {"offers": True, "new_content": True, "competitions": True}
    assert [(e["action"], e["source"]) for e in data["consent_events"]] == [("grant", "signup")] * 3
    assert [m["kind"] for m in data["sms_messages"]] == ["code", "welcome"]
    assert [r["body"] for r in data["sms_replies"]] == ["Kiitos, uusi haltija tassa"]
    assert len(data["verifications"]) == 1

    table = browser.get("/preferences/data.csv").text
    assert_only_the_new_holders(table, changed_hands)
    for record in changed_hands.new_holders_data:
        assert record in table
    rows = list(csv.DictReader(io.StringIO(table)))
    records = [row["record"] for row in rows]
    assert (records.count("consent_event"), records.count("sms_message")) == (3, 2)
    assert records.count("verification") == 1
    assert [row["body"] for row in rows if row["received_at"]] == ["Kiitos, uusi haltija tassa"]


def test_the_previous_holders_receipts_are_out_of_the_new_holders_reach(changed_hands):
    """Receipts 1-3 are the previous holder's sign-up, 4-6 the change's withdrawals of it:
    not found. The new holder's are there."""
    browser = changed_hands.new_holder.client
    for seq in range(1, 7):
        assert browser.get(f"/preferences/receipt/{seq}").status_code == 404
    own = browser.get("/preferences/receipt/7")
    assert "uusi-kampanja" in own.text and "198.51.100.20" in own.text
    assert_only_the_new_holders(own.text, changed_hands)


def test_a_previous_customers_purchase_is_not_shown_to_the_new_holder(
    app, runner, outbox, tmp_path
):
    """The previous holder's customer grants, and the register update's withdrawals that
    keep their basis and purchase day, stay in the previous holder's holding: the new
    holder sees neither."""
    with app.app_context():
        context = consent.ConsentContext("customer_import", actor="system")
        customers.grant_as_customer(NUMBER, date(2026, 3, 14), "fi", context, BEFORE)
        db.session.commit()
    with freeze_time("2026-11-25 12:00:00"):
        assert sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n").exit_code == 0
    visitor = Visitor(app.test_client(), outbox)
    with freeze_time(NEW_SIGNUP):
        visitor.sign_up("040 123 4567")
        english = {"Accept-Language": "en"}
        data = json.loads(visitor.client.get("/preferences/data.json").text)
        page = visitor.client.get("/preferences/data", headers=english).text
        receipts = [visitor.client.get(f"/preferences/receipt/{seq}") for seq in (1, 2, 3, 4)]

    assert [r.status_code for r in receipts] == [404] * 4
    assert {e["source"] for e in data["consent_events"]} == {"signup"}
    assert data["bases"] == {
        "offers": "consent",
        "new_content": "consent",
        "competitions": "consent",
    }
    for text in (json.dumps(data), page):
        assert "2026-03-14" not in text and "3/14/26" not in text
        assert "Customer relationship" not in text and "Customer marketing" not in text
    with app.app_context():  # the proof itself is kept
        proof = db.session.scalars(select(ConsentEvent).where(ConsentEvent.seq <= 2)).all()
        assert {(e.basis, e.purchased_on) for e in proof} == {("customer", date(2026, 3, 14))}
