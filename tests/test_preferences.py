"""The preference page reached from the link in every SMS: topics and stop-all."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from viihde.extensions import cache, db
from viihde.models import ConsentEvent, Subscriber
from viihde.register import consent

from .helpers import (
    Visitor,
    csrf_token,
    drop_server_connections,
    form_fields,
    one_read_outside_a_transaction,
    race,
)

PURPOSES = ("offers", "new_content", "competitions")


@pytest.fixture
def link(visitor, outbox) -> str:
    """A subscriber's preference link path, as the welcome SMS carries it."""
    with freeze_time("2026-11-25 12:00:00"):
        visitor.sign_up("040 123 4567")
    return outbox.last_link().removeprefix("https://viihdepaketti.fi")


@pytest.fixture
def ledger(app):
    """The consent events, oldest first, as (action, purpose, source) triples."""

    def events() -> list[tuple[str, str, str]]:
        with app.app_context():
            return [
                (e.action, e.purpose, e.source)
                for e in db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
            ]

    return events


SIGNED_UP = [("grant", purpose, "signup") for purpose in PURPOSES]


def opened(app, link):
    """A fresh browser (say, the phone's) that opened the link."""
    browser = app.test_client()
    assert browser.get(link).status_code == 302
    return browser


def stop_all(browser):
    page = browser.get("/preferences")
    return browser.post("/preferences", data={**form_fields(page.text), "stop_all": "x"})


def save(browser, *switched_on: str):
    page = browser.get("/preferences")
    data = {**form_fields(page.text), "save": "x"}
    data.update({f"purpose-{key}": "on" for key in switched_on})
    return browser.post("/preferences", data=data)


def test_link_opens_the_page_and_leaves_the_address_bar(app, link):
    """The token is swapped for a session; the page lives at /preferences."""
    browser = app.test_client()
    response = browser.get(link)
    assert response.status_code == 302
    assert response.headers["Location"] == "/preferences"
    page = browser.get("/preferences")
    assert page.status_code == 200
    assert "+358 40 *** **67" in page.text
    assert "401234567" not in page.text
    assert page.headers["Cache-Control"] == "no-store"


def test_the_page_a_link_opens_writes_no_cookie(app, link):
    """The tap writes the session once (the link and the form's token); the page it opens
    sends no Set-Cookie, and the form token it carries passes."""
    browser = app.test_client()
    assert "Set-Cookie" in browser.get(link).headers
    page = browser.get("/preferences")
    assert page.status_code == 200 and "Set-Cookie" not in page.headers
    change = browser.post("/preferences", data={**form_fields(page.text), "stop_all": "x"})
    assert change.status_code == 302


def test_the_pages_form_token_is_signed_once_a_minute_per_session(app, link, monkeypatch):
    """Flask-WTF signs a new token on every request; the preference page hands the same
    one to a session for a minute (signed once), and a new one after it; each passes.
    Another browser's session gets its own."""
    from flask_wtf import csrf as flask_wtf_csrf

    from viihde.web import browser as browsers

    signed = []
    real = flask_wtf_csrf.URLSafeTimedSerializer
    monkeypatch.setattr(
        flask_wtf_csrf, "URLSafeTimedSerializer", lambda *a, **k: signed.append(1) or real(*a, **k)
    )
    now = [1_800_000_000.0]
    monkeypatch.setattr(browsers.time, "time", lambda: now[0])
    first, other = opened(app, link), opened(app, link)
    signed.clear()
    tokens = [csrf_token(first.get("/preferences").text) for _ in range(3)]
    assert len(set(tokens)) == 1 and len(signed) == 1
    assert csrf_token(other.get("/preferences").text) != tokens[0]
    now[0] += browsers.FORM_TOKEN_REUSE_SECONDS
    later = first.get("/preferences")
    assert csrf_token(later.text) != tokens[0]
    shown_for = form_fields(later.text)["subscriber"]
    for token in (tokens[0], csrf_token(later.text)):
        data = {"csrf_token": token, "subscriber": shown_for, "purpose-offers": "y"}
        assert first.post("/preferences", data=data).status_code == 302


