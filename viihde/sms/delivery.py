"""Handing logged messages to the provider, once, and recording what became of them.

A message row moves queued -> sending -> sent -> delivered | undelivered | failed.
'sending' is committed before the provider is called, so a job that is run again
after its worker died mid-call never sends the message a second time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from blinker import Namespace
from flask import current_app
from sqlalchemy import select

from viihde.extensions import db
from viihde.models import SMS_FINAL_STATUSES, SMS_STATUSES, SmsMessage, SmsStatusEvent
from viihde.models.statements import insert_once, serialise
from viihde.ops import metrics
from viihde.phone import mask
from viihde.sms.backends import Backend, ConsoleBackend, FileBackend, Outgoing, SendFailed
from viihde.sms.backends.twilio import OPTED_OUT, TwilioBackend, refuses_the_number

log = logging.getLogger(__name__)

#: The provider says a recipient opted out with it (replied STOP to the provider): the
#: app withdraws their marketing as a STOP to us would (``viihde.jobs`` listens).
provider_opt_out = Namespace().signal("provider-opt-out")
_RANK = {status: rank for rank, status in enumerate(SMS_STATUSES)} | dict.fromkeys(
    SMS_FINAL_STATUSES, len(SMS_STATUSES)
)


class RetryLater(Exception):
    """A passing failure (rate limit, provider error, no answer): the queue tries again."""


def backend_from_config(config: Mapping) -> Backend:
    """The backend that ``SMS_BACKEND`` names."""
    name = config["SMS_BACKEND"]
    if name == "console":
        return ConsoleBackend()
    if name == "file":
        return FileBackend(config["SMS_OUTBOX_PATH"])
    if name == "twilio":
        return TwilioBackend(config)
    raise ValueError(f"unknown SMS_BACKEND {name!r} (console, file or twilio)")


def deliver(message_id: int, body: str, now: datetime, final_attempt: bool = True) -> str:
    """Hand one logged message to the backend unless that was done already; return its status.

    Raises RetryLater for a passing failure when this is not the final attempt.
    """
    config = current_app.config
    message = db.session.execute(
        select(SmsMessage)
        .where(SmsMessage.id == message_id)
        .with_for_update()
        # The row as the lock found it, whatever this session held of it before.
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if message is None:  # erased meanwhile
        db.session.rollback()
        return "gone"
    if message.status == "sending":
        return _abandoned_or_in_flight(message, now)
    if message.status != "queued":  # a retried job: sent (or given up) already
        db.session.rollback()
        return message.status
    message.status, message.attempts, message.updated_at = "sending", message.attempts + 1, now
    outgoing = Outgoing(message.phone_e164, body, config["TWILIO_FROM"], message.kind, now)
    db.session.commit()
    try:
        provider_sid = backend_from_config(config).send(outgoing)
    except SendFailed as error:
        return _failed(message, error, now, retry=error.transient and not final_attempt)
    message.status, message.provider_sid, message.sent_at = "sent", provider_sid, now
    message.updated_at = now
    db.session.commit()
    if not provider_sid:  # no callbacks will come: the status is the one just committed
        return "sent"
    _apply_recorded_statuses(message)
    return message.status


def number_cannot_receive(message: SmsMessage) -> bool:
    """Did this message fail because its number cannot receive texts (not a valid mobile,
    a landline, opted out at the provider), rather than because sending was down?"""
    return (
        message.status in ("failed", "undelivered")
        and message.backend == TwilioBackend.name
        and refuses_the_number(message.error_code)
    )


def in_flight_since(now: datetime) -> datetime:
    """A message "sending" since before this is no longer talking to the provider: the
    attempt died (``deliver`` then marks it failed, its outcome unknown)."""
    return now - timedelta(seconds=2 * current_app.config["TWILIO_TIMEOUT_SECONDS"] + 30)


def _abandoned_or_in_flight(message: SmsMessage, now: datetime) -> str:
    """An earlier attempt is still talking to the provider, or died while it did."""
    if message.updated_at > in_flight_since(now):
        db.session.rollback()
        return "sending"
    # It may or may not have gone out; sending again could deliver it twice.
    message.status, message.error_code, message.updated_at = "failed", "outcome_unknown", now
    db.session.commit()
    return "failed"


def _failed(message: SmsMessage, error: SendFailed, now: datetime, retry: bool) -> str:
    message.status = "queued" if retry else "failed"
    message.error_code, message.updated_at = error.code, now
    if error.opted_out:
        _opted_out(message.phone_e164, now)
    db.session.commit()  # the failure with the withdrawal it causes, or neither
    log.warning(
        "sms_send_failed kind=%s to=%s code=%s retry=%s",
        message.kind,
        mask(message.phone_e164),
        error.code,
        retry,
    )
    metrics.SMS_FAILURES.labels(error.code or "unknown").inc()
    if retry:
        raise RetryLater(error.code)
    return "failed"


def record_status(message_sid: str, status: str, error_code: str | None, now: datetime) -> bool:
    """Record a delivery status callback once; False for a repeat or an unknown status."""
    if status not in SMS_STATUSES or not message_sid:
        return False
    serialise("viihde.sms-status:" + message_sid)
    inserted = insert_once(
        SmsStatusEvent,
        {
            "message_sid": message_sid,
            "status": status,
            "error_code": error_code,
            "received_at": now,
        },
        unique=("message_sid", "status"),
    )
    if inserted is None:
        db.session.rollback()
        return False
    message = db.session.execute(
        select(SmsMessage).where(SmsMessage.provider_sid == message_sid).with_for_update()
    ).scalar_one_or_none()
    if message is not None and _advance(message, status, error_code, now):
        _opted_out(message.phone_e164, now)
    # The status with the withdrawal it causes, or neither: Twilio's retry of a callback
    # that failed here finds no status recorded, and withdraws then.
    db.session.commit()
    return True


def _advance(message: SmsMessage, status: str, error_code: str | None, now: datetime) -> bool:
    """Move forward only: a late 'sent' never undoes 'delivered'. True when this moved the
    message to a failure that says its recipient opted out with the provider (a Messaging
    Service may accept a send and report the opt-out only in the callback)."""
    if _RANK[status] <= _RANK[message.status]:
        return False
    message.status, message.updated_at = status, now
    if error_code:
        message.error_code = error_code
    return status in SMS_FINAL_STATUSES and error_code == OPTED_OUT


def _opted_out(phone_e164: str, now: datetime) -> None:
    """Tell the app the recipient opted out with the provider: its listener withdraws
    their marketing in the transaction that records the status saying so (no commit)."""
    provider_opt_out.send(current_app._get_current_object(), phone_e164=phone_e164, now=now)


def _apply_recorded_statuses(message: SmsMessage) -> None:
    """Callbacks that arrived before the provider's id was saved still count (and commit).

    Runs after that id is committed, under the same per-id lock as ``record_status``,
    so each callback either sees the id or is seen here.
    """
    serialise("viihde.sms-status:" + message.provider_sid)
    message = db.session.execute(
        select(SmsMessage).where(SmsMessage.id == message.id).with_for_update()
    ).scalar_one()
    for event in db.session.scalars(
        select(SmsStatusEvent).where(SmsStatusEvent.message_sid == message.provider_sid)
    ).all():
        if _advance(message, event.status, event.error_code, event.received_at):
            _opted_out(message.phone_e164, event.received_at)
    db.session.commit()
