"""The data subject's rights over the register: find by link, export, erase."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from viihde.extensions import db
from viihde.hashing import keyed_hash
from viihde.models import (
    EVIDENCE_FIELDS,
    TEXT_VERSION_FIELDS,
    CampaignMessage,
    ConsentEvent,
    ErasureSource,
    InboundMessage,
    SmsKind,
    SmsMessage,
    SmsStatusEvent,
    Subscriber,
    Tombstone,
    Verification,
)
from viihde.phone import PhoneError, parse_mobile
from viihde.register import consent
from viihde.sms import stage
from viihde.sms.texts import link_message, new_link_message
from viihde.tokens import preference_url, read_preference_token, secret_keys


def subscriber_for_token(token: str) -> Subscriber | None:
    """The subscriber a preference link names, if the link is genuine and not revoked."""

    def link_key_of(subscriber_id: int) -> str | None:
        return db.session.scalar(select(Subscriber.link_key).where(Subscriber.id == subscriber_id))

    subscriber_id = read_preference_token(token, secret_keys(), link_key_of)
    return db.session.get(Subscriber, subscriber_id) if subscriber_id is not None else None


def subscriber_by_id(subscriber_id: int | None) -> Subscriber | None:
    """The subscriber with this id, if there is one."""
    return db.session.get(Subscriber, subscriber_id) if subscriber_id else None


def subscriber_by_phone(phone_e164: str) -> Subscriber | None:
    """The subscriber with this number, if there is one."""
    return db.session.scalar(select(Subscriber).where(Subscriber.phone_e164 == phone_e164))


#: Support may look a number up by its last digits, when it has at least this many.
MIN_LAST_DIGITS = 6


@dataclass(frozen=True)
class Search:
    """What support typed: a whole number (in E.164), or the last digits of one."""

    phone_e164: str | None = None
    last_digits: str | None = None


def read_search(query: str, allowed_regions: list[str]) -> Search:
    """A whole number in any accepted format, else 6+ last digits; else PhoneError.

    Bare digits with neither the trunk 0 nor a country code are always last digits:
    phonenumbers would read "456789" as the (valid) number +358 45 6789.
    """
    typed = (query or "").strip().replace(" ", "")
    tail = typed.isdigit() and not typed.startswith(("0", "358"))
    if tail and len(typed) >= MIN_LAST_DIGITS:
        return Search(last_digits=typed)
    try:
        return Search(phone_e164=parse_mobile(query, allowed_regions))
    except PhoneError:
        compact = typed.lstrip("+")
        if compact.isdigit() and len(compact) >= MIN_LAST_DIGITS:
            return Search(last_digits=compact)
        raise


def find_by_last_digits(digits: str, limit: int = 50) -> list[Subscriber]:
    """Subscribers whose number ends with ``digits`` (support types what the caller reads)."""
    if db.session.get_bind().dialect.name == "postgresql":
        # The reversed number's index serves a prefix (migration 0008); LIKE '%…' scans all.
        ends_with = func.reverse(Subscriber.phone_e164).startswith(digits[::-1], autoescape=True)
    else:
        ends_with = Subscriber.phone_e164.endswith(digits, autoescape=True)
    return list(
        db.session.scalars(
            select(Subscriber).where(ends_with).order_by(Subscriber.phone_e164).limit(limit)
        )
    )


def subscriber_for_link_key(subscriber_id: int, link_key: str) -> Subscriber | None:
    """The subscriber, if ``link_key`` is still theirs (a revoked link's key is not)."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.link_key != link_key:
        return None
    return subscriber


def tombstone_hash(phone_e164: str) -> str:
    """The keyed hash an erased number leaves behind."""
    return keyed_hash("tombstone", phone_e164)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export(
    phone_e164: str, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """Everything stored about a number, as plain JSON-ready data (never a code).

    ``since`` and ``until`` cut out one holding of a number that changed hands
    (``Subscriber.holder_since``): only the records made at or after ``since`` (the
    current holder's own access), or only those made before ``until`` (an earlier
    holder's). The current consents stay the ledger's; with ``until`` they are as they
    were then. A withdrawal that ended an earlier holder's grant is the number's change,
    kept, but without that grant's basis and day of purchase.
    """
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.phone_e164 == phone_e164))
    ledger = subscriber.consent_events if subscriber else []
    events = [e for e in ledger if _within(e.created_at, since, until)]
    earlier = _ended_earlier_grants(ledger, since)
    if until is None:
        latest = consent.latest_events(subscriber.id) if subscriber else {}
    else:
        latest = {e.purpose: e for e in events}  # in seq order: the last one stays
    state = consent.state_of(latest) if subscriber else {}
    messages = db.session.scalars(
        select(SmsMessage)
        .where(SmsMessage.phone_e164 == phone_e164, *_between(SmsMessage.created_at, since, until))
        .order_by(SmsMessage.id)
    )
    verifications = db.session.scalars(
        select(Verification)
        .where(
            Verification.phone_e164 == phone_e164,
            *_between(Verification.created_at, since, until),
        )
        .order_by(Verification.id)
    )
    replies = db.session.scalars(
        select(InboundMessage)
        .where(
            InboundMessage.phone_e164 == phone_e164,
            *_between(InboundMessage.received_at, since, until),
        )
        .order_by(InboundMessage.id)
    )
    erasures = db.session.scalars(
        select(Tombstone).where(
            Tombstone.phone_hash == tombstone_hash(phone_e164),
            *_between(Tombstone.erased_at, since, until),
        )
    )
    return {
        "number": phone_e164,
        "subscribed": any(state.values()),
        # The language is the current holder's choice, not an earlier one's.
        "language": subscriber.language if subscriber and until is None else None,
        "confirmed_at": _time(_confirmed_at(subscriber, events, since, until)),
        "holder_since": _time(subscriber.holder_since) if subscriber else None,
        "consents": state,
        # Each purpose's basis: of the grant in force, or of the one a withdrawal ended
        # (unless that grant was an earlier holder's).
        "bases": {
            purpose: event.basis
            for purpose, event in latest.items()
            if event.seq not in earlier and _within(event.created_at, since, until)
        },
        "consent_events": [_event(e, redacted=e.seq in earlier) for e in events],
        "sms_messages": [_message(m) for m in messages],
        "verifications": [_verification(v) for v in verifications],
        "sms_replies": [
            {"body": r.body, "keyword": r.keyword, "received_at": _time(r.received_at)}
            for r in replies
        ],
        "erasures": [{"erased_at": _time(t.erased_at), "source": t.source} for t in erasures],
    }