def test_each_purpose_is_its_own_switch_with_its_text(app, link):
    """A checkbox per purpose, labelled, with its consent text, plus stop-all."""
    page = opened(app, link).get("/preferences", headers={"Accept-Language": "en"}).text
    for key in PURPOSES:
        box = re.search(rf'<input[^>]*name="purpose-{key}"[^>]*>', page).group(0)
        assert 'type="checkbox"' in box and "checked" in box
        assert f'<label class="topic-name" for="purpose-{key}">' in page
    assert "Invite me by SMS to Viihdepaketti.fi's own competitions" in page
    assert 'name="stop_all"' in page


def test_opening_the_link_changes_nothing(app, link, ledger):
    """Link scanners prefetch: three GETs leave the ledger as it was."""
    scanner = app.test_client()
    for _ in range(3):
        scanner.get(link)
        scanner.get("/preferences")
    assert ledger() == SIGNED_UP


def test_stop_all_marketing_is_one_press_and_takes_effect_at_once(app, link, ledger):
    """One POST withdraws every purpose with source preference_page, no code needed."""
    browser = opened(app, link)
    response = stop_all(browser)
    assert response.status_code == 302
    assert ledger() == SIGNED_UP + [("withdraw", p, "preference_page") for p in PURPOSES]
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber))
        assert not any(consent.has_consent(subscriber.id, p) for p in PURPOSES)
    page = browser.get("/preferences").text
    assert 'name="stop_all"' not in page
    assert "checked" not in page


def test_pressing_stop_twice_records_one_withdrawal_per_purpose(app, link, ledger):
    """A double submit or a second tab adds nothing."""
    browser = opened(app, link)
    fields = form_fields(browser.get("/preferences").text)
    browser.post("/preferences", data={**fields, "stop_all": "x"})
    browser.post("/preferences", data={**fields, "stop_all": "x"})
    assert len(ledger()) == 6


def test_switching_one_topic_off_records_only_that(app, link, ledger):
    """Saving with competitions unticked withdraws competitions alone."""
    browser = opened(app, link)
    save(browser, "offers", "new_content")
    assert ledger()[3:] == [("withdraw", "competitions", "preference_page")]
    page = browser.get("/preferences").text
    assert "checked" in re.search(r'<input[^>]*name="purpose-offers"[^>]*>', page).group(0)
    assert "checked" not in re.search(r'<input[^>]*name="purpose-competitions"[^>]*>', page).group(
        0
    )


def test_switching_topics_back_on_records_grants_under_their_own_texts(app, link):
    """After stop-all, ticking two topics grants them with each topic's text version."""
    browser = opened(app, link)
    stop_all(browser)
    save(browser, "offers", "competitions")
    with app.app_context():
        latest = consent.latest_events(db.session.scalar(select(Subscriber.id)))
    assert latest["offers"].consent_text_version == "offers-1"
    assert latest["competitions"].consent_text_version == "competitions-1"
    assert latest["new_content"].action == "withdraw"


def test_a_consent_to_an_older_wording_is_shown_so(app, link, monkeypatch):
    """When a topic's text gets a new version, a grant under the old one says so."""
    from viihde.register import notices, purposes

    browser = opened(app, link)
    stop_all(browser)
    save(browser, "offers")
    monkeypatch.setitem(notices.CONSENT_TEXTS, "offers-2", notices.CONSENT_TEXTS["offers-1"])
    monkeypatch.setitem(
        purposes.CATALOGUE, "offers", purposes.Purpose("offers", "Offers", "offers-2")
    )
    page = browser.get("/preferences", headers={"Accept-Language": "en"}).text
    assert "earlier wording of this consent (version offers-1)" in page


def test_preference_change_without_csrf_token_is_refused(app, link, ledger):
    """A forged cross-site POST changes nothing, without a token or with a wrong one (the
    app's CSRF hook checks it: the form itself does not)."""
    browser = opened(app, link)
    for forged in ({}, {"csrf_token": "IjAwMDAi.forged.token"}):
        response = browser.post("/preferences", data={"stop_all": "x", **forged})
        assert response.status_code == 400
    assert ledger() == SIGNED_UP


@pytest.mark.parametrize("config_overrides", [{"WTF_CSRF_CHECK_DEFAULT": False}])
def test_the_choices_form_checks_its_token_when_the_hook_does_not(app, link, ledger):
    """With the app's hook off by setting (views check for themselves), the preference
    page's form checks the token itself: a forged POST still changes nothing."""
    browser = opened(app, link)
    shown_for = form_fields(browser.get("/preferences").text)["subscriber"]
    response = browser.post("/preferences", data={"stop_all": "x", "subscriber": shown_for})
    assert response.status_code == 400
    assert ledger() == SIGNED_UP


