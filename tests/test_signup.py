"""The landing page, the code page and the confirmation, as a visitor walks them."""

from __future__ import annotations

import re

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select

from viihde.extensions import db
from viihde.models import ConsentEvent, SmsMessage, Subscriber, Verification
from viihde.register.notices import PRIVACY_NOTICE_VERSION, SIGNUP_TEXT_VERSION
from viihde.sms.segments import fits_one_gsm7_segment

from .helpers import (
    Visitor,
    csrf_token,
    one_read_outside_a_transaction,
    typed_in,
)
from .settings import PUBLIC_BASE_URL


@pytest.fixture
def count(app):
    """Count a table's rows in a fresh app context (request tests share no context)."""

    def rows(model) -> int:
        with app.app_context():
            return db.session.scalar(select(func.count()).select_from(model))

    return rows


def test_landing_page_has_one_phone_field_and_an_unticked_consent_box(client):
    """The form: a tel input, an unticked box with the consent text, a privacy link."""
    page = client.get("/").text
    phone = re.search(r"<input[^>]*name=\"phone\"[^>]*>", page).group(0)
    assert 'type="tel"' in phone
    assert 'autocomplete="tel"' in phone
    assert 'inputmode="tel"' in phone
    consent = re.search(r"<input[^>]*name=\"consent\"[^>]*>", page).group(0)
    assert 'type="checkbox"' in consent
    assert "checked" not in consent
    assert 'href="/privacy"' in page
    assert 'name="csrf_token"' not in page  # its POST is checked by origin (test_landing.py)


def test_landing_page_loads_nothing_from_other_origins(client):
    """No third-party scripts, fonts or trackers: every src and href is local (or, for the
    canonical address, our own site's)."""
    page = client.get("/").text
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/js/site.js" defer>']
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert url.startswith("/") or url == f"{PUBLIC_BASE_URL}/", url


def test_landing_page_is_finnish_by_default(client):
    """Finnish first: no Accept-Language gives a Finnish page."""
    page = client.get("/").text
    assert '<html lang="fi">' in page


def test_only_the_submission_carries_the_sms_limits(app, client):
    """The landing page is read far more often than it is sent: its GET has no limit
    decorator (each is resolved on every request it wraps); the POST at the same address
    has them all."""
    assert getattr(app.view_functions["signup.landing"], "rate_limits", None) is None
    assert getattr(app.view_functions["signup.submit"], "rate_limits", None) is not None
    page = client.get("/")
    assert 'action="/"' in page.get_data(as_text=True)
    assert "X-RateLimit-Limit" not in page.headers


def test_campaign_parameters_are_carried_into_the_form(client):
    """utm_* and the ad click id from the landing URL become hidden fields."""
    page = client.get("/?utm_source=meta&utm_medium=paid&utm_campaign=joulu26&fbclid=XYZ").text
    assert 'name="utm_source" type="hidden" value="meta"' in page
    assert 'name="utm_campaign" type="hidden" value="joulu26"' in page
    assert 'name="click_id" type="hidden" value="fbclid:XYZ"' in page


