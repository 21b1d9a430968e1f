"""Languages: an explicit choice, remembered; then the browser's; then Finnish."""

from __future__ import annotations

import gzip
import re

import pytest
from flask import make_response
from flask_babel import gettext
from sqlalchemy import select

from viihde.extensions import db
from viihde.models import Subscriber

from .helpers import Visitor
from .settings import PUBLIC_BASE_URL


def test_the_switcher_keeps_the_page_and_remembers_the_choice(client):
    """Choose Swedish on the notice: back on the notice, in Swedish, from now on."""
    response = client.get("/language/sv?next=/privacy")
    assert response.status_code == 302
    assert response.headers["Location"] == "/privacy"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=sv") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/privacy", headers={"Accept-Language": "fi"})
    assert '<html lang="sv">' in page.text


def test_the_choice_wins_over_the_browser(client):
    """An English browser that chose Finnish gets Finnish."""
    client.get("/language/fi?next=/")
    assert '<html lang="fi">' in client.get("/", headers={"Accept-Language": "en"}).text


@pytest.mark.parametrize("path", ["/", "/privacy", "/no-such-page"])
def test_a_page_says_its_language_and_what_chose_it(client, path):
    """The landing page, the notice and an error page come in the browser's language or
    the one chosen in the cookie, at one address: a cache in between (a CDN in front of
    the ads' traffic) must keep a copy for each, and is told so."""
    for language in ("sv", "en"):
        page = client.get(path, headers={"Accept-Language": language})
        assert page.headers["Content-Language"] == language
        assert page.vary.as_set() >= {"accept-language", "cookie"}
        assert len(page.headers.getlist("Vary")) == 1


def test_a_response_without_a_language_says_none(client):
    """A response that chose no language (the health check's JSON, an icon) says none."""
    for path in ("/healthz", "/favicon.ico"):
        response = client.get(path)
        assert "Content-Language" not in response.headers and "Vary" not in response.headers


def test_a_page_that_varies_already_gets_one_vary(app, visitor):
    """The code page reads the session (Flask adds Vary: Cookie after the app's hooks); a
    view may set a Vary of its own before them: either way one Vary header names it all."""
    visitor.submit_number("040 123 4567")
    page = visitor.client.get("/code", headers={"Accept-Language": "en"})
    assert page.status_code == 200 and page.headers["Content-Language"] == "en"
    assert page.headers.getlist("Vary") == ["Accept-Language, Cookie"]

    with app.test_request_context("/", headers={"Accept-Language": "sv"}):
        response = make_response(gettext("Your choices are saved."))  # a language chosen
        response.vary.add("Accept-Encoding")  # the view's own
        response = app.process_response(response)  # the app's hooks, then the session's
    assert response.headers["Content-Language"] == "sv"
    assert len(response.headers.getlist("Vary")) == 1
    assert response.vary.as_set() == {"accept-encoding", "accept-language", "cookie"}


def test_every_page_offers_the_other_languages(client):
    """The switcher links to the same page in each language."""
    page = client.get("/privacy").text
    for code in ("sv", "en"):
        assert f'href="/language/{code}?next=/privacy"' in page
    assert '<span lang="fi" aria-current="true">Suomi</span>' in page


def test_the_switcher_never_leads_off_site(client):
    """A foreign 'next' brings the visitor to our front page."""
    for target in ("https://evil.example/", "//evil.example", "javascript:alert(1)"):
        response = client.get("/language/en", query_string={"next": target})
        assert response.headers["Location"] == "/"


def test_an_unknown_language_is_a_404(client):
    """Only fi, sv and en."""
    assert client.get("/language/de?next=/").status_code == 404


def test_a_subscriber_gets_sms_in_the_language_chosen(app, outbox):
    """Chose Swedish, signed up: the code, the welcome and the register are Swedish."""
    client = app.test_client()
    client.get("/language/sv?next=/")
    Visitor(client, outbox).sign_up("040 123 4567")
    code_sms, welcome = outbox.messages()
    assert code_sms["body"].startswith("Din kod")
    assert welcome["body"].startswith("Välkommen")
    with app.app_context():
        assert db.session.scalar(select(Subscriber.language)) == "sv"


def test_the_landing_page_weighs_under_30_kb_from_one_origin(client):
    """HTML, CSS, JS and the tab icon a browser takes (the SVG) together, compressed, stay
    under the budget; nothing from elsewhere (absolute addresses only to our own site: the
    canonical address and the link preview's)."""
    page = client.get("/?utm_source=meta&utm_campaign=joulu")
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
    assert sorted(assets) == [
        "/static/css/site.css",
        "/static/icons/apple-touch-icon.png",
        "/static/icons/favicon.ico",
        "/static/icons/icon.svg",
        "/static/js/site.js",
    ]
    absolute = re.findall(r'(?:href|src|content)="((?:https?:)?//[^"]*)"', page.text)
    assert absolute and all(url.startswith(PUBLIC_BASE_URL + "/") for url in absolute)
    total = len(gzip.compress(page.data))
    for asset in ("/static/css/site.css", "/static/js/site.js", "/static/icons/icon.svg"):
        total += len(gzip.compress(client.get(asset).data))
    assert total < 30 * 1024, total


def test_each_language_is_parsed_once_per_process(app, monkeypatch):
    """Flask-Babel parses what the locale selector gives on every request unless it is a
    Locale already: the selector hands out one Locale per language (issue 18, decision 3)."""
    from babel import Locale
    from flask_babel import get_locale

    parsed: list[object] = []
    real_parse = Locale.parse.__func__

    def counting(cls, identifier, *args, **kwargs):
        if not isinstance(identifier, Locale):
            parsed.append(identifier)
        return real_parse(cls, identifier, *args, **kwargs)

    seen = []
    for language in ("sv", "sv", "en", "sv"):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            monkeypatch.setattr(Locale, "parse", classmethod(counting))
            seen.append(get_locale())
            monkeypatch.undo()
    assert [str(locale) for locale in seen] == ["sv", "sv", "en", "sv"]
    assert seen[0] is seen[1] is seen[3]
    assert parsed.count("sv") <= 1