def _tampered(link: str) -> list[str]:
    last = link[-1]
    flipped = link[:-1] + ("A" if last != "A" else "B")
    payload, signature = link.lstrip("/").split(".")
    other_subscriber = "/AG." + signature  # the same signature on another id
    return [flipped, link[:-1], link[:-5], other_subscriber, "/" + payload + ".", link + "x"]


def test_tampered_or_truncated_links_get_the_same_friendly_404(app, link, ledger):
    """No 500 and no oracle: every broken link gives one and the same page."""
    browser = app.test_client()
    bodies = set()
    for broken in _tampered(link):
        response = browser.get(broken)
        assert response.status_code == 404, broken
        bodies.add(response.text)
    assert len(bodies) == 1
    assert "<h1>" in bodies.pop()
    assert browser.get("/preferences").status_code == 404
    assert ledger() == SIGNED_UP


def test_revoked_link_stops_working(app, link):
    """Rotating the subscriber's link key revokes every link sent so far, open sessions too."""
    browser = opened(app, link)
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber))
        subscriber.link_key = consent.new_link_key()
        db.session.commit()
    assert browser.get("/preferences").status_code == 404
    assert app.test_client().get(link).status_code == 404


def test_links_keep_working_after_a_key_rotation(app, link):
    """A link signed with the previous SECRET_KEY works while it is a fallback."""
    old_key = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = "a-brand-new-secret-key-for-this-test-0123456789"
    app.config["SECRET_KEY_FALLBACKS"] = [old_key]
    assert app.test_client().get(link).status_code == 302
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert app.test_client().get(link).status_code == 404


def test_every_subscriber_reaches_only_their_own_page(app, outbox):
    """Two subscribers' links show two different masked numbers."""
    with freeze_time("2026-11-25 12:00:00"):
        Visitor(app.test_client(), outbox).sign_up("040 123 4567")
        first = outbox.last_link().removeprefix("https://viihdepaketti.fi")
        Visitor(app.test_client(), outbox).sign_up("050 765 4321")
        second = outbox.last_link().removeprefix("https://viihdepaketti.fi")
    browser = app.test_client()
    browser.get(first)
    assert "**67" in browser.get("/preferences").text
    browser.get(second)
    assert "**21" in browser.get("/preferences").text


def test_links_do_not_expire_by_time(app, link):
    """People unsubscribe from old messages: a link works years later."""
    with freeze_time("2031-01-01 12:00:00"):
        browser = app.test_client()
        assert browser.get(link).status_code == 302
        assert browser.get("/preferences").status_code == 200


def test_after_sign_up_the_browser_goes_straight_to_the_settings(visitor):
    """The welcome page links to the settings, which open without the SMS link."""
    with freeze_time("2026-11-25 12:00:00"):
        visitor.sign_up("040 123 4567")
        assert 'href="/preferences"' in visitor.client.get("/welcome").text
        assert "+358 40 *** **67" in visitor.client.get("/preferences").text


def test_signing_out_the_links_in_fifteen_tabs_at_once_texts_one_link(app, outbox):
    """Fifteen presses of "sign out my links" at the same moment, from one browser: the
    links change once and one new link is texted."""
    visitor = Visitor(app.test_client(), outbox)
    visitor.sign_up("040 123 4567")
    page = visitor.client.get("/preferences")
    fields = form_fields(page.text)
    cookie = visitor.client.get_cookie("session")
    texted = len(outbox.messages())

    def press():
        tab = app.test_client()
        tab.set_cookie(cookie.key, cookie.value, domain=cookie.domain)
        return tab.post("/preferences/sign-out", data=fields).status_code

    statuses = race(*[press] * 15)
    assert all(status < 500 for status in statuses)
    links = [m for m in outbox.messages()[texted:] if "/" in m["body"]]
    assert len(links) == 1


def test_the_page_is_the_links_check_and_one_statement_outside_a_transaction(app, link):
    """The link's key and the page's data in one statement, no BEGIN or ROLLBACK around
    it (autocommit); on PostgreSQL that is one round trip in all (the pool lends without
    a ping). Counted at the driver: the read runs on the driver's cursor, past Core's
    execution layer and its events."""
    browser = opened(app, link)
    browser.get("/preferences")  # the pool holds a connection now
    response = one_read_outside_a_transaction(
        app, lambda: browser.get("/preferences"), "consent_states"
    )
    assert response.status_code == 200 and 'name="stop_all"' in response.text