@pytest.mark.parametrize(
    "number",
    ["040 123 4567", "0401234567", "+358 40 123 4567", "00358401234567", "040-123.45 67"],
)
def test_any_usual_format_gets_a_code(visitor, outbox, number):
    """The number as people type it: one SMS to the E.164 form."""
    response = visitor.submit_number(number)
    assert response.status_code == 302
    assert response.headers["Location"] == "/code"
    assert [m["to"] for m in outbox.messages()] == ["+358401234567"]


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("hello", "does not look like a phone number"),
        ("040 12", "too short"),
        ("09 1234 567", "landline"),
        ("0600 12345", "premium-rate"),
        ("+46 70 123 45 67", "Finnish mobile numbers"),
        ("", "Type your mobile number"),
    ],
)
def test_refused_numbers_get_their_own_message_and_no_sms(visitor, outbox, number, message):
    """Each refusal explains itself with a 400, and no SMS goes out."""
    response = visitor.client.post(
        "/",
        data={
            "phone": number,
            "consent": "y",
        },
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 400
    assert message in response.text
    assert 'aria-invalid="true"' in response.text
    assert outbox.messages() == []


def test_no_consent_no_code(visitor, outbox):
    """Without the ticked box nothing is sent."""
    response = visitor.submit_number("040 123 4567", consent=False)
    assert response.status_code == 400
    assert outbox.messages() == []


def test_code_sms_is_one_gsm7_segment_with_the_webotp_line(visitor, outbox, app):
    """The code SMS ends with '@host #code' so phones can fill it in."""
    visitor.submit_number("040 123 4567")
    body = outbox.last()["body"]
    code = outbox.last_code()
    assert re.fullmatch(rf"\d{{{app.config['CODE_DIGITS']}}}", code)
    assert body.endswith(f"\n\n@viihdepaketti.fi #{code}")
    assert fits_one_gsm7_segment(body)


def test_nothing_is_subscribed_until_the_code_is_confirmed(visitor, count):
    """A code sent is not a subscription."""
    visitor.submit_number("040 123 4567")
    assert count(Subscriber) == 0
    assert count(ConsentEvent) == 0


def test_code_page_shows_the_masked_number_and_the_code_field(visitor):
    """The code page: masked number, one-time-code input, resend and change number."""
    visitor.submit_number("040 123 4567", landing="/?utm_campaign=kevat")
    page = visitor.client.get("/code").text
    assert "+358 40 *** **67" in page
    assert "401234567" not in page
    code_input = re.search(r"<input[^>]*name=\"code\"[^>]*>", page).group(0)
    assert 'autocomplete="one-time-code"' in code_input
    assert 'inputmode="numeric"' in code_input
    assert 'action="/code/resend"' in page
    assert 'href="/?utm_campaign=kevat"' in page


@pytest.mark.parametrize("config_overrides", [{"CODE_DIGITS": 8, "CODE_TTL_SECONDS": 300}])
def test_the_sms_the_page_and_the_field_follow_the_code_settings(visitor, outbox):
    """CODE_DIGITS and CODE_TTL_SECONDS are read everywhere: the code, its SMS, the code
    page, the field's length and its check."""
    visitor.submit_number("040 123 4567")
    code = outbox.last_code()
    assert len(code) == 8
    assert "Koodi on voimassa 5 minuuttia." in outbox.last()["body"]
    page = visitor.client.get("/code", headers={"Accept-Language": "en"}).text
    assert "code of 8 digits to +358 40 *** **67. It is valid for 5 minutes." in page
    code_input = re.search(r"<input[^>]*name=\"code\"[^>]*>", page).group(0)
    assert 'maxlength="9"' in code_input
    too_short = visitor.client.post(
        "/code",
        data={"csrf_token": csrf_token(page), "code": code[:6]},
        headers={"Accept-Language": "en"},
    )
    assert too_short.status_code == 400
    assert "The code is 8 digits." in too_short.text
    assert visitor.submit_code(code).headers["Location"] == "/welcome"


def test_the_code_page_is_one_read_outside_a_transaction_and_builds_no_form(
    app, visitor, monkeypatch
):
    """The page only renders (issue 18, decisions 3 and 5): the browser's code and the
    status of its SMS in one statement, no BEGIN or ROLLBACK around it (one round trip on
    PostgreSQL), and once the page is kept for its language no form object is built."""
    from viihde.web.signup import forms

    visitor.submit_number("040 123 4567")
    assert visitor.client.get("/code").status_code == 200  # rendered and kept
    monkeypatch.setattr(forms.CodeForm, "__init__", None)  # building one now would fail
    page = one_read_outside_a_transaction(app, lambda: visitor.client.get("/code"), "sms_messages")
    assert page.status_code == 200 and "+358 40 *** **67" in page.text


def test_the_kept_code_page_gets_each_browsers_own_parts(app, outbox):
    """The page kept for a language carries each browser's own masked number, form token,
    resend wait and way back to its ad, escaped, and a value that spells a mark of the page
    stays as typed (one pass)."""
    first, second = Visitor(app.test_client(), outbox), Visitor(app.test_client(), outbox)
    with freeze_time("2026-11-25 12:00:00") as clock:
        first.submit_number("040 123 4567", landing="/?utm_campaign=__form_mark__")
        first_code = outbox.last_code()
        clock.tick(20)
        landing = '/?utm_source=a"b&utm_medium=__resend_wait__&utm_campaign=<x>'
        second.submit_number("050 765 4321", landing=landing)
        second_code = outbox.last_code()
        one, two = first.client.get("/code").text, second.client.get("/code").text
        for browser, page, code in ((first, one, first_code), (second, two, second_code)):
            data = {"csrf_token": csrf_token(page), "code": code}  # its own token works
            assert browser.client.post("/code", data=data).headers["Location"] == "/welcome"
    assert "**67" in one and "**21" in two and "**21" not in one and "**67" not in two
    assert 'data-wait="40"' in one and 'data-wait="60"' in two
    assert 'href="/?utm_campaign=__form_mark__"' in one
    assert (
        'href="/?utm_source=a%22b&amp;utm_medium=__resend_wait__&amp;utm_campaign=%3Cx%3E"' in two
    )
    assert csrf_token(one) != csrf_token(two)
    assert "<x>" not in two and "<!--number-->" not in one + two


def test_the_code_page_answers_a_head_request_as_its_get(visitor):
    """HEAD (a monitor, a link preview) gets the page's answer without its body, not the
    POST's 400."""
    visitor.submit_number("040 123 4567")
    response = visitor.client.head("/code")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"


def test_the_kept_code_page_comes_in_each_browsers_language(visitor):
    """One browser, two languages: each answer is the page kept for its own language."""
    visitor.submit_number("040 123 4567")
    for _ in range(2):  # rendered and kept, then served as kept
        en = visitor.client.get("/code", headers={"Accept-Language": "en"}).text
        fi = visitor.client.get("/code", headers={"Accept-Language": "fi"}).text
        assert '<html lang="en">' in en and "Type the code from the text message" in en
        assert '<html lang="fi">' in fi and "Type the code from the text message" not in fi
        assert "+358 40 *** **67" in en and "+358 40 *** **67" in fi


def test_after_a_resend_the_code_page_says_so_once(visitor, outbox):
    """The resend's message is the browser's own: its code page is rendered for it while
    the message waits, and the kept page never carries it."""
    english = {"Accept-Language": "en"}
    with freeze_time("2026-11-25 12:00:00") as clock:
        visitor.submit_number("040 123 4567")
        visitor.client.get("/code", headers=english)  # the kept copy
        clock.tick(61)
        page = visitor.client.get("/code", headers=english)
        data = {"csrf_token": csrf_token(page.text)}
        visitor.client.post("/code/resend", data=data, headers=english)
        said = visitor.client.get("/code", headers=english).text
        again = visitor.client.get("/code", headers=english).text
    assert "A new code is on its way." in said
    assert "A new code is on its way." not in again and "**67" in again


def test_code_page_without_a_pending_code_goes_back_to_the_start(client):
    """Opening /code directly leads to the landing page."""
    response = client.get("/code")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_right_code_confirms_the_subscriber_with_a_provable_consent(visitor, outbox, count):
    """Confirmation writes one subscriber and a grant per offered purpose: who, when, whence."""
    landing = "/?utm_source=google&utm_medium=cpc&utm_campaign=talvi&gclid=Cj0K"
    response = visitor.sign_up("040 123 4567", landing=landing)
    assert response.status_code == 302
    assert response.headers["Location"] == "/welcome"
    with visitor.client.application.app_context():
        subscriber = db.session.scalar(select(Subscriber))
        events = subscriber.consent_events
    assert subscriber.phone_e164 == "+358401234567"
    assert [e.purpose for e in events] == ["offers", "new_content", "competitions"]
    for event in events:
        assert (event.action, event.source, event.actor) == ("grant", "signup", "subject")
        assert (event.utm_source, event.utm_medium, event.utm_campaign) == (
            "google",
            "cpc",
            "talvi",
        )
        assert event.click_id == "gclid:Cj0K"
        assert event.privacy_notice_version == PRIVACY_NOTICE_VERSION
        assert event.consent_text_version == SIGNUP_TEXT_VERSION
        assert event.ip == "127.0.0.1"
        assert event.user_agent


def test_welcome_sms_carries_a_short_preference_link(visitor, outbox):
    """After confirmation: one GSM-7 segment with a link of at most 48 characters."""
    visitor.sign_up()
    welcome = outbox.last()
    assert welcome["to"] == "+358401234567"
    link = outbox.last_link()
    assert len(link) <= 48
    assert fits_one_gsm7_segment(welcome["body"])
    assert "STOP" not in welcome["body"]  # the default sender is alphanumeric


@pytest.mark.parametrize("config_overrides", [{"TWILIO_FROM": "+358401110000"}])
def test_welcome_sms_says_reply_stop_when_the_sender_is_a_number(visitor, outbox):
    """Replies reach a numeric sender, so the text offers STOP too."""
    visitor.sign_up()
    assert "STOP" in outbox.last()["body"]


@pytest.mark.parametrize(("script", "space"), [("fullwidth", "\u3000"), ("arabic_indic", " ")])
def test_a_right_code_in_other_digits_confirms_with_one_try(
    visitor, outbox, app, count, script, space
):
    """The code typed in fullwidth or Arabic-Indic digits (a space inside) is the same code:
    it confirms the sign-up, and no extra try is used."""
    visitor.submit_number("040 123 4567")
    code = outbox.last_code()
    response = visitor.submit_code(typed_in(script, code[:3]) + space + typed_in(script, code[3:]))
    assert response.headers["Location"] == "/welcome"
    assert count(Subscriber) == 1
    with app.app_context():
        assert db.session.scalar(select(Verification.attempts)) == 1


def test_wrong_code_says_how_many_tries_are_left(visitor, outbox):
    """A wrong code is a 400 with the tries left."""
    visitor.submit_number("040 123 4567")
    wrong = "111111" if outbox.last_code() != "111111" else "222222"
    response = visitor.client.post(
        "/code",
        data={"csrf_token": csrf_token(visitor.client.get("/code").text), "code": wrong},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 400
    assert "4 tries left" in response.text


def test_wrong_code_five_times_kills_the_code(visitor, outbox, count):
    """After five wrong tries even the right code no longer works."""
    visitor.submit_number("040 123 4567")
    code = outbox.last_code()
    wrong = "111111" if code != "111111" else "222222"
    for _ in range(5):
        visitor.submit_code(wrong)
    response = visitor.submit_code(code)
    assert response.status_code == 400
    assert count(Subscriber) == 0


def test_expired_code_is_refused_with_its_own_message(visitor, outbox, count, app):
    """A second past its CODE_TTL_SECONDS (ten minutes) the code has expired."""
    with freeze_time("2026-11-25 12:00:00") as clock:
        visitor.submit_number("040 123 4567")
        code = outbox.last_code()
        clock.tick(app.config["CODE_TTL_SECONDS"] + 1)
        page = visitor.client.get("/code", headers={"Accept-Language": "en"})
        response = visitor.client.post(
            "/code",
            data={"csrf_token": csrf_token(page.text), "code": code},
            headers={"Accept-Language": "en"},
        )
    assert response.status_code == 400
    assert "expired" in response.text
    assert count(Subscriber) == 0


def test_code_works_until_the_end_of_its_ten_minutes(visitor, outbox, count, app):
    """A right code a second before its CODE_TTL_SECONDS end confirms."""
    with freeze_time("2026-11-25 12:00:00") as clock:
        visitor.submit_number("040 123 4567")
        clock.tick(app.config["CODE_TTL_SECONDS"] - 1)
        response = visitor.submit_code(outbox.last_code())
    assert response.headers["Location"] == "/welcome"


def test_same_code_twice_gives_one_subscriber_and_one_grant_per_purpose(visitor, outbox, count):
    """A double submit of the right code: the second lands on the same confirmation."""
    visitor.submit_number("040 123 4567")
    code = outbox.last_code()
    page = visitor.client.get("/code")
    token = csrf_token(page.text)
    first = visitor.client.post("/code", data={"csrf_token": token, "code": code})
    second = visitor.client.post("/code", data={"csrf_token": token, "code": code})
    assert first.status_code == second.status_code == 302
    assert count(Subscriber) == 1
    assert count(ConsentEvent) == 3
    assert [m["kind"] for m in outbox.messages()] == ["code", "welcome"]


def test_a_double_tapped_code_keeps_the_link_in_the_browser(app, visitor, outbox):
    """Both taps leave with the cookie from before; the second waits on the lock and its
    answer arrives last. It must not send a cookie of its own (one without the link, the
    pending code forgotten): the browser keeps the first's, and its welcome page."""
    visitor.submit_number("040 123 4567")
    data = {"csrf_token": csrf_token(visitor.client.get("/code").text), "code": outbox.last_code()}
    before = visitor.client.get_cookie("session").value
    first = visitor.client.post("/code", data=data)
    after_first = visitor.client.get_cookie("session").value
    visitor.client.set_cookie("session", before)

    second = visitor.client.post("/code", data=data)

    assert first.headers["Location"] == second.headers["Location"] == "/welcome"
    assert "Set-Cookie" not in second.headers
    visitor.client.set_cookie("session", after_first)  # what the browser holds now
    assert visitor.client.get("/welcome").status_code == 200
    assert visitor.client.get("/preferences").status_code == 200


def test_double_submit_of_the_landing_form_sends_one_code(visitor, outbox):
    """Pressing 'send' twice sends one SMS and shows the code page both times."""
    data = {"phone": "040 123 4567", "consent": "y"}
    first = visitor.client.post("/", data=data)
    second = visitor.client.post("/", data=data)
    assert first.headers["Location"] == second.headers["Location"] == "/code"
    assert len(outbox.messages()) == 1


def test_new_code_only_after_sixty_seconds(visitor, outbox):
    """Resend within a minute is refused with a 429 and no SMS; after it, a new code goes."""
    with freeze_time("2026-11-25 12:00:00") as clock:
        visitor.submit_number("040 123 4567")
        clock.tick(30)
        refused = visitor.resend()
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "30"  # the minute's rest, for a script
        assert len(outbox.messages()) == 1
        clock.tick(31)
        accepted = visitor.resend()
        assert accepted.status_code == 302
        assert len(outbox.messages()) == 2


def test_resent_code_replaces_the_old_one(visitor, outbox, count):
    """After a resend the first code no longer confirms; the new one does."""
    with freeze_time("2026-11-25 12:00:00") as clock:
        visitor.submit_number("040 123 4567")
        old = outbox.last_code()
        clock.tick(61)
        visitor.resend()
        new = outbox.last_code()
        if old != new:
            assert visitor.submit_code(old).status_code == 400
        assert visitor.submit_code(new).headers["Location"] == "/welcome"


def test_three_codes_an_hour_however_they_are_asked_for(visitor, outbox, client, app):
    """Resend button or landing form again, from any browser: the fourth code waits."""
    with freeze_time("2026-11-25 12:00:00") as clock:
        visitor.submit_number("040 123 4567")
        clock.tick(61)
        visitor.resend()
        clock.tick(61)
        other_browser = app.test_client()
        other_browser.post("/", data={"phone": "0401234567", "consent": "y"})
        assert len(outbox.messages()) == 3
        clock.tick(61)
        refused = visitor.submit_number("+358401234567")
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
        assert len(outbox.messages()) == 3
        clock.tick(3600)
        assert visitor.submit_number("+358401234567").status_code == 302
        assert len(outbox.messages()) == 4


def test_a_code_from_another_browser_does_not_confirm_this_one(app, outbox, count):
    """Codes are bound to their own verification: tab B cannot use tab A's code."""

    first, second = Visitor(app.test_client(), outbox), Visitor(app.test_client(), outbox)
    with freeze_time("2026-11-25 12:00:00") as clock:
        first.submit_number("040 123 4567")
        code_a = outbox.last_code()
        clock.tick(61)
        second.submit_number("040 123 4567")
        code_b = outbox.last_code()
        if code_a != code_b:
            assert second.submit_code(code_a).status_code == 400
            assert count(Subscriber) == 0
        assert second.submit_code(code_b).status_code == 302


def test_codes_are_stored_only_as_keyed_hashes(visitor, outbox, count):
    """Neither the verification nor the SMS log holds the code in clear."""
    visitor.submit_number("040 123 4567")
    code = outbox.last_code()
    with visitor.client.application.app_context():
        verification = db.session.scalar(select(Verification))
        bodies = db.session.scalars(select(SmsMessage.body)).all()
    assert code not in verification.code_hash
    assert len(verification.code_hash) == 64
    assert bodies and all(code not in body for body in bodies)


def test_signing_up_a_subscribed_number_looks_the_same(visitor, outbox, app):
    """An already subscribed number goes through the same steps: nothing is revealed."""

    with freeze_time("2026-11-25 12:00:00"):
        visitor.sign_up("040 123 4567")
    newcomer = Visitor(app.test_client(), outbox)
    fresh = Visitor(app.test_client(), outbox)
    with freeze_time("2026-11-25 13:00:00"):
        known = newcomer.submit_number("040 123 4567")
        unknown = fresh.submit_number("040 765 4321")
    assert known.status_code == unknown.status_code == 302
    assert known.headers["Location"] == unknown.headers["Location"]
    known_page = newcomer.client.get("/code").text.replace("**67", "**21")
    unknown_page = fresh.client.get("/code").text
    strip = re.compile(r'value="[^"]+"')
    assert strip.sub("", known_page) == strip.sub("", unknown_page)


def test_resubscribing_through_a_new_ad_records_the_new_consent(visitor, outbox, app, count):
    """Confirming again adds a consent event with the new campaign, still one subscriber."""

    with freeze_time("2026-11-25 12:00:00"):
        visitor.sign_up("040 123 4567", landing="/?utm_campaign=first")
    with freeze_time("2026-11-26 12:00:00"):
        Visitor(app.test_client(), outbox).sign_up("040 123 4567", landing="/?utm_campaign=second")
    assert count(Subscriber) == 1
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber))
        campaigns = [e.utm_campaign for e in subscriber.consent_events]
    assert campaigns == ["first"] * 3 + ["second"] * 3


