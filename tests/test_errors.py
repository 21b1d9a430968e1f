"""Bad requests get a clear, translated page and a 4xx; surprises a 500 with a reference."""

from __future__ import annotations

import logging
from urllib.parse import unquote

import pytest
from flask import abort
from gunicorn.config import AccessLogFormat
from gunicorn.glogging import SafeAtoms
from gunicorn.http.errors import InvalidRequestLine
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.urls import uri_to_iri

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import SmsMessage

from .helpers import SIGNATURE, WRITTEN
from .settings import PUBLIC_BASE_URL


def test_unknown_page_is_a_friendly_404(client):
    """A mistyped address gets the translated 'does not work' page."""
    response = client.get("/no-such-page", headers={"Accept-Language": "en"})
    assert response.status_code == 404
    assert "This page or link does not work" in response.text


def test_wrong_method_is_a_405_page(client):
    """GET on a POST-only address is refused politely."""
    response = client.get("/code/resend")
    assert response.status_code == 405
    assert "<h1>" in response.text
    assert "POST" in response.headers["Allow"]  # the error's own header stays with our page


def test_huge_body_is_refused_with_413_and_no_sms(client, outbox):
    """A body past MAX_CONTENT_LENGTH never reaches the form."""
    response = client.post("/", data={"phone": "040 123 4567", "consent": "y", "x": "9" * 100_000})
    assert response.status_code == 413
    assert outbox.messages() == []


@pytest.mark.parametrize("body", ["0", "[]", '"040 123 4567"', "null", '{"phone": 401234567}'])
def test_a_json_body_is_not_a_form(client, outbox, body):
    """The forms are HTML forms: a JSON body (even a bare number, with a valid CSRF header)
    is a form with nothing in it, a 4xx, and no SMS; Flask-WTF alone would answer `0` with
    a 500."""
    response = client.post(
        "/", data=body, content_type="application/json", headers={"Accept-Language": "en"}
    )
    assert 400 <= response.status_code < 500
    assert outbox.messages() == []


def test_expired_form_gets_the_friendly_csrf_page(visitor, outbox):
    """A code page left open too long: a 400 page that says to reload, no SMS."""
    visitor.submit_number("040 123 4567")
    response = visitor.client.post(
        "/code/resend", data={"csrf_token": "stale"}, headers={"Accept-Language": "en"}
    )
    assert response.status_code == 400
    assert "reload the page" in response.text
    assert len(outbox.messages()) == 1  # the first code; the stale form sent none


def test_the_form_token_is_checked_on_unsafe_methods_only(app, visitor, monkeypatch):
    """A GET asks nothing of Flask-WTF (its own hook looked up the view's exemption on
    every request); a POST without a token is still refused, and an exempt view (the
    sign-up, guarded by Fetch Metadata instead) still takes one."""
    from viihde.extensions import csrf

    checked = []
    real = csrf.protect
    monkeypatch.setattr(csrf, "protect", lambda **kw: checked.append(kw) or real(**kw))
    for path in ("/", "/privacy", "/code"):
        visitor.client.get(path)
    assert checked == []
    assert visitor.client.post("/code/resend", data={}).status_code == 400
    assert visitor.submit_number("040 123 4567").status_code == 302
    assert checked == [{"apply_exemptions": True}] * 2


@pytest.mark.parametrize("config_overrides", [{"WTF_CSRF_CHECK_DEFAULT": False}])
def test_a_setting_that_turns_the_default_check_off_keeps_it_off(app, visitor, monkeypatch):
    """Flask-WTF's WTF_CSRF_CHECK_DEFAULT=False (each view calls csrf.protect itself) is
    kept: the app's own hook, which stands in for Flask-WTF's, does not check then."""
    from viihde.extensions import csrf

    checked = []
    monkeypatch.setattr(csrf, "protect", lambda **kw: checked.append(kw))
    assert visitor.client.post("/code/resend", data={}).status_code == 302  # no pending code
    assert checked == []


