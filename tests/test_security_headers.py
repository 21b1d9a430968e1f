"""Headers and cookies on every response: CSP, framing, referrers, HSTS, cookie flags."""

from __future__ import annotations

import base64
import json
import re
import sys
import zlib

import pytest

from viihde import create_app
from viihde.web import security

from .settings import SECRET_KEY

OUR_SCRIPT = '<script src="/static/js/site.js" defer>'
REQUIRED_CSP = [
    "default-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
]


def get_routes(app) -> list[str]:
    """Every GET route that takes no arguments."""
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and not rule.arguments and not rule.rule.startswith("/static")
    )


def test_every_page_has_a_strict_csp_and_the_other_headers(app, client):
    """CSP without unsafe-inline, nosniff, same-origin referrers, no framing: on every route."""
    routes = get_routes(app)
    assert "/" in routes and "/privacy" in routes and "/staff/login" in routes
    for route in routes:
        response = client.get(route)
        csp = response.headers["Content-Security-Policy"]
        for directive in REQUIRED_CSP:
            assert directive in csp, (route, csp)
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["X-Frame-Options"] == "DENY"
        for name in security.response_headers(production=False):  # each once, no doubles
            assert len(response.headers.getlist(name)) == 1, (route, name)
        if response.mimetype == "text/html":
            assert "charset=utf-8" in response.headers["Content-Type"]


@pytest.mark.own_app
def test_a_response_with_its_own_security_header_gets_ours_in_its_place(app, client):
    """The hook adds its headers (it does not look for each one first), except when the
    response carries one of them already: then ours replace it, never a second copy."""

    @app.get("/__own_framing")
    def own_framing():
        return "framed", 200, {"X-Frame-Options": "SAMEORIGIN"}

    response = client.get("/__own_framing")
    assert response.headers.getlist("X-Frame-Options") == ["DENY"]
    assert len(response.headers.getlist("Content-Security-Policy")) == 1


def test_error_pages_carry_the_headers_too(client):
    """A 404 is a page like any other."""
    response = client.get("/no-such-page")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_the_headers_are_worked_out_once_not_per_response(monkeypatch, app, client):
    """Built with the app and set by one hook: no response rebuilds them (Flask-Talisman,
    which did, is gone), and a 500 carries them as a page does."""
    monkeypatch.setattr(security, "response_headers", None)  # any call now fails
    for path in ("/", "/privacy", "/static/css/site.css", "/no-such-page"):
        headers = client.get(path).headers
        assert headers["Content-Security-Policy"].startswith("default-src 'self'; ")
        assert headers["Permissions-Policy"] == "browsing-topics=()"
    assert "flask_talisman" not in sys.modules


def test_no_page_has_inline_script_or_style(app, client):
    """The CSP can stay strict because no template relies on inline code."""
    for route in get_routes(app):
        response = client.get(route)
        if response.mimetype != "text/html":
            continue  # the icons at the root, the health checks' JSON
        text = response.text
        assert re.findall(r"<script[^>]*>", text) in ([], [OUR_SCRIPT]), route
        assert "style=" not in text, route
        assert "<style" not in text, route


@pytest.fixture
def production_app(database_uri, tmp_path):
    return create_app(
        {
            "APP_ENV": "production",
            "SECRET_KEY": SECRET_KEY,
            "HASH_KEY": "h" + SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": database_uri,
            "PUBLIC_BASE_URL": "https://viihdepaketti.fi",
            "SESSION_COOKIE_SECURE": True,
            "SMS_BACKEND": "file",
            "SMS_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
        }
    )


def test_production_sends_hsts_for_a_year_with_subdomains(production_app):
    """HSTS in production only."""
    response = production_app.test_client().get("/", base_url="https://viihdepaketti.fi")
    hsts = response.headers["Strict-Transport-Security"]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts


