"""A campaign's state: its statuses, the errors about them, and loading it (locked)."""

from __future__ import annotations

from sqlalchemy import select

from viihde.extensions import db
from viihde.models import CAMPAIGN_STATUSES, Campaign

DRAFT, SENDING, PAUSED, FINISHED, CANCELLED = CAMPAIGN_STATUSES
SENT, SKIPPED = "sent", "skipped"


class CampaignStateError(ValueError):
    """The campaign's status does not allow this (editing a sent campaign, pausing a draft)."""


class SenderUnavailable(RuntimeError):
    """The queue could not be reached: the campaign waits until it is sent on."""


def get(campaign_id: int) -> Campaign | None:
    """The campaign with this id, if there is one."""
    return db.session.get(Campaign, campaign_id)


def audit_detail(campaign: Campaign) -> str:
    """How the audit log names a campaign."""
    return f"campaign {campaign.id}: {campaign.name}"


def sending_now() -> list[Campaign]:
    """The campaigns that are sending, the oldest first."""
    return list(
        db.session.scalars(select(Campaign).where(Campaign.status == SENDING).order_by(Campaign.id))
    )


def locked(campaign_id: int) -> Campaign | None:
    """Load and lock (FOR UPDATE on PostgreSQL) the campaign, fresh from the database."""
    return db.session.execute(
        select(Campaign)
        .where(Campaign.id == campaign_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def require_status(campaign: Campaign | None, *statuses: str) -> None:
    """Refuse (CampaignStateError) unless the campaign has one of ``statuses``."""
    if campaign is None or campaign.status not in statuses:
        raise CampaignStateError(campaign.status if campaign else "missing")
