"""Twilio's webhooks: delivery status and inbound replies, each signed by Twilio (checked
with the SDK against the public URL it called, never the Host header); replies are
answered in TwiML. The only web module that knows ``twilio``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import wraps

from flask import abort, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.register.replies import handle_inbound
from viihde.sms.delivery import record_status
from viihde.web.webhooks import bp


def is_genuine_request(
    url: str, params: Mapping[str, str], signature: str, auth_token: str | None
) -> bool:
    """Did Twilio sign this webhook? ``url`` is the public URL Twilio called."""
    if not auth_token or not signature:
        return False
    return RequestValidator(auth_token).validate(url, dict(params), signature)


def twiml(reply: str | None) -> str:
    """The TwiML answer to an inbound webhook: the reply, or nothing to send."""
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return str(response)


def signed_by_twilio(view):
    """403 for anything Twilio did not sign, checked against the public URL it called."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        url = current_app.config["PUBLIC_BASE_URL"] + request.full_path.removesuffix("?")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not is_genuine_request(
            url, request.form, signature, current_app.config["TWILIO_AUTH_TOKEN"]
        ):
            current_app.logger.warning("authz_fail webhook=%s reason=signature", request.path)
            abort(403)
        return view(*args, **kwargs)

    return wrapped


@bp.post("/twilio/status")
@signed_by_twilio
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
@signed_by_twilio
def inbound():
    """Act on a reply (STOP, START, HELP) and answer in TwiML."""
    reply = handle_inbound(
        "twilio",
        request.form.get("MessageSid", ""),
        request.form.get("From", ""),
        request.form.get("Body", ""),
        utcnow(),
        request.form.get("OptOutType"),
    )
    db.session.commit()  # the stored reply with what it changed, or nothing
    return twiml(reply), 200, {"Content-Type": "text/xml; charset=utf-8"}
