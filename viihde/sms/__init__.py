"""Sending SMS: every message is logged as a row, then handed to the configured backend."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app

from ..extensions import db
from ..models import SmsMessage
from ..phone import mask
from .backends import Outgoing, SendFailed, backend_from_config
from .segments import segmentation

log = logging.getLogger(__name__)
REDACTED_CODE = "******"


def send_sms(
    to: str,
    body: str,
    kind: str,
    now: datetime,
    *,
    subscriber_id: int | None = None,
    secret: str | None = None,
) -> SmsMessage:
    """Log and send one SMS; ``secret`` (a one-time code) is kept out of the log row.

    A backend failure is recorded on the row (status ``failed``), not raised.
    """
    config = current_app.config
    stored_body = body.replace(secret, REDACTED_CODE) if secret else body
    message = SmsMessage(
        phone_e164=to,
        subscriber_id=subscriber_id,
        kind=kind,
        body=stored_body,
        segments=segmentation(body).segments,
        backend=config["SMS_BACKEND"],
        status="queued",
        created_at=now,
        updated_at=now,
    )
    db.session.add(message)
    db.session.commit()
    outgoing = Outgoing(to=to, body=body, sender=config["TWILIO_FROM"], kind=kind, created_at=now)
    try:
        message.provider_sid = backend_from_config(config).send(outgoing)
        message.status = "sent"
    except SendFailed as error:
        message.status = "failed"
        message.error_code = error.code
        log.warning("sms_send_failed kind=%s to=%s code=%s", kind, mask(to), error.code)
    db.session.commit()
    return message
