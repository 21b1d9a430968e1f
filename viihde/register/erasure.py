"""The right to erasure: a number's records removed, a keyed-hash tombstone left.

The whole number (support, the command line, the retention purge of its last holder), or
one holding of it: the current holder's own, when earlier holders' records are still
kept as their proof of consent, or an earlier holder's, when the purge's time for it came.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from viihde.extensions import db
from viihde.hashing import keyed_hash
from viihde.models import (
    CampaignMessage,
    ConsentEvent,
    ErasureSource,
    Holding,
    InboundMessage,
    SmsMessage,
    SmsStatusEvent,
    Subscriber,
    Tombstone,
    Verification,
)
from viihde.register import consent, holdings


def tombstone_hash(phone_e164: str, key: bytes | None = None) -> str:
    """The keyed hash an erased number leaves behind (under ``key``: the hash key, read
    once by a caller hashing many)."""
    return keyed_hash("tombstone", phone_e164, key)


def erase(phone_e164: str, source: ErasureSource, now: datetime) -> Tombstone:
    """Remove everything stored about a number and leave a keyed-hash tombstone (no
    commit: the caller commits it with its audit entry)."""
    subscriber_id = db.session.scalar(
        select(Subscriber.id).where(Subscriber.phone_e164 == phone_e164).with_for_update()
    )
    scope = holdings.scope(phone_e164)
    if subscriber_id is not None:
        db.session.execute(delete(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id))
        # A campaign's figures keep the row, not who it was (whatever the FK does on SQLite).
        db.session.execute(
            update(CampaignMessage)
            .where(CampaignMessage.subscriber_id == subscriber_id)
            .values(subscriber_id=None)
        )
    _delete_rows(scope)
    if subscriber_id is not None:
        db.session.execute(delete(Holding).where(Holding.subscriber_id == subscriber_id))
        db.session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
    return _tombstone(phone_e164, source, now)


def erase_own(subscriber_id: int, source: ErasureSource, now: datetime) -> Tombstone:
    """Erase what the number's current holder asks for (no commit): their holding, while
    an earlier holder's records are kept as proof of that person's consent; otherwise
    the whole number. Nobody holds it now (its last holder erased their holding, and the
    link came after, say in the answer to HELP): what was written since, and nothing of
    the holdings."""
    subscriber = consent.lock_subscriber(subscriber_id)
    held = holdings.of_number(subscriber.id)
    current = next((h for h in held if h.ended_at is None), None)
    kept = [h for h in held if h is not current and h.erased_at is None]
    if not kept:
        return erase(subscriber.phone_e164, source, now)
    if current is None:
        return erase_unheld(subscriber, held, source, now)
    return erase_holding(subscriber, current, source, now)


def erase_unheld(
    subscriber: Subscriber, held: list[Holding], source: ErasureSource, now: datetime
) -> Tombstone:
    """Remove what was written since the number's last holding ended, while nobody held it
    (a locked subscriber's; no commit): the holdings' records stay. The tombstone names
    that last holding, erased already, which is how a restore tells this erasure from one
    of the whole number (``restore.reapply``)."""
    _delete_rows(holdings.unheld(subscriber.phone_e164, held))
    subscriber.link_key = consent.new_link_key()
    return _tombstone(subscriber.phone_e164, source, now, held[-1].id)


def erase_holding(
    subscriber: Subscriber, holding: Holding, source: ErasureSource, now: datetime
) -> Tombstone:
    """Remove one holding's records (a locked subscriber's; no commit). The holding's row
    stays, marked erased, with a tombstone pointing at it; the open holding closes, and
    the links sent to its holder stop working."""
    scope = holdings.of_holding(subscriber.phone_e164, holding)
    was_open = holding.ended_at is None
    db.session.execute(delete(ConsentEvent).where(ConsentEvent.holding_id == holding.id))
    if was_open:
        # The recipient rows of campaigns still going to the holder now.
        db.session.execute(
            update(CampaignMessage)
            .where(
                CampaignMessage.subscriber_id == subscriber.id,
                CampaignMessage.sms_message_id.is_(None),
            )
            .values(subscriber_id=None)
        )
    _delete_rows(scope)
    holding.erased_at, holding.ended_at = now, holding.ended_at or now
    if was_open:
        subscriber.link_key = consent.new_link_key()
    return _tombstone(subscriber.phone_e164, source, now, holding.id)


def _delete_rows(scope: holdings.Scope) -> None:
    """Delete the codes, SMS log and replies of ``scope``; the campaign rows that pointed
    at those messages keep their counts, not who got them."""
    messages = select(SmsMessage.id).where(scope.rows(SmsMessage, SmsMessage.created_at))
    db.session.execute(
        update(CampaignMessage)
        .where(CampaignMessage.sms_message_id.in_(messages))
        .values(subscriber_id=None, sms_message_id=None)
    )
    sids = select(SmsMessage.provider_sid).where(SmsMessage.id.in_(messages))
    db.session.execute(delete(SmsStatusEvent).where(SmsStatusEvent.message_sid.in_(sids)))
    db.session.execute(
        delete(Verification).where(scope.rows(Verification, Verification.created_at))
    )
    db.session.execute(delete(SmsMessage).where(SmsMessage.id.in_(messages)))
    db.session.execute(
        delete(InboundMessage).where(scope.rows(InboundMessage, InboundMessage.received_at))
    )


def _tombstone(
    phone_e164: str, source: ErasureSource, now: datetime, holding_id: int | None = None
) -> Tombstone:
    tombstone = keep_tombstone(tombstone_hash(phone_e164), source, now, holding_id)
    # Bulk deletes bypass the identity map: what it held of the number is gone.
    db.session.expire_all()
    return tombstone


def keep_tombstone(
    phone_hash: str, source: ErasureSource, erased_at: datetime, holding_id: int | None = None
) -> Tombstone:
    """Record an erasure's tombstone (no commit): a number known here by its hash alone
    (``restore``: nothing of it is left to erase) is still never brought back."""
    tombstone = Tombstone(
        phone_hash=phone_hash, source=source, erased_at=erased_at, holding_id=holding_id
    )
    db.session.add(tombstone)
    db.session.flush()
    return tombstone
