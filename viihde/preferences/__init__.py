"""The preference page people reach from the link in every SMS."""

from werkzeug.routing import BaseConverter

from ..tokens import TOKEN_PATTERN


class TokenConverter(BaseConverter):
    """Matches only what looks like a preference token, so other paths are untouched."""

    regex = TOKEN_PATTERN