def test_a_step_up_code_is_not_typed_on_the_sign_up_code_page(app, link, outbox):
    """The browser's pending code proves the number for its data: the sign-up's code page
    does not take it (it sends the browser to the landing page), the verify page does."""
    browser = opened(app, link)
    page = browser.get("/preferences/verify?next=data")
    sent = browser.post("/preferences/verify/send?next=data", data={**form_fields(page.text)})
    assert sent.status_code == 302
    for method in (browser.get, browser.head):
        response = method("/code")
        assert response.status_code == 302 and response.headers["Location"] == "/"


def test_stop_all_withdraws_a_purpose_the_product_has_retired(app, link, monkeypatch):
    """A purpose taken out of the catalogue (and the offer) keeps its grants in the register
    until each is withdrawn: the one-tap stop withdraws it too, under the text its grant
    was given under (it failed with a KeyError: a 500 where an opt-out must always work)."""
    from viihde.register import purposes

    browser = opened(app, link)
    with app.app_context():
        granted = db.session.scalar(
            select(ConsentEvent.consent_text_version).where(ConsentEvent.purpose == "competitions")
        )
    monkeypatch.delitem(purposes.CATALOGUE, "competitions")
    app.config["CONSENT_PURPOSES"] = ["offers", "new_content"]
    assert stop_all(browser).status_code == 302
    with app.app_context():
        withdrawn = db.session.scalars(
            select(ConsentEvent).where(ConsentEvent.action == "withdraw")
        ).all()
    assert {event.purpose for event in withdrawn} == {"offers", "new_content", "competitions"}
    [retired] = [event for event in withdrawn if event.purpose == "competitions"]
    assert retired.consent_text_version == granted
    page = browser.get("/preferences?saved=stopped", headers={"Accept-Language": "en"})
    assert "All marketing is stopped" in page.text


def test_the_page_builds_no_form(app, link, monkeypatch):
    """The page only renders (issue 18, decision 3): its forms are plain HTML, and no form
    object is built to show them; the POST reads them."""
    from viihde.web.preferences import forms

    browser = opened(app, link)
    for form in (forms.ChoicesForm, forms.ButtonForm, forms.EraseForm):
        monkeypatch.setattr(form, "__init__", None)  # building one now would fail
    for _ in range(2):  # rendered for its choices and kept, then served as kept
        page = browser.get("/preferences")
        assert page.status_code == 200 and 'name="stop_all"' in page.text


@pytest.mark.usefixtures("needs_postgresql")
def test_a_connection_the_server_dropped_is_replaced_and_the_page_still_answers(app, link):
    """No ping before lending: when PostgreSQL has dropped the pooled connections (a
    restart, an idle timeout), the pool sees it on the socket and lends fresh ones; the
    page answers, and so does a write through the ORM."""
    browser = opened(app, link)
    assert browser.get("/preferences").status_code == 200
    with app.app_context():
        url = db.engine.url
    drop_server_connections(url)
    with app.app_context():  # the ORM first, on whichever pooled connection comes
        assert db.session.scalar(select(Subscriber.id)) is not None
        db.session.remove()
    assert browser.get("/preferences").status_code == 200
    assert stop_all(browser).status_code == 302


def test_after_stop_all_the_page_says_so_and_offers_the_switches(app, link):
    """The page's other state: nothing granted, no stop-all button, every switch off."""
    browser = opened(app, link)
    assert 'name="stop_all"' in browser.get("/preferences").text
    assert stop_all(browser).status_code == 302
    page = browser.get("/preferences", headers={"Accept-Language": "en"}).text
    assert "You do not get our marketing messages." in page
    assert 'name="stop_all"' not in page
    assert " checked" not in page and 'name="purpose-offers"' in page