def _within(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or moment >= since) and (until is None or moment < until)


def _between(column, since: datetime | None, until: datetime | None) -> list:
    """The WHERE conditions of ``_within`` on a time column."""
    return [
        *([column >= since] if since is not None else []),
        *([column < until] if until is not None else []),
    ]


def _ended_earlier_grants(ledger: Iterable[ConsentEvent], since: datetime | None) -> set[int]:
    """The seqs of the withdrawals made at or after ``since`` that ended a grant given
    before it: the basis and purchase day they carry are an earlier holder's."""
    if since is None:
        return set()
    grants: dict[str, ConsentEvent] = {}
    ended = set()
    for event in ledger:  # in seq order
        if event.action == consent.GRANT:
            grants[event.purpose] = event
            continue
        grant = grants.pop(event.purpose, None)
        if grant is not None and grant.created_at < since <= event.created_at:
            ended.add(event.seq)
    return ended


def _confirmed_at(
    subscriber: Subscriber | None,
    events: list[ConsentEvent],
    since: datetime | None,
    until: datetime | None,
) -> datetime | None:
    """When the number became a subscriber, within the holding asked for: an earlier
    holder's confirmation is not the current holder's, whose first grant stands for it."""
    if subscriber is None:
        return None
    if _within(subscriber.confirmed_at, since, until):
        return subscriber.confirmed_at
    if until is not None:
        return None
    grants = [e.created_at for e in events if e.action == consent.GRANT]
    return min(grants, default=None)


