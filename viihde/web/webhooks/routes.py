"""Twilio's webhooks: signed by Twilio, exempt from CSRF and from nothing else."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, request

from viihde.clock import utcnow
from viihde.extensions import csrf
from viihde.register.replies import handle_inbound, twiml
from viihde.sms.backends.twilio import is_genuine_request
from viihde.sms.delivery import record_status

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)  # the signature is their authentication


@bp.before_request
def require_twilio_signature() -> None:
    """403 for anything Twilio did not sign, checked against the public URL it called."""
    url = current_app.config["PUBLIC_BASE_URL"] + request.full_path.removesuffix("?")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not is_genuine_request(
        url, request.form, signature, current_app.config["TWILIO_AUTH_TOKEN"]
    ):
        current_app.logger.warning("authz_fail webhook=%s reason=signature", request.path)
        abort(403)


@bp.post("/twilio/status")
def status():
    """Record a delivery status (repeats and late arrivals included)."""
    record_status(
        request.form.get("MessageSid", ""),
        request.form.get("MessageStatus", ""),
        request.form.get("ErrorCode") or None,
        utcnow(),
    )
    return "", 204


@bp.post("/twilio/inbound")
def inbound():
    """Act on a reply (STOP, START, HELP) and answer in TwiML."""
    reply = handle_inbound(
        "twilio",
        request.form.get("MessageSid", ""),
        request.form.get("From", ""),
        request.form.get("Body", ""),
        utcnow(),
    )
    return twiml(reply), 200, {"Content-Type": "text/xml; charset=utf-8"}
