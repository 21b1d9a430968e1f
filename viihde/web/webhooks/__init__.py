"""Webhooks from SMS providers: one module per provider (today Twilio's), each checking
its own signature; a second provider is a new module here and one in sms/backends/."""

from flask import Blueprint

from viihde.extensions import csrf

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)  # each provider's signature is its authentication

from viihde.web.webhooks import twilio  # noqa: E402, F401  (its views register on bp)
