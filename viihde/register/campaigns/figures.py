"""What became of each campaign: recipients, sent, skipped, delivered, failed, opt-outs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, func, select

from viihde.extensions import db
from viihde.models import Campaign, CampaignMessage, ConsentEvent, SmsMessage
from viihde.register import consent
from viihde.register.campaigns.state import DRAFT, SENT, SKIPPED


@dataclass(frozen=True)
class Figures:
    """A campaign and what became of it."""

    campaign: Campaign
    recipients: int = 0
    sent: int = 0
    #: Consent was gone when their turn came.
    skipped: int = 0
    delivered: int = 0
    failed: int = 0
    #: Withdrew the campaign's purpose after their message.
    opted_out: int = 0


def figures(include_drafts: bool = False, limit: int | None = None) -> list[Figures]:
    """Each campaign's figures, newest first."""
    query = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if not include_drafts:
        query = query.where(Campaign.status != DRAFT)
    campaigns = list(db.session.scalars(query))
    counts = _message_counts([campaign.id for campaign in campaigns])
    return [Figures(campaign, *counts.get(campaign.id, ())) for campaign in campaigns]


def figures_of(campaign: Campaign) -> Figures:
    """One campaign's figures."""
    return Figures(campaign, *_message_counts([campaign.id]).get(campaign.id, ()))


def _message_counts(campaign_ids: list[int]) -> dict[int, tuple[int, ...]]:
    """Per campaign, in one query: recipients, sent, skipped, delivered, failed, opt-outs."""
    row, sms = CampaignMessage, SmsMessage
    opted_out = exists().where(
        ConsentEvent.subscriber_id == row.subscriber_id,
        ConsentEvent.purpose == Campaign.purpose,
        ConsentEvent.action == consent.WITHDRAW,
        ConsentEvent.created_at >= row.created_at,
    )
    result = db.session.execute(
        select(
            row.campaign_id,
            func.count(),
            func.count().filter(row.status == SENT),
            func.count().filter(row.status == SKIPPED),
            func.count().filter(sms.status == "delivered"),
            func.count().filter(sms.status.in_(("undelivered", "failed"))),
            func.count().filter(row.status == SENT, opted_out),
        )
        .join(Campaign, Campaign.id == row.campaign_id)
        .outerjoin(sms, sms.id == row.sms_message_id)
        .where(row.campaign_id.in_(campaign_ids))
        .group_by(row.campaign_id)
    )
    return {campaign_id: tuple(counts) for campaign_id, *counts in result}