def test_code_form_without_csrf_token_gets_a_friendly_400(visitor, outbox):
    """The code form keeps its token (only the landing form is checked by origin): a post
    without it is refused with the translated page, and no code is tried."""
    visitor.submit_number("040 123 4567")
    code = outbox.last_code()
    response = visitor.client.post("/code", data={"code": code})
    assert response.status_code == 400
    assert "<h1>" in response.text
    assert visitor.submit_code(code).headers["Location"] == "/welcome"  # not spent


def test_sms_provider_failure_is_explained_and_the_visitor_can_retry(
    visitor, outbox, monkeypatch, count
):
    """If the SMS cannot be sent: a clear 503 message, the number kept, and a retry works."""
    from viihde.sms import backends

    def broken(self, message):
        raise backends.SendFailed("down", "503")

    monkeypatch.setattr(backends.FileBackend, "send", broken)
    response = visitor.submit_number("040 123 4567")
    assert response.status_code == 503
    assert 'value="040 123 4567"' in response.text
    assert count(Verification) == 0
    monkeypatch.undo()
    assert visitor.submit_number("040 123 4567").status_code == 302


def test_privacy_notice_names_the_controller_from_configuration(client, app):
    """The notice page carries the configured controller details and its version."""
    app.config["CONTROLLER_EMAIL"] = "tietosuoja@example.fi"
    page = client.get("/privacy").text
    assert "Lucentia Group Oy" in page
    assert "PL 32, 00711 Helsinki" in page
    assert "tietosuoja@example.fi" in page
    assert PRIVACY_NOTICE_VERSION in page