def test_development_sends_no_hsts(client):
    """A laptop on http is not told to insist on https."""
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_production_cookies_are_host_only_secure_httponly_lax(production_app):
    """__Host- prefix, Secure, HttpOnly and SameSite=Lax on the session cookie."""
    client = production_app.test_client()
    response = client.get("/staff/login", base_url="https://viihdepaketti.fi")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session=")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert flag in cookie
    assert "Domain=" not in cookie


def test_production_answers_only_to_its_own_host(production_app):
    """A forged Host header gets 400 (TRUSTED_HOSTS from PUBLIC_BASE_URL)."""
    client = production_app.test_client()
    refused = client.get("/", base_url="https://evil.example")
    assert refused.status_code == 400
    assert refused.headers["Content-Type"].startswith("text/plain")  # no page: not routed
    assert client.get("/", base_url="https://viihdepaketti.fi").status_code == 200


def test_trusted_hosts_are_compared_as_browsers_send_them(database_uri, tmp_path):
    """A host set in capitals is the same host: browsers send it in lower case."""
    for setting in ({"TRUSTED_HOSTS": ["Viihdepaketti.FI"]}, {}):
        app = create_app(
            {
                "APP_ENV": "production",
                "SECRET_KEY": SECRET_KEY,
                "HASH_KEY": "h" + SECRET_KEY,
                "SQLALCHEMY_DATABASE_URI": database_uri,
                "PUBLIC_BASE_URL": "https://Viihdepaketti.FI",
                "SMS_BACKEND": "file",
                "SMS_OUTBOX_PATH": str(tmp_path / "outbox.jsonl"),
                **setting,
            }
        )
        client = app.test_client()
        assert client.get("/", base_url="https://viihdepaketti.fi").status_code == 200
        assert client.get("/", base_url="https://evil.example").status_code == 400


def test_development_cookies_are_httponly_and_lax(client):
    """Off https the cookie cannot be Secure, but the rest holds."""
    cookie = client.get("/staff/login").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def decode_session(cookie_value: str) -> str:
    """The readable content of a Flask session cookie (signed, not encrypted)."""
    compressed = cookie_value.startswith(".")  # itsdangerous marks zlib payloads so
    data = cookie_value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return (zlib.decompress(raw) if compressed else raw).decode()


def test_the_session_holds_no_personal_data(visitor, outbox):
    """Through sign-up, confirmation and the preference link: no number in the cookie."""
    visitor.submit_number("040 123 4567")
    visitor.submit_code(outbox.last_code())
    visitor.client.get(outbox.last_link().removeprefix("https://viihdepaketti.fi"))
    content = decode_session(visitor.client.get_cookie("session").value)
    json.loads(content)  # it is the session, readable
    for fragment in ("358401234567", "0401234567", "1234567"):
        assert fragment not in content


def test_the_session_serializer_is_built_once_until_the_key_changes(app, visitor):
    """The cookie's signer is built once, not twice a request; a new SECRET_KEY (or a
    fallback) gets a new one, and a cookie signed under a fallback key still reads."""
    visitor.submit_number("040 123 4567")
    first = app.session_interface.get_signing_serializer(app)
    visitor.client.get("/code")
    assert app.session_interface.get_signing_serializer(app) is first
    old_key = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = old_key + "-rotated"
    app.config["SECRET_KEY_FALLBACKS"] = [old_key]
    assert app.session_interface.get_signing_serializer(app) is not first
    assert visitor.client.get("/code").status_code == 200  # the old cookie still reads


def test_flask_login_works_under_staff_only(app):
    """Flask-Login's hooks are the staff pages' (issue 18, decision 3): none runs on the
    app's every request (its ``init_app`` would add one after each, which reads the
    session), and the staff blueprint's own check signs the staff in."""

    def from_flask_login(hooks: dict) -> list:
        return [hook for hook in hooks.get(None, []) if hook.__module__.startswith("flask_login")]

    assert from_flask_login(app.before_request_funcs) == []
    assert from_flask_login(app.after_request_funcs) == []
    assert app.login_manager is not None and app.login_manager._user_callback is not None
    assert app.before_request_funcs.get("staff")