def test_the_page_is_rendered_once_per_choices_and_language(app, outbox, monkeypatch):
    """Two people with the same choices get the same page but for their own masked number
    and their own form token, rendered once (decision 5 of issue 18); other choices, or a
    message to show after a redirect, get a page of their own; the tokens still work."""
    from flask import templating

    from viihde.web.preferences import routes

    renders = []
    real = templating._render
    monkeypatch.setattr(templating, "_render", lambda *a: renders.append(a[1]) or real(*a))
    links_of = {}
    for number in ("040 123 4567", "050 765 4321"):
        walker = Visitor(app.test_client(), outbox)
        walker.sign_up(number)
        links_of[number] = outbox.last_link().removeprefix("https://viihdepaketti.fi")
    first, second = (opened(app, links_of[n]) for n in links_of)
    cache.clear()
    renders.clear()
    pages = [browser.get("/preferences").text for browser in (first, second)]
    assert len(renders) == 1  # the second page came from the first's render
    assert "+358 40 *** **67" in pages[0] and "+358 50 *** **21" in pages[1]
    assert "765" not in pages[0] and "4567" not in pages[1]
    fields = [form_fields(page) for page in pages]
    tokens = [f["csrf_token"] for f in fields]
    assert tokens[0] != tokens[1] and routes.FORM_MARK not in pages[0] + pages[1]
    assert fields[0]["subscriber"] != fields[1]["subscriber"]
    assert routes.SUBSCRIBER_MARK not in pages[0] + pages[1]

    def own_parts_out(page: str, number: str, shown: dict) -> str:
        own = f'name="subscriber" type="hidden" value="{shown["subscriber"]}"'
        return page.replace(number, "").replace(shown["csrf_token"], "").replace(own, "")

    assert own_parts_out(pages[0], "+358 40 *** **67", fields[0]) == own_parts_out(
        pages[1], "+358 50 *** **21", fields[1]
    )

    stop_all(second)  # different choices now, and a message after the redirect
    renders.clear()
    after = second.get("/preferences").text
    assert 'name="stop_all"' not in after and len(renders) == 1
    assert second.get("/preferences").text.count("status--off") == 1
    # the first person's page is still the shared one, and their token still works
    page = first.get("/preferences")
    data = {**form_fields(page.text), "stop_all": "x"}
    assert first.post("/preferences", data=data).status_code == 302


def test_a_change_says_so_on_the_page_without_touching_the_session(app, visitor):
    """Stop all: the redirect names what was saved and sets no cookie (no flash message in
    the session), and the page says so; an address that says "stopped" for someone who
    is subscribed says nothing (it could be kept, or made up), nor does an unknown one."""
    visitor.sign_up("040 123 4567")
    client = visitor.client
    page = client.get("/preferences")
    data = {**form_fields(page.text), "stop_all": "x"}
    stopped = client.post("/preferences", data=data)
    assert stopped.headers["Location"] == "/preferences?saved=stopped"
    assert "Set-Cookie" not in stopped.headers
    english = {"Accept-Language": "en"}
    notice = "All marketing is stopped"
    after = client.get("/preferences?saved=stopped", headers=english)
    assert notice in after.text and "Set-Cookie" not in after.headers
    assert notice not in client.get("/preferences?saved=nonsense", headers=english).text

    grant = {**form_fields(after.text), "purpose-offers": "on"}
    assert client.post("/preferences", data=grant).headers["Location"].endswith("saved=choices")
    assert (
        "Your choices are saved" in client.get("/preferences?saved=choices", headers=english).text
    )
    assert notice not in client.get("/preferences?saved=stopped", headers=english).text


def test_a_pending_flash_message_shows_beside_the_pages_own_notice(visitor):
    """A message flashed for this browser and the notice its address names both show,
    and the flash is used up (it would otherwise turn up on a later page)."""
    visitor.sign_up("040 123 4567")
    client = visitor.client
    page = client.get("/preferences")
    client.post("/preferences", data={**form_fields(page.text), "stop_all": "x"})
    with client.session_transaction() as session:
        session["_flashes"] = [("message", "A flashed message")]
    english = {"Accept-Language": "en"}
    both = client.get("/preferences?saved=stopped", headers=english).text
    assert "A flashed message" in both and "All marketing is stopped" in both
    assert "A flashed message" not in client.get("/preferences", headers=english).text


# --- A page acts only on the person it was shown for -----------------------------------


def _two_people(app, outbox) -> tuple[str, str]:
    """Two subscribers' link paths (each signed up in a browser of their own)."""
    paths = []
    for number in ("040 123 4567", "050 765 4321"):
        Visitor(app.test_client(), outbox).sign_up(number)
        paths.append(outbox.last_link().removeprefix("https://viihdepaketti.fi"))
    return paths[0], paths[1]


def _states(app) -> dict[str, bool]:
    with app.app_context():
        return {
            s.phone_e164: consent.is_subscribed(s.id)
            for s in db.session.scalars(select(Subscriber))
        }