@pytest.mark.own_app  # adds a route
def test_unexpected_error_shows_a_reference_and_no_traceback(app, caplog):
    """A bug gives a 500 page with an incident id that is also in the log."""
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/boom", headers={"Accept-Language": "en"})
    assert response.status_code == 500
    assert "Traceback" not in response.text
    assert "kaboom" not in response.text
    incident = response.text.split("Error reference: ")[1][:8]
    assert f"incident={incident}" in caplog.text


@pytest.mark.own_app  # adds a route and a context processor
@pytest.mark.parametrize(("then", "status"), [("raise", 500), ("abort", 404)])
def test_an_error_page_after_a_statement_the_database_refused_still_renders(app, then, status):
    """The failed transaction is rolled back first, so an error page that reads the register
    (as the console's pause banner does) renders instead of failing again."""
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.context_processor
    def reads_the_register() -> dict:
        return {"logged": db.session.scalar(select(func.count()).select_from(SmsMessage))}

    @app.get("/refused")
    def refused():
        now = utcnow()
        row = SmsMessage(phone_e164="+15550000000", kind="test", body="x", segments=0,
                         backend="file", status="queued", attempts=0, created_at=now,
                         updated_at=now)  # fmt: skip
        db.session.add(row)
        try:
            db.session.flush()  # segments >= 1: the database refuses the row
        except IntegrityError:
            if then == "abort":
                abort(404)
            raise

    response = app.test_client().get("/refused", headers={"Accept-Language": "en"})
    assert response.status_code == status
    assert "<h1>" in response.text


def test_pages_speak_swedish_and_english_when_asked(client):
    """Accept-Language picks Swedish or English; html lang follows."""
    assert '<html lang="sv">' in client.get("/", headers={"Accept-Language": "sv-FI"}).text
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "en-GB"}).text
    assert '<html lang="fi">' in client.get("/", headers={"Accept-Language": "de"}).text


def werkzeug_line(path: str) -> None:
    """What the dev server logs for a request (its path decoded as for routing)."""
    logging.getLogger("werkzeug").info(
        '127.0.0.1 - - [27/Nov/2026 10:00:00] "%s" %s %s\n',
        f"GET {uri_to_iri(path)} HTTP/1.1",
        "404",
        "-",
    )


def gunicorn_line(path: str) -> None:
    """What gunicorn logs with its default format: the raw path, and where the click came from."""
    atoms = {"h": "127.0.0.1", "t": "[27/Nov/2026:10:00:00 +0200]", "s": "404", "b": "207"}
    atoms |= {"r": f"GET {path} HTTP/1.1", "f": PUBLIC_BASE_URL + path, "a": "Mozilla/5.0"}
    logging.getLogger("gunicorn.access").info(AccessLogFormat.default, SafeAtoms(atoms))


def gunicorn_bad_request(path: str) -> None:
    """What a gunicorn worker warns when it cannot parse a request line (a space in it)."""
    error = InvalidRequestLine(f"GET {path} copied with a space HTTP/1.1")
    logging.getLogger("gunicorn.error").warning(f"Invalid request from ip=127.0.0.1: {error}")


@pytest.mark.parametrize("path", WRITTEN.values(), ids=WRITTEN.keys())
@pytest.mark.parametrize(
    "log_line",
    [werkzeug_line, gunicorn_line, gunicorn_bad_request],
    ids=["werkzeug", "gunicorn", "gunicorn-bad-request"],
)
def test_access_logs_never_show_a_preference_token(app, caplog, log_line, path):
    """The dev server's and gunicorn's lines about a request lose the token's signature,
    however the link was written; the subscriber part stays for tracing."""
    with caplog.at_level(logging.INFO):
        log_line(path)
    (line,) = [r.getMessage() for r in caplog.records if "GET" in r.getMessage()]
    assert SIGNATURE not in line
    assert SIGNATURE not in unquote(line)
    assert ".…" in line
