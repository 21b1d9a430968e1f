"""The SMS log is the outbox: a message committed as queued whose job never came (the
process died between the commit and the hand-over) is handed over by the sweep.

The sweep runs in every ``flask worker`` (a thread, every ``SMS_SWEEP_SECONDS``) and as
``flask sms sweep`` (cron, or where there is no queue). Several at once are safe: each
message is claimed by one conditional UPDATE, so exactly one sweep hands it over.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from rq.job import Job, JobStatus
from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError

from viihde.extensions import db
from viihde.models import CAMPAIGN_KINDS, UNSENT, SmsKind, SmsMessage, Subscriber
from viihde.sms import dispatch
from viihde.sms.delivery import in_flight_since
from viihde.sms.queue import delivery_job_id, sms_queue
from viihde.tokens import has_link_placeholder, preference_url, with_link

log = logging.getLogger(__name__)

#: A message still queued this long after it was logged (or last handed over) has lost
#: its job: the commit and the hand-over are milliseconds apart.
STALE_AFTER = timedelta(seconds=60)
#: Messages looked at per sweep; the next sweep takes the rest.
BATCH = 500
#: A job in these states will still run: its message is not lost.
_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
#: The campaign sender hands over its own messages (it checks consent again first).
_NOT_SWEPT = CAMPAIGN_KINDS
#: A lost message older than this is not sent any more: a day late it is news to nobody,
#: and a register restored from a backup brings back as queued the messages that went
#: out after it (docs/deploy.md says to fail those before the workers start).
SEND_WITHIN = timedelta(days=1)
#: Why a lost message was not sent after all.
CODE_LOST = "code_not_handed_over"  # the code is kept only as a hash: ask for a new one
LINK_LOST = "link_unavailable"  # the person is gone, and their link with them
TOO_OLD = "not_sent_within_a_day"
#: Failed by ``fail_unsent`` after a restore: it went out, or not, after the restore point.
RESTORED = "restored"


@dataclass
class SweepReport:
    """What one sweep did."""

    handed_over: int = 0
    failed: int = 0
    settled: int = 0  # "sending" too long: the attempt died, its outcome unknown


def sweep(now: datetime) -> SweepReport:
    """Hand every message queued longer than ``STALE_AFTER`` without a waiting job to the
    queue again (or deliver it, without a queue), exactly once; fail the ones that cannot
    be sent now (a lost one-time code: the visitor asks for a new one); settle attempts
    that died mid-call."""
    report = SweepReport(settled=_settle_dead_attempts(now))
    cutoff = now - STALE_AFTER
    candidates = db.session.scalars(
        select(SmsMessage.id)
        .where(
            SmsMessage.status == "queued",
            SmsMessage.updated_at < cutoff,
            SmsMessage.kind.not_in(_NOT_SWEPT),
        )
        .order_by(SmsMessage.id)
        .limit(BATCH)
    ).all()
    waiting = _waiting(candidates)
    lost = [message_id for message_id in candidates if message_id not in waiting]
    if not lost:
        db.session.commit()
        return report
    # The claim: a twin sweep's UPDATE waits for this one's rows, then finds them moved on.
    claimed = db.session.execute(
        update(SmsMessage)
        .where(
            SmsMessage.id.in_(lost),
            SmsMessage.status == "queued",
            SmsMessage.updated_at < cutoff,
        )
        .values(updated_at=now)
        .returning(
            SmsMessage.id, SmsMessage.kind, SmsMessage.body, SmsMessage.subscriber_id,
            SmsMessage.created_at,
        )
        .execution_options(synchronize_session=False)
    ).all()  # fmt: skip
    outgoing, failed = [], {}
    for message_id, kind, body, subscriber_id, created_at in claimed:
        if kind == SmsKind.CODE:
            failed[message_id] = CODE_LOST
            continue
        if created_at < now - SEND_WITHIN:
            failed[message_id] = TOO_OLD
            continue
        live = _live_body(body, subscriber_id)
        if live is None:
            failed[message_id] = LINK_LOST
        else:
            outgoing.append((message_id, live, kind))
    for message_id, reason in failed.items():
        db.session.execute(
            update(SmsMessage)
            .where(SmsMessage.id == message_id)
            .values(status="failed", error_code=reason, updated_at=now)
        )
    db.session.commit()
    for message_id, body, kind in outgoing:
        dispatch(message_id, body, kind, now)
    report.handed_over, report.failed = len(outgoing), len(failed)
    if claimed:
        log.warning("sms_outbox_swept handed_over=%d failed=%d", report.handed_over, report.failed)
    return report


def fail_unsent(now: datetime, restored_at: datetime) -> int:
    """After a restore to ``restored_at``: fail every message the restored log has as not
    yet with the provider (no commit), since each went out, or not, after the restore
    point, and the sweep would send it again; how many. One logged after it is left: it
    is not the backup's (an instance left serving made it)."""
    return db.session.execute(
        update(SmsMessage)
        .where(SmsMessage.status.in_(UNSENT), SmsMessage.created_at <= restored_at)
        .values(status="failed", error_code=RESTORED, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def _waiting(message_ids: list[int]) -> set[int]:
    """The messages whose job still waits to run (no queue: none; a queue that cannot be
    asked: all, so they are left for a later sweep)."""
    queue = sms_queue()
    if queue is None or not message_ids:
        return set()
    ids = [delivery_job_id(message_id) for message_id in message_ids]
    try:
        jobs = Job.fetch_many(ids, connection=queue.connection)
    except RedisError:
        return set(message_ids)
    return {
        message_id
        for message_id, job in zip(message_ids, jobs, strict=True)
        if job is not None and job.get_status(refresh=False) in _WAITING
    }


def _live_body(body: str, subscriber_id: int | None) -> str | None:
    """The text to send: the log's body with the person's live link back in (None: the
    body names a link and the person is gone)."""
    if not has_link_placeholder(body):
        return body
    subscriber = db.session.get(Subscriber, subscriber_id) if subscriber_id else None
    if subscriber is None:
        return None
    return with_link(body, preference_url(subscriber.id, subscriber.link_key))


def _settle_dead_attempts(now: datetime) -> int:
    """A message "sending" past the provider's time-out lost its attempt: failed, outcome
    unknown (it may have gone out; sending again could deliver it twice). A campaign's
    too: its sender would settle it the same way, and a cancelled campaign has none."""
    return db.session.execute(
        update(SmsMessage)
        .where(
            SmsMessage.status == "sending",
            SmsMessage.updated_at < in_flight_since(now),
        )
        .values(status="failed", error_code="outcome_unknown", updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount


def oldest_waiting_seconds(now: datetime) -> float:
    """How long the oldest message not yet handed to the provider (queued or sending) has
    waited since it was logged; 0 when none waits (off the log's partial index of them);
    NaN when the register cannot be read (a scrape still answers)."""
    try:
        oldest = db.session.scalar(
            select(func.min(SmsMessage.created_at)).where(SmsMessage.status.in_(UNSENT))
        )
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        log.warning("sms_backlog_unread error=%s", type(error).__name__)
        return math.nan
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