def _event(event: ConsentEvent, redacted: bool = False) -> dict[str, Any]:
    """One consent event; ``redacted`` (it ended an earlier holder's grant): without that
    grant's basis and purchase day, and without the evidence of who pressed what (the
    address, browser and campaign may be the earlier holder's)."""
    shown = {
        "seq": event.seq,
        "action": event.action,
        "purpose": event.purpose,
        "source": event.source,
        "actor": event.actor,
        "privacy_notice_version": event.privacy_notice_version,
        "consent_text_version": event.consent_text_version,
        "created_at": _time(event.created_at),
    }
    if redacted:
        return shown | dict.fromkeys((*CIRCUMSTANCES, "basis", "purchased_on"))
    return (
        shown
        | {key: getattr(event, key) for key in CIRCUMSTANCES}
        | {
            "basis": event.basis,
            "purchased_on": event.purchased_on.isoformat() if event.purchased_on else None,
        }
    )


#: What an event records of the person's circumstances: its evidence but the text versions.
CIRCUMSTANCES = tuple(name for name in EVIDENCE_FIELDS if name not in TEXT_VERSION_FIELDS)


def _message(message: SmsMessage) -> dict[str, Any]:
    return {
        "kind": message.kind,
        "body": message.body,
        "status": message.status,
        "segments": message.segments,
        "error_code": message.error_code,
        "created_at": _time(message.created_at),
    }


def _verification(verification: Verification) -> dict[str, Any]:
    return {
        "created_at": _time(verification.created_at),
        "expires_at": _time(verification.expires_at),
        "confirmed_at": _time(verification.consumed_at),
        "attempts": verification.attempts,
        "utm_campaign": verification.utm_campaign,
    }


def revoke_links(subscriber_id: int, link_key: str, now: datetime) -> Subscriber | None:
    """Make every link sent so far stop working, and stage a fresh one by SMS (no commit).

    Only over ``link_key``, the key the asking browser holds: of twin requests (a double
    press, fifteen tabs) the first changes it and texts one link; the others find it
    changed and stage nothing (None).
    """
    changed = db.session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id, Subscriber.link_key == link_key)
        .values(link_key=consent.new_link_key())
        .returning(Subscriber.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if changed is None:
        return None
    subscriber = db.session.get(Subscriber, subscriber_id, populate_existing=True)
    link = preference_url(subscriber.id, subscriber.link_key)
    body = new_link_message(link, subscriber.language)
    stage(subscriber.phone_e164, body, SmsKind.LINK, now, subscriber_id=subscriber.id)
    return subscriber


def send_link(subscriber_id: int, now: datetime) -> None:
    """Stage an SMS with the subscriber's current preference link (support does this on
    request; no commit)."""
    subscriber = db.session.get(Subscriber, subscriber_id)
    link = preference_url(subscriber.id, subscriber.link_key)
    stage(
        subscriber.phone_e164,
        link_message(link, subscriber.language),
        SmsKind.LINK,
        now,
        subscriber_id=subscriber.id,
    )


def receipt(subscriber_id: int, seq: int, since: datetime | None = None) -> dict | None:
    """One of the subscriber's own consent events as their export shows it (never another
    person's); with ``since``, only one of the current holding, redacted as the export
    redacts it when it ended an earlier holder's grant."""
    ledger = db.session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber_id, ConsentEvent.seq <= seq)
        .order_by(ConsentEvent.seq)
    ).all()
    if not ledger or ledger[-1].seq != seq or not _within(ledger[-1].created_at, since, None):
        return None
    redacted = seq in _ended_earlier_grants(ledger, since)
    return _event(ledger[-1], redacted=redacted) | {"reference": f"{subscriber_id}-{seq}"}


