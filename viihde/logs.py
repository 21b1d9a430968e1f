"""Logging guards: preference-link tokens are redacted from access log lines."""

from __future__ import annotations

import logging
import re

from .tokens import TOKEN_PATTERN

#: Access logs that print request paths: the dev server's and gunicorn's.
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")
_TOKEN_IN_PATH = re.compile(r"/(" + TOKEN_PATTERN + r")(?=[\s?\"]|$)")


class RedactTokens(logging.Filter):
    """Replace a preference token in a logged path by its subscriber part and '…'."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKEN_IN_PATH.sub(lambda m: "/" + m.group(1).split(".")[0] + ".…", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install() -> None:
    """Attach the filters once per process."""
    for name in ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