def test_welcome_page_is_only_for_a_browser_that_confirmed(client):
    """Opening /welcome directly does not pretend anyone subscribed."""
    response = client.get("/welcome")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("config_overrides", [{"PROXY_COUNT": 1}])
def test_behind_one_proxy_the_visitors_own_address_is_recorded(app, outbox):
    """With PROXY_COUNT=1 the consent keeps the address the proxy saw, not the proxy's."""

    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    client = app.test_client()
    client.environ_base.update(
        {
            "HTTP_X_FORWARDED_FOR": forwarded["X-Forwarded-For"],
            "HTTP_X_FORWARDED_PROTO": forwarded["X-Forwarded-Proto"],
            # Over HTTPS Flask-WTF checks the Referer, as browsers send it same-origin.
            "HTTP_REFERER": "https://localhost/",
        }
    )
    Visitor(client, outbox).sign_up("040 123 4567")
    with app.app_context():
        ips = set(db.session.scalars(select(ConsentEvent.ip)))
    assert ips == {"203.0.113.7"}


def test_without_a_proxy_forwarded_headers_are_not_believed(app, outbox):
    """By default X-Forwarded-For is ignored: anyone could send it."""

    client = app.test_client()
    client.environ_base.update({"HTTP_X_FORWARDED_FOR": "203.0.113.7"})
    Visitor(client, outbox).sign_up("040 123 4567")
    with app.app_context():
        ips = set(db.session.scalars(select(ConsentEvent.ip)))
    assert ips == {"127.0.0.1"}


