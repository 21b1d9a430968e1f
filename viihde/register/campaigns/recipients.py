"""The sender's work on one recipient: who is next, their consent checked under a lock
on their row, their recipient row and SMS logged together (the sender commits them as
one); and orphaned messages."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update

from viihde.extensions import db
from viihde.models import (
    UNSENT,
    Campaign,
    CampaignMessage,
    ConsentState,
    Holding,
    LawfulBasis,
    SmsKind,
    SmsMessage,
    Subscriber,
)
from viihde.models.statements import insert_once
from viihde.register import consent
from viihde.register.campaigns.drafts import body_for, campaign_language, compose, footer
from viihde.register.campaigns.state import SENT, SKIPPED
from viihde.sms import log_sms
from viihde.sms.delivery import in_flight_since
from viihde.tokens import preference_url, with_link

#: Subscribers read per query while going through the audience.
BATCH = 100
#: A campaign SMS still queued this long after it was logged lost its sender (killed
#: between the commit and the hand-over, which are milliseconds apart): a later turn
#: hands it over, if the person's consent still stands.
ORPHANED_AFTER = timedelta(seconds=60)


def next_candidates(campaign: Campaign) -> tuple[list[int], int | None]:
    """The next subscribers after the cursor, in id order, who have the purpose granted,
    or withdrew it after the campaign started (they get a 'skipped' row); and the last id
    looked at (None: nobody is left). Read from the stored state: one statement."""
    rows = db.session.execute(
        select(Holding.subscriber_id, ConsentState.granted, ConsentState.changed_at)
        .join(Holding, Holding.id == ConsentState.holding_id)
        .where(
            Holding.ended_at.is_(None),
            ConsentState.purpose == campaign.purpose,
            Holding.subscriber_id > campaign.cursor,
            Holding.subscriber_id <= campaign.last_subscriber_id,
        )
        .order_by(Holding.subscriber_id)
        .limit(BATCH)
    ).all()
    eligible = [
        row.subscriber_id for row in rows if row.granted or row.changed_at >= campaign.started_at
    ]
    return eligible, (rows[-1].subscriber_id if rows else None)


def record_recipient(
    campaign: Campaign, subscriber_id: int, now: datetime
) -> tuple[int, str] | None:
    """Under a lock on the subscriber: check their consent now, record them (sent, or
    skipped when consent is gone) and log their SMS, with the cursor (no commit: the
    sender commits them as one).
    Returns the SMS to deliver (its id and body), if any."""
    campaign.cursor = subscriber_id
    subscriber = consent.lock_subscriber(subscriber_id)
    if subscriber is None:  # erased meanwhile
        return None
    grant = consent.grant_in_force(subscriber_id, campaign.purpose)
    granted = grant is not None
    basis = grant.basis if granted else None
    first_as_customer = basis == LawfulBasis.CUSTOMER and not _had_customer_message(subscriber_id)
    language = campaign_language(subscriber.language)
    status = SENT if granted else SKIPPED
    row_id = _insert_recipient(campaign.id, subscriber_id, status, language, basis, now)
    if row_id is None or not granted:  # a twin sender was first, or consent is gone
        return None
    link = preference_url(subscriber.id, subscriber.link_key)
    body = compose(body_for(campaign, language), footer(link, language, first_as_customer))
    message = _log_sms(subscriber, body, now)
    db.session.execute(
        update(CampaignMessage).where(CampaignMessage.id == row_id).values(sms_message_id=message)
    )
    return message, body


def find_orphan(campaign: Campaign, now: datetime) -> CampaignMessage | None:
    """The oldest message of the campaign whose sender died before handing it over (still
    queued a while after it was logged), or while handing it over (still "sending" past
    the provider's time-out)."""
    return db.session.scalars(
        select(CampaignMessage)
        .join(SmsMessage, SmsMessage.id == CampaignMessage.sms_message_id)
        .where(
            CampaignMessage.campaign_id == campaign.id,
            CampaignMessage.status == SENT,
            ((SmsMessage.status == "queued") & (SmsMessage.created_at < now - ORPHANED_AFTER))
            | ((SmsMessage.status == "sending") & (SmsMessage.updated_at < in_flight_since(now))),
        )
        .order_by(CampaignMessage.id)
        .limit(1)
    ).first()


def orphans_due(campaign: Campaign, now: datetime) -> datetime | None:
    """When the campaign's messages not yet settled (queued, or "sending") will be orphans
    if nobody settles them first (``find_orphan`` then finds the first); None when every
    message is settled. The campaign is not finished before: a message its dead sender
    left queued would be sent by nobody, and counted as sent."""
    queued, sending = db.session.execute(
        select(
            func.min(SmsMessage.created_at).filter(SmsMessage.status == "queued"),
            func.min(SmsMessage.updated_at).filter(SmsMessage.status == "sending"),
        )
        .join(CampaignMessage, CampaignMessage.sms_message_id == SmsMessage.id)
        .where(CampaignMessage.campaign_id == campaign.id, SmsMessage.status.in_(UNSENT))
    ).one()
    due = [
        *([queued + ORPHANED_AFTER] if queued is not None else []),
        *([sending + (now - in_flight_since(now))] if sending is not None else []),
    ]
    return min(due) if due else None


def adopt_orphan(
    campaign: Campaign, orphan: CampaignMessage, now: datetime
) -> tuple[int, str] | None:
    """Hand an orphaned message over after all, if the person's consent still stands
    (checked under the lock on their row, as for a new one); else it is not sent: the
    message fails ("consent_withdrawn") and the recipient counts as skipped."""
    message = db.session.get(SmsMessage, orphan.sms_message_id)
    subscriber = consent.lock_subscriber(orphan.subscriber_id)
    grant = consent.grant_in_force(subscriber.id, campaign.purpose) if subscriber else None
    if message.status == "sending" or grant is not None:
        # The log keeps the link without its token: the person's live link goes back in.
        body = message.body
        if subscriber is not None:
            body = with_link(body, preference_url(subscriber.id, subscriber.link_key))
        return message.id, body  # deliver settles a dead "sending" itself (outcome unknown)
    orphan.status = SKIPPED
    message.status, message.error_code, message.updated_at = "failed", "consent_withdrawn", now
    return None


def _had_customer_message(subscriber_id: int) -> bool:
    """Has the number's current holder had a campaign message as a customer already, one
    that did not fail? The first says why it comes and how to refuse: an earlier holder's
    (the message row belongs to whoever held the number when it was written) told this
    person nothing, nor did one that never reached them."""
    holding = select(Holding.id).where(
        Holding.subscriber_id == subscriber_id, Holding.ended_at.is_(None)
    )
    return db.session.scalar(
        select(
            exists().where(
                CampaignMessage.subscriber_id == subscriber_id,
                CampaignMessage.status == SENT,
                CampaignMessage.basis == LawfulBasis.CUSTOMER,
                SmsMessage.id == CampaignMessage.sms_message_id,
                SmsMessage.holding_id == holding.scalar_subquery(),
                SmsMessage.status.not_in(("failed", "undelivered")),
            )
        )
    )


def _insert_recipient(
    campaign_id: int, subscriber_id: int, status: str, language: str, basis, now: datetime
) -> int | None:
    """The recipient row, unless the campaign has one for this subscriber already."""
    return insert_once(
        CampaignMessage,
        {
            "campaign_id": campaign_id,
            "subscriber_id": subscriber_id,
            "status": status,
            "language": language,
            "basis": basis,
            "created_at": now,
        },
        unique=("campaign_id", "subscriber_id"),
    )


def _log_sms(subscriber: Subscriber, body: str, now: datetime) -> int:
    """Log the message as queued (the sender hands it over itself, being a job already)."""
    return log_sms(subscriber.phone_e164, body, SmsKind.CAMPAIGN, now, subscriber.id).id
