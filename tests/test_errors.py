"""Bad requests get a clear, translated page and a 4xx; surprises a 500 with a reference."""

from __future__ import annotations

import logging

import pytest
from flask import abort
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import SmsMessage

from .conftest import csrf_token


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


def test_huge_body_is_refused_with_413_and_no_sms(client, outbox):
    """A body past MAX_CONTENT_LENGTH never reaches the form."""
    token = csrf_token(client.get("/").text)
    response = client.post(
        "/", data={"csrf_token": token, "phone": "040 123 4567", "consent": "y", "x": "9" * 100_000}
    )
    assert response.status_code == 413
    assert outbox.messages() == []


def test_expired_form_gets_the_friendly_csrf_page(client, outbox):
    """A landing page left open too long: a 400 page that says to reload, no SMS."""
    response = client.post(
        "/",
        data={"csrf_token": "stale", "phone": "040 123 4567", "consent": "y"},
        headers={"Accept-Language": "en"},
    )
    assert response.status_code == 400
    assert "reload the page" in response.text
    assert outbox.messages() == []


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


def test_access_logs_never_show_a_preference_token(app, caplog):
    """The dev server's (and gunicorn's) request lines lose the token's signature."""
    token = "AQ.I08kXpW0UpfC7tTT"
    with caplog.at_level(logging.INFO):
        logging.getLogger("werkzeug").info(
            '127.0.0.1 - - "%s %s HTTP/1.1" 302 -', "GET", "/" + token
        )
        logging.getLogger("gunicorn.access").info('"GET /%s HTTP/1.1" 302', token)
    assert "I08kXpW0UpfC7tTT" not in caplog.text
    assert "/AQ.…" in caplog.text
