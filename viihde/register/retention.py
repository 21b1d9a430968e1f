"""Retention: remove what the privacy notice promises not to keep, once its time is up.

Four categories, each in its own transaction: one-time codes and unconfirmed
sign-ups (``RETENTION_PENDING_HOURS``), the SMS log (``RETENTION_SMS_LOG_DAYS``),
holders with no consent in force whose last consent event is older than the
proof period (``RETENTION_PROOF_MONTHS``; each holding of a number on its own clock),
erased to a tombstone, and customer
relationships that are over: a grant as a customer whose purchase is older than
``CUSTOMER_RELATIONSHIP_MONTHS`` is withdrawn (``customers.lapse``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial

from flask import current_app
from sqlalchemy import Select, exists, func, select

from viihde.clock import months_before, utcnow
from viihde.extensions import db
from viihde.models import (
    AuditAction,
    ConsentEvent,
    ErasureSource,
    Holding,
    Subscriber,
    UTCDateTime,
)
from viihde.register import audit, consent, customers, erasure, expiry
from viihde.register.consent import GRANT

log = logging.getLogger(__name__)

PENDING = "pending"
SMS_LOG = "sms_log"
CONSENT_PROOF = "consent_proof"
CUSTOMER_RELATIONSHIPS = "customer_relationships"


@dataclass
class PurgeReport:
    """What a purge removed (or, in a dry run, would remove), and what failed."""

    dry_run: bool = False
    verifications: int = 0
    sms_messages: int = 0
    sms_status_events: int = 0
    inbound_messages: int = 0
    campaign_recipients: int = 0
    subscribers_erased: int = 0
    #: Grants as a customer withdrawn: the purchase they rest on is too old.
    customer_grants_ended: int = 0
    #: Category (pending, sms_log, ...) -> the error's type; its work is rolled back.
    failures: dict[str, str] = field(default_factory=dict)
    #: Who the purge's audit entries name.
    actor: audit.Actor = field(default=audit.Actor("system:purge"), repr=False)

    def counts(self) -> dict[str, int]:
        """Each count by name, in the order the purge works."""
        return {
            "verifications": self.verifications,
            "sms_messages": self.sms_messages,
            "sms_status_events": self.sms_status_events,
            "inbound_messages": self.inbound_messages,
            "campaign_recipients": self.campaign_recipients,
            "subscribers_erased": self.subscribers_erased,
            "customer_grants_ended": self.customer_grants_ended,
        }


#: Who a purge is audited as when no operator is named (the scheduled run).
SYSTEM = audit.Actor("system:purge")


@dataclass(frozen=True)
class Unit:
    """One unit of work of the purge, in its category: ``work`` stages it, audit entry
    included, and returns the counts it adds. The caller commits each unit (or, in a dry
    run, rolls it back), so a failure midway leaves exact counts of what is gone."""

    category: str
    work: Callable[[], dict[str, int]]


def units(now: datetime, report: PurgeReport) -> Iterator[Unit]:
    """The purge, unit by unit: the codes and the SMS log one unit each, each person past
    the proof period and each customer relationship that ended one unit each, then each
    category's summary entry in the audit log. Lazy: a person's unit is made after the
    units before it were committed, and is checked again under the person's lock."""
    if now.tzinfo is None:
        raise ValueError("purge needs a timezone-aware time")
    config = current_app.config
    dry_run = report.dry_run
    pending_cutoff = now - timedelta(hours=config["RETENTION_PENDING_HOURS"])
    sms_cutoff = now - timedelta(days=config["RETENTION_SMS_LOG_DAYS"])
    proof_cutoff = months_before(now, config["RETENTION_PROOF_MONTHS"])
    customer_cutoff = customers.relationship_cutoff(now, config["CUSTOMER_RELATIONSHIP_MONTHS"])
    yield Unit(
        PENDING, lambda: _summarised(PENDING, report, expiry.purge_pending(pending_cutoff, dry_run))
    )
    yield Unit(
        SMS_LOG, lambda: _summarised(SMS_LOG, report, expiry.purge_sms_log(sms_cutoff, dry_run))
    )
    if dry_run:
        yield Unit(
            CONSENT_PROOF, lambda: {"subscribers_erased": expiry.count(erasable(proof_cutoff))}
        )
        yield Unit(
            CUSTOMER_RELATIONSHIPS,
            lambda: {
                "customer_grants_ended": expiry.count(customers.lapsed_grants(customer_cutoff))
            },
        )
        return
    for holding_id in list(db.session.scalars(erasable(proof_cutoff).order_by(Holding.id))):
        yield Unit(CONSENT_PROOF, partial(_erase_one, holding_id, proof_cutoff, now, report))
    yield Unit(CONSENT_PROOF, lambda: _summarised(CONSENT_PROOF, report, {}))
    lapsed = customers.lapsed_grants(customer_cutoff).subquery()
    candidates = db.session.scalars(
        select(lapsed.c.subscriber_id).distinct().order_by(lapsed.c.subscriber_id)
    )
    for subscriber_id in list(candidates):
        yield Unit(
            CUSTOMER_RELATIONSHIPS,
            partial(_end_relationship, subscriber_id, customer_cutoff, now, report),
        )
    yield Unit(CUSTOMER_RELATIONSHIPS, lambda: _summarised(CUSTOMER_RELATIONSHIPS, report, {}))


