"""Retention: remove what the privacy notice promises not to keep, once its time is up.

Four categories, each in its own transaction: one-time codes and unconfirmed
sign-ups (``RETENTION_PENDING_HOURS``), the SMS log (``RETENTION_SMS_LOG_DAYS``),
people with no consent in force whose last consent event is older than the
proof period (``RETENTION_PROOF_MONTHS``), erased to a tombstone, and customer
relationships that are over: a grant as a customer whose purchase is older than
``CUSTOMER_RELATIONSHIP_MONTHS`` is withdrawn (``customers.lapse``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial

from dateutil.relativedelta import relativedelta
from flask import current_app
from sqlalchemy import Select, and_, delete, exists, func, or_, select, update

from viihde.clock import helsinki_day, utcnow
from viihde.extensions import db
from viihde.models import (
    AuditAction,
    CampaignMessage,
    ConsentEvent,
    ErasureSource,
    InboundMessage,
    SignupTotal,
    SmsMessage,
    SmsStatusEvent,
    Subscriber,
    UTCDateTime,
    Verification,
    VerificationKind,
)
from viihde.models.statements import insert_or_add, serialise

# customers imports this module too (months_before): modules, not names.
from viihde.register import audit, customers, subjects
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
        PENDING, lambda: _summarised(PENDING, report, _purge_pending(pending_cutoff, dry_run))
    )
    yield Unit(SMS_LOG, lambda: _summarised(SMS_LOG, report, _purge_sms_log(sms_cutoff, dry_run)))
    if dry_run:
        yield Unit(CONSENT_PROOF, lambda: {"subscribers_erased": _count(erasable(proof_cutoff))})
        yield Unit(
            CUSTOMER_RELATIONSHIPS,
            lambda: {"customer_grants_ended": _count(customers.lapsed_grants(customer_cutoff))},
        )
        return
    for subscriber_id in list(db.session.scalars(erasable(proof_cutoff).order_by(Subscriber.id))):
        yield Unit(CONSENT_PROOF, partial(_erase_one, subscriber_id, proof_cutoff, now, report))
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


def months_before(moment: datetime, months: int) -> datetime:
    """The same time ``months`` calendar months earlier (the 31st becomes the month's last)."""
    return moment - relativedelta(months=months)


def _count(query: Select) -> int:
    return db.session.scalar(select(func.count()).select_from(query.subquery()))


def _purge_pending(cutoff: datetime, dry_run: bool) -> dict[str, int]:
    """Codes of every kind (confirmed, unconfirmed, step-up, expired) older than the cutoff.

    The dashboard's sign-up figures were counted from these rows: they are kept as daily
    totals in the same transaction, so the figures stay as they were.
    """
    old = Verification.created_at < cutoff
    if dry_run:
        return {"verifications": _count(select(Verification.id).where(old))}
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


def _purge_sms_log(cutoff: datetime, dry_run: bool) -> dict[str, int]:
    """Sent messages, their delivery callbacks, and replies older than the cutoff."""
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
            "sms_status_events": _count(select(SmsStatusEvent.id).where(old_statuses)),
            "sms_messages": _count(old_ids),
            "inbound_messages": _count(select(InboundMessage.id).where(old_replies)),
            "campaign_recipients": _count(select(CampaignMessage.id).where(old_recipients)),
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
    return {
        "campaign_recipients": forgotten,
        "sms_status_events": execute(delete(SmsStatusEvent).where(old_statuses)).rowcount,
        "sms_messages": execute(delete(SmsMessage).where(SmsMessage.id.in_(old_ids))).rowcount,
        "inbound_messages": execute(delete(InboundMessage).where(old_replies)).rowcount,
    }


def erasable(cutoff: datetime, subscriber_ids: list[int] | None = None) -> Select:
    """Subscribers with no purpose granted now whose last consent event is before ``cutoff``.

    One query for the whole register: the latest event per subscriber and purpose
    comes from a grouped subquery. ``subscriber_ids`` narrows it (and its subqueries).
    """
    latest = select(ConsentEvent.subscriber_id, func.max(ConsentEvent.seq).label("seq")).group_by(
        ConsentEvent.subscriber_id, ConsentEvent.purpose
    )
    last_event = select(
        ConsentEvent.subscriber_id, func.max(ConsentEvent.created_at).label("at")
    ).group_by(ConsentEvent.subscriber_id)
    if subscriber_ids is not None:
        latest = latest.where(ConsentEvent.subscriber_id.in_(subscriber_ids))
        last_event = last_event.where(ConsentEvent.subscriber_id.in_(subscriber_ids))
    latest, last_event = latest.subquery(), last_event.subquery()
    # Any grant still in force, for any purpose (offered now or not), keeps the person.
    granted_now = exists().where(
        ConsentEvent.subscriber_id == Subscriber.id,
        ConsentEvent.action == GRANT,
        latest.c.subscriber_id == ConsentEvent.subscriber_id,
        latest.c.seq == ConsentEvent.seq,
    )
    # Someone with no events at all (never expected) counts from their confirmation.
    last_seen = func.coalesce(last_event.c.at, Subscriber.confirmed_at, type_=UTCDateTime)
    query = (
        select(Subscriber.id)
        .outerjoin(last_event, last_event.c.subscriber_id == Subscriber.id)
        .where(last_seen < cutoff, ~granted_now)
    )
    if subscriber_ids is not None:
        query = query.where(Subscriber.id.in_(subscriber_ids))
    return query


def _erase_one(
    subscriber_id: int, cutoff: datetime, now: datetime, report: PurgeReport
) -> dict[str, int]:
    """Erase one person past the proof period, through ``subjects.erase``, with its audit
    entry; nothing if a consent given since the search keeps them."""
    phone = _locked_if_still_erasable(subscriber_id, cutoff)
    if phone is None:
        return {}
    audit.record(
        report.actor, AuditAction.ERASE, now, phone_e164=phone, detail=ErasureSource.RETENTION
    )
    subjects.erase(phone, ErasureSource.RETENTION, now)
    return {"subscribers_erased": 1}


def _locked_if_still_erasable(subscriber_id: int, cutoff: datetime) -> str | None:
    """Lock the subscriber and check again: a consent given since the search keeps them."""
    phone = db.session.scalar(
        select(Subscriber.phone_e164).where(Subscriber.id == subscriber_id).with_for_update()
    )
    if phone is None or db.session.scalar(erasable(cutoff, [subscriber_id])) is None:
        return None
    return phone


def _end_relationship(
    subscriber_id: int, cutoff: date, now: datetime, report: PurgeReport
) -> dict[str, int]:
    """Withdraw one person's customer grants whose purchase is before ``cutoff`` (a
    Helsinki day), through ``customers.lapse`` under their row lock, with its audit entry."""
    ended = customers.lapse(subscriber_id, cutoff, now)
    if ended:
        phone = ended[0].subscriber.phone_e164
        detail = f"customer relationship ended: {len(ended)}"
        audit.record(
            report.actor, AuditAction.END_CUSTOMER_GRANTS, now, phone_e164=phone, detail=detail
        )
    return {"customer_grants_ended": len(ended)}