CSV_SECTIONS = ("consent_events", "sms_messages", "sms_replies", "verifications", "erasures")


def export_csv(data: dict[str, Any]) -> str:
    """The export as one CSV table: a row per record, its kind in the first column."""
    columns = ["record", "number"]
    for section in CSV_SECTIONS:
        for row in data[section]:
            columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for section in CSV_SECTIONS:
        for row in data[section]:
            row = {"record": section.removesuffix("s"), "number": data["number"], **row}
            writer.writerow({key: _cell(value) for key, value in row.items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """Defuse spreadsheet formulas: campaign values come from the visitor's URL."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def erase(
    phone_e164: str, source: ErasureSource, now: datetime, *, since: datetime | None = None
) -> Tombstone:
    """Remove everything stored about a number and leave a keyed-hash tombstone (no
    commit: the caller commits it with its audit entry).

    ``since`` (a number that changed hands, erased by its current holder): remove only
    the records from then on. The previous holder's stay as their proof of consent,
    with the withdrawals that ended it, until the retention purge erases them.
    """
    subscriber_id = db.session.scalar(
        select(Subscriber.id).where(Subscriber.phone_e164 == phone_e164).with_for_update()
    )
    if since is None:
        if subscriber_id is not None:
            _forget_subscriber(subscriber_id)
    elif subscriber_id is not None:
        _forget_holding(subscriber_id, since)
    messages = select(SmsMessage.id).where(
        SmsMessage.phone_e164 == phone_e164, *_between(SmsMessage.created_at, since, None)
    )
    db.session.execute(
        update(CampaignMessage)
        .where(CampaignMessage.sms_message_id.in_(messages))
        .values(sms_message_id=None)
    )
    sids = select(SmsMessage.provider_sid).where(SmsMessage.id.in_(messages))
    db.session.execute(delete(SmsStatusEvent).where(SmsStatusEvent.message_sid.in_(sids)))
    db.session.execute(
        delete(Verification).where(
            Verification.phone_e164 == phone_e164, *_between(Verification.created_at, since, None)
        )
    )
    db.session.execute(delete(SmsMessage).where(SmsMessage.id.in_(messages)))
    db.session.execute(
        delete(InboundMessage).where(
            InboundMessage.phone_e164 == phone_e164,
            *_between(InboundMessage.received_at, since, None),
        )
    )
    tombstone = Tombstone(phone_hash=tombstone_hash(phone_e164), source=source, erased_at=now)
    db.session.add(tombstone)
    db.session.flush()
    # Bulk deletes bypass the identity map: what it held of the number is gone.
    db.session.expire_all()
    return tombstone


def _forget_subscriber(subscriber_id: int) -> None:
    db.session.execute(delete(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id))
    # A campaign's figures keep the row, not who it was (whatever the FK does on SQLite).
    db.session.execute(
        update(CampaignMessage)
        .where(CampaignMessage.subscriber_id == subscriber_id)
        .values(subscriber_id=None)
    )
    db.session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))


def _forget_holding(subscriber_id: int, since: datetime) -> None:
    """The current holder's consent events go; the withdrawals that ended the previous
    holder's grants stay (without them those grants would be in force again), and the
    links sent to the current holder stop working."""
    ledger = db.session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber_id)
        .order_by(ConsentEvent.seq)
    )
    db.session.execute(
        delete(ConsentEvent).where(
            ConsentEvent.subscriber_id == subscriber_id,
            ConsentEvent.created_at >= since,
            ConsentEvent.seq.not_in(_ended_earlier_grants(ledger, since)),
        )
    )
    db.session.execute(
        update(CampaignMessage)
        .where(CampaignMessage.subscriber_id == subscriber_id, CampaignMessage.created_at >= since)
        .values(subscriber_id=None)
    )
    db.session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(link_key=consent.new_link_key())
    )
