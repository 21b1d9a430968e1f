"""Logging: a request id on every line, JSON lines in production, and no personal data or
secrets in any line: numbers masked and preference links' tokens cut in every record and
its traceback, whichever library logs it; every token-shaped text cut in the lines that
print request paths; no extra fields but our own in JSON lines."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import TextIO

from flask import Flask, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

from viihde.phone import mask

#: Loggers that print request paths: the dev server's, gunicorn's access lines,
#: gunicorn's warnings about requests it could not parse (they quote the request line),
#: and Flask's own line about an unhandled error ("Exception on <path> [GET]", on the
#: app's logger).
PATH_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error", "viihde")
# tokens.TOKEN_PATTERN's shape as a logged line may carry it: any character can be
# percent-encoded (werkzeug decodes the path before routing, gunicorn logs it raw), and
# nothing need come before or after it (a link copied from text brings "." or ")" along).
# Over-redacting look-alikes costs nothing; a missed boundary leaks the link.
_CHAR = r"(?:[A-Za-z0-9_-]|%[0-9A-Fa-f]{2})"
_TOKEN_IN_LINE = re.compile(rf"(?P<subscriber>{_CHAR}{{1,8}})(?:\.|%2[Ee]){_CHAR}{{16}}")
#: In any line, and in its traceback (a database error's DETAIL names the row's values, an
#: unhandled error's line its path): a link's token where an address or a parameter puts
#: it (after "/", "%2F" or "="; anywhere, it would cut names in tracebacks), written
#: with any character percent-encoded; a number as the register keeps it (E.164, with
#: its "+" percent-encoded or left out) or as a Finnish mobile is typed.
_TOKEN_IN_LINK = re.compile(
    rf"(?:(?<=/)|(?<=%2[Ff])|(?<==))(?P<subscriber>{_CHAR}{{1,8}})(?:\.|%2[Ee]){_CHAR}{{16}}"
)
_NUMBER = re.compile(
    r"(?<![\w+.%])(?:(?:\+|%2[Bb])(?P<digits>\d{7,15})|(?P<finnish>358\d{6,12})|0[45]\d{7,9})(?!\d)"
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
#: What a JSON line carries: JSON_FIELDS, the traceback and stack, the time.
_JSON_KEYS = frozenset(
    ("asctime", "levelname", "name", "message", "request_id", "exc_info", "stack_info",
     "timestamp")
)  # fmt: skip
_TRACEBACKS = logging.Formatter()
_WITHHELD = "log_record_withheld reason=its message could not be formatted"
#: Left to ``RedactTokens`` alone: gunicorn's access lines, one a request (8 µs more each),
#: carry a path and no traceback, and no page takes a number in its address.
_ACCESS_LINES = "gunicorn.access"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"


class RedactTokens(logging.Filter):
    """Replace every preference token in a line about a request by its subscriber part and '.…'."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKEN_IN_LINE.sub(lambda m: m.group("subscriber") + ".…", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def private(text: str) -> str:
    """``text`` with every number masked and every link's token cut to its subscriber part."""
    text = _TOKEN_IN_LINK.sub(lambda m: m.group("subscriber") + ".…", text)
    return _NUMBER.sub(_masked, text)


def _masked(found: re.Match) -> str:
    digits = found.group("digits") or found.group("finnish")
    return mask("+" + digits) if digits else "***"


def _private_records(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A record factory around ``make``: each record private as it is made (``private``),
    its traceback too (formatted now, made private, kept as its text), whichever logger
    and handler it goes to (a library's own, or Python's last resort on stderr)."""

    def made(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if record.name == _ACCESS_LINES:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a logging call's own bug (arguments that do not fit): no raise
            message = _WITHHELD  # and no handler printing its arguments raw to stderr
        cleaned = private(message)
        if cleaned != message or message is _WITHHELD:
            record.msg, record.args = cleaned, ()
        if record.exc_info:
            try:
                record.exc_text = private(_TRACEBACKS.formatException(record.exc_info))
            except Exception:  # an exception whose text cannot be made: its type only
                record.exc_text = f"{record.exc_info[0].__name__} (its text withheld)"
            record.exc_info = None
        return record

    made.viihde_private = True
    return made


class JsonLines(JsonFormatter):
    """One JSON object a line with JSON_FIELDS, the traceback and the time, and never a
    library's extra fields: RQ logs a failed job with its arguments (an SMS's text, with
    its code or live link). The record is left as it is for any other handler."""

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_data, record, message_dict)
        for key in [key for key in log_data if key not in _JSON_KEYS]:
            del log_data[key]


class RequestId(logging.Filter):
    """Stamp each record with the id of the request it belongs to (or '-')."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def install() -> None:
    """Make every record private, and attach the token filters, once per process."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "viihde_private", False):
        logging.setLogRecordFactory(_private_records(factory))
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
        root = logging.getLogger()
        root.handlers[:] = [json_handler()]
        root.setLevel(logging.INFO)


def json_handler(stream: TextIO | None = None) -> logging.Handler:
    """One JSON object a line (JSON_FIELDS, the traceback, nothing else), to ``stream``
    (standard error when None)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines(JSON_FIELDS, timestamp=True))
    handler.addFilter(RequestId())
    return handler
