"""The landing page carries no session: the same bytes for everyone in a language, the ad's
attribution spliced in, and a sign-up POST checked by Fetch Metadata and Origin instead of
a CSRF token (every other form keeps its token)."""

from __future__ import annotations

import re

import pytest
from flask import flash, template_rendered
from sqlalchemy import select

from .helpers import csrf_token
from .settings import PUBLIC_BASE_URL

SIGN_UP = {"phone": "040 123 4567", "consent": "y"}


def attribution_inputs(page: str) -> list[str]:
    return re.findall(r'<input id="(?:utm_\w+|click_id)"[^>]*>', page)


@pytest.fixture
def session_reads(app, monkeypatch) -> list[bool]:
    """Whether each request's session was read, in order (Flask's ``session.accessed``)."""
    accessed = []
    interface = app.session_interface
    save = interface.save_session

    def saved(app, session, response):
        accessed.append(session.accessed)
        return save(app, session, response)

    monkeypatch.setattr(interface, "save_session", saved)
    return accessed


def test_the_landing_page_sets_no_cookie(app, session_reads):
    """A first visit, an ad visit and a repeat visit: no Set-Cookie, the session never
    read, no token in the page. (It varies with the language cookie, and says so: Vary
    names Cookie and Accept-Language, as every page's does.)"""
    client = app.test_client()
    for path in ("/", "/?utm_campaign=syksy&gclid=abc", "/"):
        response = client.get(path)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers
        assert response.headers["Vary"] == "Accept-Language, Cookie"
        assert "csrf_token" not in response.text
    assert client.get_cookie("session") is None
    assert session_reads == [False, False, False]


def test_every_visitor_gets_the_same_bytes_rendered_once_per_language(app):
    """Two visitors in one language get identical pages, the template rendered for the first
    only; another language is its own page."""
    rendered = []

    def count(sender, template, context, **extra):
        rendered.append(template.name)

    with template_rendered.connected_to(count, app):
        first = app.test_client().get("/", headers={"Accept-Language": "fi"}).data
        second = app.test_client().get("/", headers={"Accept-Language": "fi"}).data
        swedish = app.test_client().get("/", headers={"Accept-Language": "sv"}).data
    assert first == second
    assert b'lang="sv"' in swedish and swedish != first
    assert rendered.count("signup/landing.html") <= 2  # one per language, at most


def test_the_attribution_is_the_only_difference_and_is_escaped(app):
    """The ad's parameters go into the form's hidden fields and the language switcher's way
    back, escaped; everything else is the shared page's."""
    plain = app.test_client().get("/").text
    hostile = '"><script>alert(1)</script>'
    page = app.test_client().get("/", query_string={"utm_campaign": hostile, "utm_source": "fb"})
    page = page.text
    assert "<script>alert" not in page
    assert attribution_inputs(page) == [
        '<input id="utm_source" name="utm_source" type="hidden" value="fb">',
        '<input id="utm_campaign" name="utm_campaign" type="hidden" '
        'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">',
    ]
    assert attribution_inputs(plain) == []
    switch = re.search(r'href="(/language/sv\?next=[^"]+)"', page).group(1)
    # The way back is the address as the browser sent it (url_for did the same).
    assert "utm_source%3Dfb" in switch and "%253Cscript" in switch
    without_inputs = "".join(page.split("".join(attribution_inputs(page))))
    assert re.sub(r"next=[^\"]+", "", without_inputs) == re.sub(r"next=[^\"]+", "", plain)


def test_an_attribution_that_spells_a_mark_is_kept_as_it_came(app):
    """The shared page's marks are replaced before the visit's values go in: a value that
    spells the switcher's mark stays as the ad sent it (it got the visit's address, and the
    consent record would have kept that)."""
    from viihde.web.signup.shared import RETURN_MARK

    page = app.test_client().get("/", query_string={"utm_source": RETURN_MARK}).text
    assert attribution_inputs(page) == [
        f'<input id="utm_source" name="utm_source" type="hidden" value="{RETURN_MARK}">'
    ]


@pytest.mark.parametrize(
    ("query", "click_id"),
    [({"gclid": "\x01"}, None), ({"gclid": "\x01", "fbclid": "ok"}, "fbclid:ok")],
)
def test_a_click_id_of_control_characters_is_none(query, click_id):
    """Nothing printable left: no click id (it was recorded as "gclid:None"), and the next
    parameter's counts."""
    from werkzeug.datastructures import MultiDict

    from viihde.web.signup.forms import attribution_from

    assert attribution_from(MultiDict(query))["click_id"] == click_id


def test_a_click_id_posted_with_control_characters_is_cleaned_as_the_addresss(visitor, outbox, app):
    """The form's hidden click id is cleaned as the address's values are: no control or
    direction characters reach the consent record (and its receipt, card and export)."""
    visitor.submit_number("040 123 4567", click_id="\x1b[2J\r\n\u202egclid:" + "A" * 300)
    visitor.submit_code(outbox.last_code())
    with app.app_context():
        from viihde.extensions import db
        from viihde.models import ConsentEvent

        click_ids = {e.click_id for e in db.session.scalars(select(ConsentEvent))}
    (click_id,) = click_ids
    assert click_id.isprintable() and click_id.startswith("[2Jgclid:AAA") and len(click_id) == 255


