"""Sending SMS: every message is logged as a row, then delivered by a job or inline.

The log is the outbox (``outbox.sweep`` hands over a row whose job never came) and it
keeps neither one-time codes nor the tokens of preference links: whoever reads it
(support, an export, a backup) cannot act as the person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import bindparam, event, insert
from sqlalchemy.orm import Session

from viihde.extensions import db
from viihde.models import SmsKind, SmsMessage, open_holding_of
from viihde.models.statements import run
from viihde.sms.delivery import deliver
from viihde.sms.queue import enqueue_delivery, sms_queue
from viihde.sms.segments import segmentation
from viihde.tokens import without_link_tokens

log = logging.getLogger(__name__)
REDACTED_CODE = "******"
#: Where a session keeps the messages staged in its transaction.
_STAGED = "viihde.sms.staged"


@dataclass(frozen=True)
class Staged:
    """A logged message that goes out once the transaction that logged it commits."""

    message_id: int
    body: str
    kind: str


def stage(
    to: str,
    body: str,
    kind: str,
    now: datetime,
    *,
    subscriber_id: int | None = None,
    secret: str | None = None,
) -> Staged:
    """Log one SMS in the caller's transaction (no commit); ``commit_then_send`` sends it.

    ``secret`` (a one-time code) is kept out of the log row; the body with the code travels
    only in the job. A rollback forgets it (the row is gone too).
    """
    # A Core INSERT ... RETURNING id, built once, in the session's transaction: the row is
    # not needed as an object, only its id.
    row = _row(to, body, kind, now, subscriber_id, secret=secret)
    parameters = {f"sms_{name}": value for name, value in row.items()}
    message_id = run(_log_statement(), parameters).scalar_one()
    staged = Staged(message_id, body, kind)
    db.session.info.setdefault(_STAGED, []).append(staged)
    return staged


def send_sms(
    to: str,
    body: str,
    kind: SmsKind,
    now: datetime,
    *,
    subscriber_id: int | None = None,
    secret: str | None = None,
) -> SmsMessage:
    """Log one SMS and send it at once, as a unit of work of its own (commits whatever the
    caller staged with it); the row as sending left it."""
    staged = stage(to, body, kind, now, subscriber_id=subscriber_id, secret=secret)
    commit_then_send(now)
    return db.session.get(SmsMessage, staged.message_id)


def commit_then_send(now: datetime) -> dict[int, str]:
    """End the caller's unit of work: commit it, then send the SMS it staged (queued, or
    delivered inline). Returns each message's status by id ("queued", "sent", "failed",
    ...); a failure is recorded on its row, never raised."""
    db.session.commit()
    staged = db.session.info.pop(_STAGED, [])
    return {
        each.message_id: dispatch(each.message_id, each.body, each.kind, now) for each in staged
    }


@event.listens_for(Session, "after_rollback")
def _forget_staged(session: Session) -> None:
    """Rolled back: the staged messages' rows are gone, so are they."""
    session.info.pop(_STAGED, None)


def redacted(body: str, secret: str | None) -> str:
    """The body as the log row may keep it: ``secret`` (a one-time code) masked."""
    return body.replace(secret, REDACTED_CODE) if secret else body


def dispatch(message_id: int, body: str, kind: SmsKind, now: datetime) -> str:
    """Send a message whose row is committed: queue it when there is a queue, else (or when
    Redis cannot be reached) deliver it at once. Returns its status: "queued", or what the
    delivery made of it ("sent", "failed", ...). A failure is recorded on the row, never raised.

    Call it after the commit that saves the row, never inside that transaction: the job may
    run at once, and an inline delivery commits "sending" before it calls the provider.
    """
    if sms_queue() is not None:
        try:
            enqueue_delivery(message_id, body)
            return "queued"
        except RedisError:
            log.warning("sms_queue_unavailable kind=%s sending_inline=true", kind)
    return deliver(message_id, body, now, final_attempt=True)


def log_reply(to: str, body: str, now: datetime, subscriber_id: int | None) -> SmsMessage:
    """Log an answer the provider sends for us (TwiML), so the person's history shows it
    (no commit: the provider sends it, nothing is dispatched)."""
    message = log_sms(to, body, SmsKind.REPLY, now, subscriber_id, backend="twiml", status="sent")
    message.attempts, message.sent_at = 1, now
    return message


def stored_body(body: str, secret: str | None = None) -> str:
    """The body as the log keeps it: the one-time code masked, links without their token."""
    return without_link_tokens(redacted(body, secret))


def log_sms(
    to: str,
    body: str,
    kind: SmsKind,
    now: datetime,
    subscriber_id: int | None = None,
    *,
    secret: str | None = None,
    backend: str | None = None,
    status: str = "queued",
) -> SmsMessage:
    """Add one message's row to the SMS log (no commit). ``body`` is the text as sent;
    the row keeps it without ``secret`` and without the tokens of preference links; it
    belongs to whoever holds the number now (``models.holdings``)."""
    row = _row(to, body, kind, now, subscriber_id, secret=secret, backend=backend, status=status)
    message = SmsMessage(**row, holding_id=open_holding_of(to))
    db.session.add(message)
    db.session.flush()
    return message


def _row(to, body, kind, now, subscriber_id=None, **where) -> dict:
    """An SMS log row's values (``log_sms``'s arguments, typed there; ``where``: its
    secret, backend and status), all but its holding: whoever holds ``to`` when it is
    written (``models.open_holding_of``)."""
    return {
        "phone_e164": to,
        "subscriber_id": subscriber_id,
        "kind": kind,
        "body": stored_body(body, where.get("secret")),
        "segments": segmentation(body).segments,
        "backend": where.get("backend") or current_app.config["SMS_BACKEND"],
        "status": where.get("status", "queued"),
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


@cache
def _log_statement():
    """``stage``'s INSERT: every value a parameter ``sms_<column>``, the holding looked up
    in the same statement."""
    table = SmsMessage.__table__
    names = [column.name for column in table.c if column.name in _ROW_COLUMNS]
    values = {name: bindparam(f"sms_{name}") for name in names}
    values["holding_id"] = open_holding_of(bindparam("sms_phone_e164"))
    return insert(table).values(values).returning(table.c.id)


#: The columns ``_row`` gives.
_ROW_COLUMNS = frozenset(
    ("phone_e164", "subscriber_id", "kind", "body", "segments", "backend", "status",
     "attempts", "created_at", "updated_at")
)  # fmt: skip
