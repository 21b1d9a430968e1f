"""Logging: a request id on every line, JSON lines in production, and no tokens in the
lines that print request paths."""

from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

#: Loggers that print request paths: the dev server's, gunicorn's access lines, and
#: gunicorn's warnings about requests it could not parse (they quote the request line).
PATH_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")
# tokens.TOKEN_PATTERN's shape as a logged line may carry it: any character can be
# percent-encoded (werkzeug decodes the path before routing, gunicorn logs it raw), and
# nothing need come before or after it (a link copied from text brings "." or ")" along).
# Over-redacting look-alikes costs nothing; a missed boundary leaks the link.
_CHAR = r"(?:[A-Za-z0-9_-]|%[0-9A-Fa-f]{2})"
_TOKEN_IN_LINE = re.compile(rf"(?P<subscriber>{_CHAR}{{1,8}})(?:\.|%2[Ee]){_CHAR}{{16}}")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"


class RedactTokens(logging.Filter):
    """Replace every preference token in a line about a request by its subscriber part and '.…'."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKEN_IN_LINE.sub(lambda m: m.group("subscriber") + ".…", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class RequestId(logging.Filter):
    """Stamp each record with the id of the request it belongs to (or '-')."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def install() -> None:
    """Attach the token filters once per process."""
    for name in PATH_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def init_app(app: Flask) -> None:
    """Request ids in and out (X-Request-ID), and JSON lines when LOG_FORMAT=json."""

    @app.before_request
    def _request_id() -> None:
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(8)

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id", "-")
        return response

    if app.config["LOG_FORMAT"] == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter(JSON_FIELDS, timestamp=True))
        handler.addFilter(RequestId())
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