def _summarised(category: str, report: PurgeReport, counts: dict[str, int]) -> dict[str, int]:
    """Stage the category's summary entry (its counts) in the audit log, unless a dry run."""
    if not report.dry_run:
        summary = counts or {key: getattr(report, key) for key in _PER_PERSON[category]}
        detail = f"{category}: " + " ".join(f"{key}={n}" for key, n in summary.items())
        audit.record(report.actor, AuditAction.PURGE, utcnow(), detail=detail)
    return counts


#: The categories that commit person by person, and the counts they keep on the report.
_PER_PERSON = {
    PENDING: (),
    SMS_LOG: (),
    CONSENT_PROOF: ("subscribers_erased",),
    CUSTOMER_RELATIONSHIPS: ("customer_grants_ended",),
}


def erasable(cutoff: datetime, holding_ids: list[int] | None = None) -> Select:
    """Holdings not erased yet, with no purpose granted now, whose last consent event
    (or, with none, their start) is before ``cutoff``: each holder's proof runs out on its
    own clock, an earlier holder's from the withdrawals that closed their holding.

    One query for the whole register: the latest event per holding and purpose comes from
    a grouped subquery. ``holding_ids`` narrows it (and its subqueries).
    """
    latest = select(ConsentEvent.holding_id, func.max(ConsentEvent.seq).label("seq")).group_by(
        ConsentEvent.holding_id, ConsentEvent.purpose
    )
    last_event = select(
        ConsentEvent.holding_id, func.max(ConsentEvent.created_at).label("at")
    ).group_by(ConsentEvent.holding_id)
    if holding_ids is not None:
        latest = latest.where(ConsentEvent.holding_id.in_(holding_ids))
        last_event = last_event.where(ConsentEvent.holding_id.in_(holding_ids))
    latest, last_event = latest.subquery(), last_event.subquery()
    # Any grant still in force, for any purpose (offered now or not), keeps the holding.
    granted_now = exists().where(
        ConsentEvent.holding_id == Holding.id,
        ConsentEvent.action == GRANT,
        latest.c.holding_id == ConsentEvent.holding_id,
        latest.c.seq == ConsentEvent.seq,
    )
    last_seen = func.coalesce(last_event.c.at, Holding.started_at, type_=UTCDateTime)
    query = (
        select(Holding.id)
        .outerjoin(last_event, last_event.c.holding_id == Holding.id)
        .where(Holding.erased_at.is_(None), last_seen < cutoff, ~granted_now)
    )
    if holding_ids is not None:
        query = query.where(Holding.id.in_(holding_ids))
    return query


def _erase_one(
    holding_id: int, cutoff: datetime, now: datetime, report: PurgeReport
) -> dict[str, int]:
    """Erase one holder past the proof period, with its audit entry: their holding while
    another holder's records are kept, else the whole number (``erasure``); nothing if a
    consent given since the search keeps them."""
    locked = _locked_if_still_erasable(holding_id, cutoff)
    if locked is None:
        return {}
    subscriber, holding = locked
    audit.record(
        report.actor,
        AuditAction.ERASE,
        now,
        phone_e164=subscriber.phone_e164,
        detail=ErasureSource.RETENTION,
    )
    others = db.session.scalar(
        select(func.count(Holding.id)).where(
            Holding.subscriber_id == subscriber.id,
            Holding.id != holding.id,
            Holding.erased_at.is_(None),
        )
    )
    if others:
        erasure.erase_holding(subscriber, holding, ErasureSource.RETENTION, now)
    else:
        erasure.erase(subscriber.phone_e164, ErasureSource.RETENTION, now)
    return {"subscribers_erased": 1}


def _locked_if_still_erasable(
    holding_id: int, cutoff: datetime
) -> tuple[Subscriber, Holding] | None:
    """Lock the holding's subscriber and check again: a consent given since the search
    keeps them."""
    subscriber_id = db.session.scalar(select(Holding.subscriber_id).where(Holding.id == holding_id))
    subscriber = consent.lock_subscriber(subscriber_id) if subscriber_id is not None else None
    if subscriber is None or db.session.scalar(erasable(cutoff, [holding_id])) is None:
        return None
    return subscriber, db.session.get(Holding, holding_id)


def _end_relationship(
    subscriber_id: int, cutoff: date, now: datetime, report: PurgeReport
) -> dict[str, int]:
    """Withdraw one person's customer grants whose purchase is before ``cutoff`` (a
    Helsinki day), through ``customers.lapse`` under their row lock, with its audit entry."""
    ended = customers.lapse(subscriber_id, cutoff, now)
    if ended:
        phone = db.session.get(Subscriber, ended[0].subscriber_id).phone_e164  # locked: held
        detail = f"customer relationship ended: {len(ended)}"
        audit.record(
            report.actor, AuditAction.END_CUSTOMER_GRANTS, now, phone_e164=phone, detail=detail
        )
    return {"customer_grants_ended": len(ended)}