@pytest.mark.parametrize(
    ("path", "pressed"),
    [
        ("/preferences", {"stop_all": "x"}),
        ("/preferences", {"save": "x"}),
        ("/preferences/sign-out", {}),
    ],
)
def test_a_page_left_open_never_acts_on_the_link_opened_after_it(app, outbox, path, pressed):
    """A's page is open; the same browser then opens B's link (a second tab, or a link
    another site sent it to). A press on A's page changes nothing for either, texts
    nobody, and says why (409, translated); a page shown for B works."""
    first, second = _two_people(app, outbox)
    browser = opened(app, first)
    a_page = form_fields(browser.get("/preferences").text)
    assert browser.get(second).status_code == 302
    texted = len(outbox.messages())

    refused = browser.post(path, data={**a_page, **pressed}, headers={"Accept-Language": "fi"})

    assert refused.status_code == 409
    assert "Tämä sivu oli toisen numeron" in refused.text
    assert _states(app) == {"+358401234567": True, "+358507654321": True}
    assert len(outbox.messages()) == texted
    assert browser.get("/preferences").status_code == 200  # B's link still held
    assert stop_all(browser).status_code == 302
    assert _states(app) == {"+358401234567": True, "+358507654321": False}


def test_an_erasure_page_left_open_never_erases_the_number_confirmed_after_it(app, outbox):
    """A signs up and opens the erasure page; B signs up in the same browser (which then
    holds B's link and a fresh proof of B's number). A's erasure form erases nobody."""
    browser = Visitor(app.test_client(), outbox)
    browser.sign_up("040 123 4567")
    erase_page = browser.client.get("/preferences/erase")
    assert erase_page.status_code == 200
    a_form = form_fields(erase_page.text)
    browser.sign_up("050 765 4321")

    refused = browser.client.post("/preferences/erase", data={**a_form, "understood": "y"})

    assert refused.status_code == 409
    with app.app_context():
        kept = set(db.session.scalars(select(Subscriber.phone_e164)))
    assert kept == {"+358401234567", "+358507654321"}


def test_every_form_on_a_page_reached_by_link_says_whom_it_was_shown_for(app, outbox):
    """The preference page's two forms, the step-up page's (before a code, and its code
    and resend forms after), and the erasure page's carry the subscriber's id; a post to
    any of those routes without it changes nothing and sends nothing (409)."""
    visitor = Visitor(app.test_client(), outbox)
    visitor.sign_up("040 123 4567")  # a fresh proof of the number: the erasure page opens
    browser = visitor.client
    with app.app_context():
        own = str(db.session.scalar(select(Subscriber.id)))
    field = f'name="subscriber" type="hidden" value="{own}"'
    pages = {"/preferences": 2, "/preferences/verify?next=data": 1, "/preferences/erase": 1}
    for path, forms in pages.items():
        assert browser.get(path).text.count(field) == forms, path
    token = csrf_token(browser.get("/preferences").text)
    texted = len(outbox.messages())
    for path, data in (
        ("/preferences", {"stop_all": "x"}),
        ("/preferences/sign-out", {}),
        ("/preferences/verify/send?next=data", {}),
        ("/preferences/verify?next=data", {"code": "123456"}),
        ("/preferences/erase", {"understood": "y"}),
    ):
        assert browser.post(path, data={"csrf_token": token, **data}).status_code == 409, path
    assert _states(app) == {"+358401234567": True}
    assert len(outbox.messages()) == texted
    # A code on its way: the verify page's code and resend forms carry it too.
    later = datetime.now(UTC) + timedelta(minutes=2)  # past the sign-up code's resend wait
    with freeze_time(later, ignore=["limits"]):
        fields = form_fields(browser.get("/preferences/verify?next=data").text)
        sent = browser.post("/preferences/verify/send?next=data", data=fields)
        assert sent.status_code == 302
        assert browser.get("/preferences/verify?next=data").text.count(field) == 2


def test_the_signed_out_page_is_never_cached(app, link, outbox):
    """It names the number (masked): no-store, as every page with personal data."""
    browser = opened(app, link)
    fields = form_fields(browser.get("/preferences").text)
    signed_out = browser.post("/preferences/sign-out", data=fields)
    assert signed_out.status_code == 200 and "**" in signed_out.text
    assert signed_out.headers["Cache-Control"] == "no-store"
