"""What the purge removes by age alone: one-time codes (kept on as daily sign-up totals)
and the SMS log with its delivery callbacks and replies. ``retention`` runs them."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, delete, func, or_, select, update

from viihde.clock import helsinki_day
from viihde.extensions import db
from viihde.models import (
    BudgetSpan,
    CampaignMessage,
    InboundMessage,
    SignupTotal,
    SmsBudgetCount,
    SmsMessage,
    SmsStatusEvent,
    Verification,
    VerificationKind,
)
from viihde.models.statements import insert_or_add, serialise


def count(query: Select) -> int:
    return db.session.scalar(select(func.count()).select_from(query.subquery()))


def purge_pending(cutoff: datetime, dry_run: bool) -> dict[str, int]:
    """Codes of every kind (confirmed, unconfirmed, step-up, expired) older than the cutoff.

    The dashboard's sign-up figures were counted from these rows: they are kept as daily
    totals in the same transaction, so the figures stay as they were.
    """
    old = Verification.created_at < cutoff
    if dry_run:
        return {"verifications": count(select(Verification.id).where(old))}
    serialise("viihde.purge-pending")  # a second purge at once must not add them twice
    _keep_signup_totals(old)
    return {"verifications": db.session.execute(delete(Verification).where(old)).rowcount}


def _keep_signup_totals(old) -> None:
    """Add the sign-ups started and confirmed among the rows about to go to their day's total."""
    totals: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    rows = db.session.execute(
        select(Verification.created_at, Verification.consumed_at, Verification.utm_campaign)
        .where(old, Verification.kind == VerificationKind.SIGNUP)
        .execution_options(yield_per=1000)
    )
    for created_at, consumed_at, campaign in rows:
        totals[(helsinki_day(created_at), campaign or "")][0] += 1
        if consumed_at is not None:
            totals[(helsinki_day(consumed_at), campaign or "")][1] += 1
    for (day, campaign), (started, confirmed) in totals.items():
        insert_or_add(
            SignupTotal,
            {"day": day, "campaign": campaign, "started": started, "confirmed": confirmed},
            unique=("day", "campaign"),
            add=("started", "confirmed"),
        )


BUDGET_SPANS = {BudgetSpan.MINUTE: timedelta(minutes=1), BudgetSpan.HOUR: timedelta(hours=1)}


def purge_sms_log(cutoff: datetime, dry_run: bool) -> dict[str, int]:
    """Sent messages, their delivery callbacks, and replies older than the cutoff (and the
    SMS budget's counts of that time)."""
    old_ids = select(SmsMessage.id).where(SmsMessage.created_at < cutoff)
    old_sids = select(SmsMessage.provider_sid).where(
        SmsMessage.created_at < cutoff, SmsMessage.provider_sid.is_not(None)
    )
    # A callback goes with its message; one whose message is gone (erased) goes by its age.
    old_statuses = or_(
        SmsStatusEvent.received_at < cutoff, SmsStatusEvent.message_sid.in_(old_sids)
    )
    old_replies = InboundMessage.received_at < cutoff
    # A campaign's recipient rows keep its counts but forget who got it, with the log.
    old_recipients = and_(
        CampaignMessage.created_at < cutoff,
        or_(
            CampaignMessage.subscriber_id.is_not(None), CampaignMessage.sms_message_id.is_not(None)
        ),
    )
    if dry_run:
        return {
            "sms_status_events": count(select(SmsStatusEvent.id).where(old_statuses)),
            "sms_messages": count(old_ids),
            "inbound_messages": count(select(InboundMessage.id).where(old_replies)),
            "campaign_recipients": count(select(CampaignMessage.id).where(old_recipients)),
        }
    # The foreign key sets NULL by itself; clearing it first keeps the purge from
    # depending on how the constraint was created on this database.
    db.session.execute(
        update(Verification)
        .where(Verification.sms_message_id.in_(old_ids))
        .values(sms_message_id=None)
        .execution_options(synchronize_session=False)
    )
    execute = db.session.execute
    forgotten = execute(
        update(CampaignMessage)
        .where(old_recipients)
        .values(subscriber_id=None, sms_message_id=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    counts = {
        "campaign_recipients": forgotten,
        "sms_status_events": execute(delete(SmsStatusEvent).where(old_statuses)).rowcount,
        "sms_messages": execute(delete(SmsMessage).where(SmsMessage.id.in_(old_ids))).rowcount,
        "inbound_messages": execute(delete(InboundMessage).where(old_replies)).rowcount,
    }
    # The SMS budget's counts go with the log they count (no one's data: not reported), each
    # when all of its minute or hour is older.
    execute(
        delete(SmsBudgetCount).where(
            or_(
                *(
                    and_(SmsBudgetCount.span == span, SmsBudgetCount.starts_at < cutoff - length)
                    for span, length in BUDGET_SPANS.items()
                )
            )
        )
    )
    return counts
