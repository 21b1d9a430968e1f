"""The right of access: everything stored about a number, as data, a CSV table or the
receipt of one consent event; for a number that changed hands, one holder's records."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Row, Select, bindparam, select

from viihde.extensions import db
from viihde.models import (
    EVIDENCE_FIELDS,
    TEXT_VERSION_FIELDS,
    ConsentEvent,
    ConsentSource,
    InboundMessage,
    Refusal,
    SmsMessage,
    Subscriber,
    Tombstone,
    Verification,
)
from viihde.register import consent, holdings
from viihde.register.erasure import tombstone_hash
from viihde.register.holdings import Whose


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export(phone_e164: str, whose: Whose = Whose.ALL) -> dict[str, Any]:
    """Everything stored about a number, as plain JSON-ready data (never a code).

    ``whose``: of a number that changed hands, only the current holder's records (their
    own access) or only the earlier holders' (see ``holdings.scope``). The consents are
    those of the last holding covered: the current ones, or as they stood when the number
    changed hands (the change's withdrawals are in the history). A withdrawal that ended
    a grant of another holding is shown without that grant's basis and day of purchase.
    """
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.phone_e164 == phone_e164))
    scope = holdings.scope_of(phone_e164, subscriber.id if subscriber else None, whose)
    return export_of(scope, subscriber)


def card(phone_e164: str, subscriber: Subscriber | None) -> tuple[dict[str, Any], datetime | None]:
    """What support's card shows of a number whose subscriber the caller has (None: not in
    the register): everything stored about the whole number, and since when its holder
    has held it (``holdings.holder_since``), the holdings read once for both."""
    scope = holdings.scope_of(phone_e164, subscriber.id if subscriber else None)
    return export_of(scope, subscriber), holdings.since(scope.held)


def export_of(scope: holdings.Scope, subscriber: Subscriber | None) -> dict[str, Any]:
    """``export``, for a caller that has the number's subscriber (None: not in the
    register) and the scope of its holdings already."""
    phone_e164 = scope.phone_e164
    db.session.flush()  # the reads below are the connection's: they see what is pending
    ledger = _rows_of(ConsentEvent, "subscriber_id", subscriber.id, "seq") if subscriber else []
    events = [e for e in ledger if scope.has(e.holding_id)]
    last = scope.shown[-1].id if scope.shown else None
    latest = {  # in seq order: the last one stays
        e.purpose: e
        for e in events
        if e.holding_id == last and e.source != ConsentSource.REGISTER_UPDATE
    }
    state = consent.state_of(latest) if subscriber else {}
    borrowed = _borrowed_bases(events) if scope.chosen is not None else set()

    def rows(model, time, by: str = "phone_e164", key: str = phone_e164) -> Sequence[Any]:
        if scope.chosen is None:  # the whole number (support's card)
            return _rows_of(model, by, key)
        mine = getattr(model, by) == key
        return db.session.scalars(
            select(model).where(scope.rows(model, time, mine)).order_by(model.id)
        ).all()

    fingerprint = tombstone_hash(phone_e164)
    erasures = rows(Tombstone, Tombstone.erased_at, "phone_hash", fingerprint)
    refusals = db.session.scalars(
        select(Refusal.refused_at)
        .where(Refusal.phone_hash == fingerprint, scope.during(Refusal.refused_at))
        .order_by(Refusal.id)
    ).all()
    return {
        "number": phone_e164,
        "subscribed": any(state.values()),
        # The language is the current holder's choice, not an earlier one's.
        "language": subscriber.language if subscriber and scope.has_current else None,
        "confirmed_at": _time(_confirmed_at(subscriber, scope, events)),
        "holdings": [
            {"started_at": _time(h.started_at), "ended_at": _time(h.ended_at)} for h in scope.shown
        ],
        "consents": state,
        # Each purpose's basis: of the grant in force, or of the one a withdrawal ended.
        "bases": {
            purpose: event.basis for purpose, event in latest.items() if event.seq not in borrowed
        },
        "consent_events": [_event(e, redacted=e.seq in borrowed) for e in events],
        "sms_messages": [_message(m) for m in rows(SmsMessage, SmsMessage.created_at)],
        "verifications": [_verification(v) for v in rows(Verification, Verification.created_at)],
        "sms_replies": [
            {"body": r.body, "keyword": r.keyword, "received_at": _time(r.received_at)}
            for r in rows(InboundMessage, InboundMessage.received_at)
        ],
        "erasures": [{"erased_at": _time(t.erased_at), "source": t.source} for t in erasures],
        # A STOP's refusal: kept as a keyed hash of the number and when (models.Refusal).
        "refusals": [{"refused_at": _time(at)} for at in refusals],
    }


def _rows_of(model: type, by: str, key: Any, order: str = "id") -> Sequence[Row]:
    """Every row of ``model`` whose ``by`` is ``key``, in ``order``: a statement built
    once, its rows plain (no ORM objects; the card reads five such lists, each 0.3 ms
    less so)."""
    return db.session.connection().execute(_rows_statement(model, by, order), {"key": key}).all()


@cache
def _rows_statement(model: type, by: str, order: str) -> Select:
    table = model.__table__
    return select(table).where(table.c[by] == bindparam("key")).order_by(table.c[order])


def _borrowed_bases(ledger: Iterable[ConsentEvent]) -> set[int]:
    """The seqs of the withdrawals whose grant is in another holding (a new holder's STOP
    of what an earlier holder granted): the basis and purchase day they carry are the
    earlier holder's."""
    granted: set[tuple[int, str]] = set()
    borrowed = set()
    for event in ledger:  # in seq order
        key = (event.holding_id, event.purpose)
        if event.action == consent.GRANT:
            granted.add(key)
        elif key not in granted:
            borrowed.add(event.seq)
    return borrowed


def _confirmed_at(
    subscriber: Subscriber | None, scope: holdings.Scope, events: list[ConsentEvent]
) -> datetime | None:
    """When the number became a subscriber, for the holders covered: the first holder
    confirmed it; for a later one, their first grant stands for it."""
    if subscriber is None:
        return None
    if scope.has_first:
        return subscriber.confirmed_at
    return min((e.created_at for e in events if e.action == consent.GRANT), default=None)


def _event(event: ConsentEvent, redacted: bool = False) -> dict[str, Any]:
    """One consent event; ``redacted`` (it ended an earlier holder's grant): without that
    grant's basis and purchase day, and without the evidence of who pressed what."""
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


def receipt(subscriber_id: int, seq: int) -> dict | None:
    """One of the current holder's own consent events as their export shows it (never
    another person's, nor an earlier holder's)."""
    holding = holdings.current(subscriber_id)
    if holding is None:
        return None
    ledger = db.session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.holding_id == holding.id, ConsentEvent.seq <= seq)
        .order_by(ConsentEvent.seq)
    ).all()
    if not ledger or ledger[-1].seq != seq:
        return None
    redacted = seq in _borrowed_bases(ledger)
    return _event(ledger[-1], redacted=redacted) | {"reference": f"{subscriber_id}-{seq}"}


CSV_SECTIONS = (
    "consent_events", "sms_messages", "sms_replies", "verifications", "erasures", "refusals",
)  # fmt: skip


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