def test_code_page_tells_the_script_how_long_resend_must_wait(visitor):
    """The countdown starts from the server's own rule: 60 seconds after the code."""
    with freeze_time("2026-11-25 12:00:00") as clock:
        visitor.submit_number("040 123 4567")
        clock.tick(15)
        page = visitor.client.get("/code").text
    assert 'data-wait="45"' in page


def test_the_code_page_is_never_cached(visitor):
    """The code page names the number (masked): no-store, as every page with personal data."""
    visitor.submit_number("040 123 4567")
    assert visitor.client.get("/code").headers["Cache-Control"] == "no-store"


def test_the_landing_page_shown_back_with_the_typed_number_is_never_cached(visitor):
    """A refusal shows the number as it was typed, in clear: no-store."""
    for typed in ("09 123 4567", "040 123"):
        refused = visitor.submit_number(typed)
        assert refused.status_code == 400
        assert typed in refused.text and refused.headers["Cache-Control"] == "no-store"


def test_the_code_forms_make_no_token_of_their_own(visitor, outbox, monkeypatch):
    """The code and its resend button carry the request's token (the app's hook checks it
    before the view): a right code makes none (it was made and checked again for every
    code typed), a wrong one shows the page again with one token for both forms."""
    from flask_wtf import csrf as flask_wtf_csrf

    visitor.submit_number("040 123 4567")
    page = visitor.client.get("/code").text
    assert page.count(f'value="{csrf_token(page)}"') == 2  # the code's and the resend's
    made = []
    real = flask_wtf_csrf.generate_csrf
    monkeypatch.setattr(
        flask_wtf_csrf, "generate_csrf", lambda *a, **k: made.append(1) or real(*a, **k)
    )
    wrong = "111111" if outbox.last_code() != "111111" else "222222"
    again = visitor.client.post("/code", data={"csrf_token": csrf_token(page), "code": wrong})
    assert again.status_code == 400 and again.text.count(f'value="{csrf_token(again.text)}"') == 2
    made.clear()
    assert visitor.submit_code(outbox.last_code()).status_code == 302
    assert made == []


@pytest.mark.parametrize(
    "config_overrides", [{"WTF_CSRF_CHECK_DEFAULT": False}, {"WTF_CSRF_METHODS": ["PUT"]}]
)
def test_the_code_form_checks_its_token_when_the_hook_does_not(visitor, outbox, count):
    """With the app's hook off by setting (views check for themselves), or checking other
    methods than POST, the code's form checks the token itself: a right code without one
    confirms nothing."""
    visitor.submit_number("040 123 4567")
    response = visitor.client.post("/code", data={"code": outbox.last_code()})
    assert response.status_code == 400
    assert count(Subscriber) == 0


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("fi", "Koodissa on 6 numeroa."),
        ("sv", "Koden har 6 siffror."),
        ("en", "The code is 6 digits."),
    ],
)
def test_the_code_fields_messages_are_in_the_pages_language(visitor, language, message):
    """The code field's checks are made once for all requests; each page still says what
    is wrong in its own language."""
    visitor.submit_number("040 123 4567")
    page = visitor.client.get("/code").text
    response = visitor.client.post(
        "/code",
        data={"csrf_token": csrf_token(page), "code": "12"},
        headers={"Accept-Language": language},
    )
    assert response.status_code == 400 and message in response.text
