"""The preference centre people reach from the link in every SMS."""

from flask import Blueprint
from werkzeug.routing import BaseConverter

from viihde.tokens import TOKEN_PATTERN

bp = Blueprint("preferences", __name__)


class TokenConverter(BaseConverter):
    """Matches only what looks like a preference token, so other paths are untouched."""

    regex = TOKEN_PATTERN


from viihde.web.preferences import routes, step_up  # noqa: E402, F401  (the views register themselves on bp)
