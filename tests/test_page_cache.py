"""The per-process cache of rendered fixed texts (Flask-Caching): each language gets its
own, a page with the visitor's own input is never served from it, and nothing personal
ever goes into it."""

from __future__ import annotations

import pytest

from viihde.extensions import cache

from .helpers import csrf_token


def cached_values(app) -> list[str]:
    """Everything in this app's cache, as text."""
    with app.app_context():
        keys = list(app.extensions["cache"][cache]._cache)  # SimpleCache lists no keys
        # A page kept split at its marks reads as the page it was (``shared.spliced``).
        values = [cache.get(key) for key in keys]
        return ["".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in values]


def test_each_language_gets_its_own_cached_texts(app):
    client = app.test_client()
    for _ in range(2):  # the second round comes from the cache
        fi = client.get("/", headers={"Accept-Language": "fi"}).text
        en = client.get("/", headers={"Accept-Language": "en"}).text
        sv = client.get("/", headers={"Accept-Language": "sv"}).text
        assert "Matkapuhelinnumero" in fi and "Mobile number" not in fi
        assert "Mobile number" in en and "Matkapuhelinnumero" not in en
        assert "Mobilnummer" in sv and "Mobile number" not in sv
        privacy_en = client.get("/privacy", headers={"Accept-Language": "en"}).text
        privacy_fi = client.get("/privacy", headers={"Accept-Language": "fi"}).text
        assert "1. Controller" in privacy_en and "1. Rekisterinpitäjä" in privacy_fi


def test_a_refused_number_shows_the_visitors_own_input_not_the_cached_fields(app):
    client = app.test_client()
    client.get("/", headers={"Accept-Language": "en"})
    refused = client.post(
        "/",
        data={"phone": "12345"},
        headers={"Accept-Language": "en"},
    )
    assert refused.status_code == 400
    assert 'value="12345"' in refused.text
    assert 'aria-invalid="true"' in refused.text
    fresh = client.get("/", headers={"Accept-Language": "en"}).text
    assert "12345" not in fresh and 'aria-invalid="true"' not in fresh


def test_campaign_parameters_are_per_visit(app):
    client = app.test_client()
    first = client.get("/?utm_source=ads&utm_campaign=autumn").text
    second = client.get("/?utm_source=other").text
    assert 'value="autumn"' in first and 'value="other"' in second
    assert "autumn" not in second


def test_nothing_personal_is_cached(app, visitor, outbox):
    visitor.submit_number("050 765 4321", landing="/?utm_campaign=autumn-ad")
    code_page = visitor.client.get("/code").text
    assert "+358 50 *** **21" in code_page
    visitor.submit_code(outbox.last_code())
    for path in ("/", "/privacy", "/done", "/preferences"):
        visitor.client.get(path)
    token = csrf_token(visitor.client.get("/preferences").text)
    values = cached_values(app)
    assert values  # the texts are there...
    for value in values:  # ...and nothing of the visitor or their session
        assert "765" not in value and "4321" not in value and "**21" not in value
        assert "autumn-ad" not in value
        assert token not in value and csrf_token(code_page) not in value
        # The preference page's shared copy has a place for the token, never a token.
        assert 'name="csrf_token"' not in value or 'value="__form_mark__"' in value


def test_the_landing_page_counts_the_sms_log_once_per_hint_period(app, monkeypatch):
    from freezegun import freeze_time

    from viihde.register import budget

    counted = []
    real = budget._sent
    monkeypatch.setattr(budget, "_sent", lambda *a: counted.append(1) or real(*a))
    client = app.test_client()
    with freeze_time("2026-11-25 12:00:00", ignore=["limits"]) as clock:
        for _ in range(5):
            assert client.get("/").status_code == 200
        assert len(counted) == 1
        clock.tick(app.config["BUDGET_HINT_SECONDS"] + 1)
        client.get("/")
        assert len(counted) == 2


def test_wtforms_own_messages_come_in_the_pages_language(app):
    from wtforms import IntegerField

    from viihde.web.forms import Form

    class Numbers(Form):
        count = IntegerField()

    for language, expected in (("fi", "Ei ole kelvollinen kokonaisluku"), ("en", "Not a valid")):
        with app.test_request_context(
            "/", method="POST", data={"count": "x"}, headers={"Accept-Language": language}
        ):
            form = Numbers(meta={"csrf": False})
            form.validate()
            assert form.count.errors[0].startswith(expected), form.count.errors


def test_the_cache_keeps_immutable_values_only(app):
    """Each request gets the kept object itself: one it could change is refused."""
    with app.app_context():
        for changeable in ({"page": "x"}, ["x"], bytearray(b"x")):
            with pytest.raises(TypeError):
                cache.set("changeable", changeable)


def test_a_kept_text_is_served_as_it_was_kept_not_a_copy(app):
    """The cache hands back the object it was given (issue 18): cachelib's own pickled
    each value and unpickled a copy on every get, 16 µs for a 16 KB page."""
    page = "Rekisterinpitäjä " * 1_000
    with app.app_context():
        cache.set("a-page", page)
        assert cache.get("a-page") is page
