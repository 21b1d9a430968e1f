"""The preference page reached from the link in every SMS."""

from __future__ import annotations

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from viihde import consent
from viihde.extensions import db
from viihde.models import ConsentEvent, Subscriber

from .conftest import Visitor, csrf_token


@pytest.fixture
def link(visitor, outbox) -> str:
    """A subscriber's preference link path, as the welcome SMS carries it."""
    with freeze_time("2026-11-25 12:00:00"):
        visitor.sign_up("040 123 4567")
    return outbox.last_link().removeprefix("https://viihdepaketti.fi")


@pytest.fixture
def ledger(app):
    """The consent events, oldest first, as (action, source) pairs."""

    def events() -> list[tuple[str, str]]:
        with app.app_context():
            return [
                (e.action, e.source)
                for e in db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
            ]

    return events


def press(client, button: str):
    page = client.get("/preferences")
    return client.post("/preferences", data={"csrf_token": csrf_token(page.text), button: "x"})


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


def test_opening_the_link_changes_nothing(app, link, ledger):
    """Link scanners prefetch: three GETs leave the ledger as it was."""
    before = ledger()
    scanner = app.test_client()
    for _ in range(3):
        scanner.get(link)
        scanner.get("/preferences")
    assert ledger() == before == [("grant", "signup")]


def test_unsubscribe_is_one_press_and_takes_effect_at_once(app, link, ledger):
    """One POST writes a withdrawal with source preference_page; the page says so."""
    browser = app.test_client()
    browser.get(link)
    response = press(browser, "unsubscribe")
    assert response.status_code == 302
    assert ledger() == [("grant", "signup"), ("withdraw", "preference_page")]
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber))
        assert consent.is_subscribed(subscriber.id) is False
    assert 'name="subscribe"' in browser.get("/preferences").text


def test_pressing_unsubscribe_twice_records_one_withdrawal(app, link, ledger):
    """A double submit or a second tab adds nothing."""
    browser = app.test_client()
    browser.get(link)
    token = csrf_token(browser.get("/preferences").text)
    browser.post("/preferences", data={"csrf_token": token, "unsubscribe": "x"})
    browser.post("/preferences", data={"csrf_token": token, "unsubscribe": "x"})
    assert ledger().count(("withdraw", "preference_page")) == 1


def test_subscribe_again_records_a_new_grant(app, link, ledger):
    """Unsubscribe, then subscribe again: two events, subscribed at the end."""
    browser = app.test_client()
    browser.get(link)
    press(browser, "unsubscribe")
    press(browser, "subscribe")
    assert ledger()[-2:] == [("withdraw", "preference_page"), ("grant", "preference_page")]
    assert 'name="unsubscribe"' in browser.get("/preferences").text


def test_preference_change_without_csrf_token_is_refused(app, link, ledger):
    """A forged cross-site POST changes nothing."""
    browser = app.test_client()
    browser.get(link)
    response = browser.post("/preferences", data={"unsubscribe": "x"})
    assert response.status_code == 400
    assert ledger() == [("grant", "signup")]


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
    assert ledger() == [("grant", "signup")]


def test_revoked_link_stops_working(app, link):
    """Rotating the subscriber's link key revokes every link sent so far, open sessions too."""
    browser = app.test_client()
    browser.get(link)
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
