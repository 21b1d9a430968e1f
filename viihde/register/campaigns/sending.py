"""A campaign's sending, as rules: start, pause, resume and cancel stage its new status
(the caller commits; ``viihde.jobs.campaigns`` then launches the sender), and quiet hours.
The sender itself runs in ``viihde.jobs.campaigns``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from viihde import config
from viihde.clock import HELSINKI
from viihde.extensions import db
from viihde.models import AuditAction, Campaign, CampaignMessage, SmsMessage, Subscriber
from viihde.register import audit
from viihde.register.campaigns.state import (
    CANCELLED,
    DRAFT,
    PAUSED,
    SENDING,
    SKIPPED,
    audit_detail,
    locked,
    require_status,
    sending_now,
)


def start(campaign_id: int, now: datetime) -> Campaign:
    """Start sending a draft: its audience is fixed as everyone up to the newest subscriber
    now (no commit)."""
    campaign = locked(campaign_id)
    require_status(campaign, DRAFT)
    campaign.status, campaign.started_at, campaign.cursor = SENDING, now, 0
    campaign.last_subscriber_id = db.session.scalar(select(func.max(Subscriber.id))) or 0
    return campaign


def pause(campaign_id: int) -> Campaign:
    """Hold the campaign: the sender stops before its next message (no commit)."""
    campaign = locked(campaign_id)
    require_status(campaign, SENDING)
    campaign.status, campaign.resume_at = PAUSED, None
    return campaign


def pause_all_sending(actor: audit.Actor, now: datetime, why: str) -> list[int]:
    """Pause every campaign that is sending, each with its audit entry saying ``why`` (no
    commit); their ids."""
    paused = []
    for campaign in sending_now():
        pause(campaign.id)
        detail = f"{audit_detail(campaign)}, {why}"
        audit.record(actor, AuditAction.PAUSE_CAMPAIGN, now, detail=detail)
        paused.append(campaign.id)
    return paused


def resume(campaign_id: int) -> Campaign:
    """Send on from where the campaign stopped, paused or with no sender running (no
    commit)."""
    campaign = locked(campaign_id)
    require_status(campaign, PAUSED, SENDING)
    campaign.status = SENDING
    return campaign


def cancel(campaign_id: int, now: datetime) -> Campaign:
    """Stop the campaign for good (a draft too); whoever got it keeps their message, and a
    message not yet handed over (its sender died, or is about to hand it over) is not sent:
    failed, "campaign_cancelled" (no commit)."""
    campaign = locked(campaign_id)
    require_status(campaign, DRAFT, SENDING, PAUSED)
    campaign.status, campaign.finished_at, campaign.resume_at = CANCELLED, now, None
    its_messages = select(CampaignMessage.sms_message_id).where(
        CampaignMessage.campaign_id == campaign_id
    )
    unsent = select(SmsMessage.id).where(
        SmsMessage.id.in_(its_messages), SmsMessage.status == "queued"
    )
    # Their recipients count as skipped, not sent (the figures would count them twice).
    db.session.execute(
        update(CampaignMessage)
        .where(
            CampaignMessage.campaign_id == campaign_id, CampaignMessage.sms_message_id.in_(unsent)
        )
        .values(status=SKIPPED)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(SmsMessage)
        .where(SmsMessage.id.in_(its_messages), SmsMessage.status == "queued")
        .values(status="failed", error_code=CANCELLED_UNSENT, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return campaign


#: Why a campaign's message was not sent after all: the campaign was cancelled first.
CANCELLED_UNSENT = "campaign_cancelled"


# Quiet hours


def next_allowed(now: datetime, quiet_hours: str) -> datetime | None:
    """None when marketing SMS may go out now; else the moment (UTC) quiet hours end.

    Quiet hours are Helsinki wall-clock times, so in UTC they move with daylight saving.
    """
    window = config.quiet_hours_window(quiet_hours)
    if window is None:
        return None
    start, end = window
    local = now.astimezone(HELSINKI)
    moment, day = local.time(), local.date()
    if start < end:
        quiet = start <= moment < end
    else:  # across midnight
        quiet = moment >= start or moment < end
        if moment >= start:
            day += timedelta(days=1)
    if not quiet:
        return None
    return datetime.combine(day, end, HELSINKI).astimezone(UTC)


# The sender
