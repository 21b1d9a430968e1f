"""Error pages, registered in one place: a clear, translated message and a 4xx."""

from __future__ import annotations

import logging
import secrets

from flask import Flask, g, render_template
from flask.globals import request_ctx
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from viihde.extensions import db
from viihde.web.security import CrossSiteRequest

log = logging.getLogger(__name__)

MESSAGES = {
    400: (
        _l("Something went wrong"),
        _l("We could not handle that request. Please go back and try again."),
    ),
    404: (
        _l("This page or link does not work"),
        _l(
            "The link may be incomplete, or it has been replaced by a newer one. "
            "Open the link in the latest text message from us, or start again from the front page."
        ),
    ),
    405: (
        _l("Something went wrong"),
        _l("We could not handle that request. Please go back and try again."),
    ),
    409: (
        _l("This page was for another number"),
        _l(
            "Nothing was changed: this browser has opened another message settings link "
            "since the page was shown. Open the link in the latest text message from us again."
        ),
    ),
    413: (_l("Too much data"), _l("What you sent was too large. Please go back and try again.")),
    429: (
        _l("Please wait a moment"),
        _l("Too many tries in a short time. Please wait a moment and try again."),
    ),
    500: (
        _l("Something went wrong on our side"),
        _l("We are sorry. Please try again in a moment."),
    ),
}
CROSS_SITE_MESSAGE = (
    _l("Please use our own page"),
    _l(
        "For your security, this form works only on our own page. "
        "Please go to the front page and try again."
    ),
)
CSRF_MESSAGE = (
    _l("The page had expired"),
    _l(
        "For your security, forms stop working after a while. "
        "Please go back, reload the page and try again."
    ),
)


def _render(status: int, title, message, incident: str | None = None):
    # A statement that failed leaves the transaction unusable (PostgreSQL refuses every
    # later one): the error page, whose context may read the register, starts afresh.
    db.session.rollback()
    if request_ctx.url_adapter is None:  # refused before routing (an untrusted Host)
        return f"{title}\n", status, {"Content-Type": "text/plain; charset=utf-8"}
    g.error_page = True
    return (
        render_template(
            "errors/error.html", status=status, title=title, message=message, incident=incident
        ),
        status,
    )


def register(app: Flask) -> None:
    """Install the handlers for CSRF failures, HTTP errors and unexpected exceptions."""

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError):
        log.info("malicious_csrf reason=%s", error.description)
        return _render(400, *CSRF_MESSAGE)

    @app.errorhandler(CrossSiteRequest)
    def cross_site(error: CrossSiteRequest):
        return _render(403, *CROSS_SITE_MESSAGE)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        title, message = MESSAGES.get(status, MESSAGES[400] if status < 500 else MESSAGES[500])
        body, status, *own = _render(status, title, message)
        # The error's own headers stay with our page: Allow on a 405, Retry-After on a 429.
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        return body, status, [*(own[0].items() if own else ()), *headers]

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError):
        incident = secrets.token_hex(4)
        log.error("unhandled_error incident=%s", incident, exc_info=error.original_exception)
        return _render(500, *MESSAGES[500], incident=incident)