def test_the_attribution_reaches_the_consent_record(visitor, outbox, app):
    """Spliced fields post as the rendered ones did."""
    visitor.sign_up(landing="/?utm_source=meta&utm_campaign=joulu&fbclid=xyz")
    with app.app_context():
        from viihde.models import ConsentEvent

        event = ConsentEvent.query.first()
        assert (event.utm_source, event.utm_campaign) == ("meta", "joulu")
        assert event.click_id == "fbclid:xyz"


@pytest.mark.own_app  # adds a route that flashes
def test_a_flash_is_shown_to_its_visitor_only(app):
    """A message flashed before a redirect to the landing page reaches that visitor, and
    never the copy everyone else gets."""

    @app.get("/__flash")
    def flash_and_go():
        flash("Viesti juuri sinulle")
        return "", 302, {"Location": "/"}

    visitor = app.test_client()
    assert "Viesti juuri sinulle" in visitor.get("/__flash", follow_redirects=True).text
    assert "Viesti juuri sinulle" not in visitor.get("/").text
    assert "Viesti juuri sinulle" not in app.test_client().get("/").text


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another origin
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # a sandboxed frame or a data: page
        {"Origin": "http://viihdepaketti.fi"},  # not our scheme
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://viihdepaketti.fi.evil.example"},
    ],
)
def test_a_cross_site_sign_up_is_refused_before_any_sms(client, outbox, headers):
    """A form on another site posting to ours: 403 with a translated page, nothing sent,
    nothing counted."""
    response = client.post("/", data=SIGN_UP, headers={**headers, "Accept-Language": "en"})
    assert response.status_code == 403
    assert "this form works only on our own page" in response.text
    assert outbox.messages() == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin", "Origin": PUBLIC_BASE_URL},
        {"Origin": PUBLIC_BASE_URL.upper()},
        {"Sec-Fetch-Site": "none"},  # the address typed or bookmarked
        {},  # a browser that sends neither
    ],
)
def test_a_same_site_sign_up_without_a_token_is_accepted(client, outbox, headers):
    """Our own page's POST needs no token: the code goes, the browser goes to the code page."""
    response = client.post("/", data=SIGN_UP, headers=headers)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/code")
    assert len(outbox.messages()) == 1


def test_every_other_form_keeps_its_token(visitor, client):
    """The code page, the staff sign-in and the preference forms still refuse a POST
    without Flask-WTF's token, even from our own origin."""
    same_site = {"Sec-Fetch-Site": "same-origin", "Origin": PUBLIC_BASE_URL}
    visitor.submit_number("040 123 4567")
    assert (
        visitor.client.post("/code", data={"code": "123456"}, headers=same_site).status_code == 400
    )
    response = client.post(
        "/staff/login", data={"email": "a@b.fi", "password": "x"}, headers=same_site
    )
    assert response.status_code == 400
    page = visitor.client.get("/code").text
    assert csrf_token(page)


def test_the_privacy_notice_is_rendered_once_per_language_and_sets_no_cookie(app, session_reads):
    """The notice is the same for everyone in a language: rendered for the first reader,
    then served as it is; no cookie, the session never read."""
    rendered = []

    def count(sender, template, context, **extra):
        rendered.append(template.name)

    with template_rendered.connected_to(count, app):
        first = app.test_client().get("/privacy", headers={"Accept-Language": "en"})
        second = app.test_client().get("/privacy", headers={"Accept-Language": "en"})
    assert first.data == second.data and b"1. Controller" in first.data
    assert rendered.count("pages/privacy.html") == 1
    assert "Set-Cookie" not in second.headers
    assert session_reads == [False, False]


def test_a_cached_landing_page_builds_no_form(app, monkeypatch):
    """Once rendered, the landing page is served without building a form object."""
    from viihde.web.signup import forms

    app.test_client().get("/")  # rendered and kept
    monkeypatch.setattr(forms.SignupForm, "__init__", None)  # building one now would fail
    assert app.test_client().get("/").status_code == 200


@pytest.mark.parametrize(
    ("base_url", "origin", "accepted"),
    [
        ("https://viihdepaketti.fi:443", "https://viihdepaketti.fi", True),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443", True),
        ("https://127.0.0.1:8443", "https://127.0.0.1", False),
    ],
)
def test_the_origin_is_compared_as_browsers_name_it(app, outbox, base_url, origin, accepted):
    """A default port in PUBLIC_BASE_URL is not part of the origin a browser sends; any
    other port is."""
    app.config["PUBLIC_BASE_URL"] = base_url
    response = app.test_client().post("/", data=SIGN_UP, headers={"Origin": origin})
    assert response.status_code == (302 if accepted else 403)
    assert len(outbox.messages()) == (1 if accepted else 0)
