"""The consent ledger: subscribe, grant, withdraw, and the current state.

The only place that writes ``ConsentEvent`` rows. Events are appended in
per-subscriber order under a lock on the subscriber row, so a STOP racing an
opt-in is serialised, never lost or duplicated; each append writes the current state
beside the ledger (``register.states``) in the same transaction, so the state read by
pages and campaigns always equals the ledger's fold.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, make_dataclass
from datetime import date, datetime

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.event import listens_for
from sqlalchemy.orm import Session

from viihde.extensions import db
from viihde.models import (
    EVIDENCE_FIELDS,
    ConsentActor,
    ConsentEvent,
    ConsentEvidence,
    ConsentSource,
    Holding,
    LawfulBasis,
    Subscriber,
)
from viihde.models.statements import columns_of, insert_new, read_one
from viihde.ops import metrics
from viihde.register import holdings, states
from viihde.register.notices import PRIVACY_NOTICE_VERSION
from viihde.register.purposes import CATALOGUE
from viihde.register.purposes import configured_keys as configured_purposes

GRANT = "grant"
WITHDRAW = "withdraw"
#: Withdrawals the system made, not the person: a customer grant whose purchase grew too
#: old (``customers.lapse``), and a previous holder's grants (``holders``, in the holding
#: it closes). Neither is anyone's refusal.
ENDED_BY_THE_SYSTEM = (
    ConsentSource.CUSTOMER_RELATIONSHIP_ENDED,
    ConsentSource.REGISTER_UPDATE,
)


def _evidence_of(cls, row: ConsentEvidence) -> Evidence:
    """The evidence a stored row (a verification, an event) carries."""
    return cls(**{name: getattr(row, name) for name in EVIDENCE_FIELDS})


#: Nothing of the evidence is known until given, but the privacy notice in force. A consent
#: text of None is each purpose's own current text (a switch on the preference page).
_EVIDENCE_DEFAULTS = {"privacy_notice_version": PRIVACY_NOTICE_VERSION}

#: Where a consent came from and under which texts; every event keeps it. Its fields are
#: ``ConsentEvidence``'s columns, declared there once.
Evidence = make_dataclass(
    "Evidence",
    [(name, str | None, field(default=_EVIDENCE_DEFAULTS.get(name))) for name in EVIDENCE_FIELDS],
    frozen=True,
    namespace={"__module__": __name__, "of": classmethod(_evidence_of)},
)


@dataclass(frozen=True)
class ConsentContext:
    """Who gives or withdraws consent (source and actor), with the evidence of it, and the
    basis a grant rests on (a customer grant names the day of the purchase too)."""

    source: ConsentSource
    actor: str = ConsentActor.SUBJECT  # a ConsentActor, or ConsentActor.staff_member(id)
    evidence: Evidence = field(default_factory=Evidence)
    basis: LawfulBasis = LawfulBasis.CONSENT
    purchased_on: date | None = None


def new_link_key() -> str:
    """A fresh random key for a subscriber's preference links (128 bits)."""
    return secrets.token_urlsafe(16)


def subscribe(
    phone_e164: str,
    purposes: Iterable[str],
    context: ConsentContext,
    now: datetime,
    language: str = "fi",
) -> Subscriber:
    """Make ``phone_e164`` a confirmed subscriber and record its consent (no commit).

    A twin request may create the same subscriber at the same moment: the row is
    inserted with ON CONFLICT DO NOTHING and then locked, so both end up with one.
    """
    return signup(phone_e164, purposes, context, now, language)[0]


def signup(
    phone_e164: str,
    purposes: Iterable[str],
    context: ConsentContext,
    now: datetime,
    language: str = "fi",
) -> tuple[Subscriber, int]:
    """``subscribe``, and the id of the holding its grants went to (no commit).

    A number new to the register is inserted, holding and grants after it, and nothing
    is read first: it has no holding, no event and no lock to wait for (a twin
    inserting the same number waits on the unique index, then finds it there)."""
    subscriber, created = enter(phone_e164, language, now)
    if subscriber.language != language:  # the same one set again would flush for nothing
        subscriber.language = language
    grants = [(purpose, GRANT) for purpose in purposes]
    if created:
        holding_id = holdings.open_new(subscriber, now).id
        append(subscriber, grants, context, now, latest={}, holding_id=holding_id, last_seq=0)
        return subscriber, holding_id
    holding_id, latest, last_seq = states.open_holding_and_latest(subscriber.id)
    if holding_id is None:
        holding_id, latest = holdings.open_new(subscriber, now).id, {}
    events = append(subscriber, grants, context, now, latest, holding_id, last_seq)
    return subscriber, events[0].holding_id if events else holding_id


def enter(phone_e164: str, language: str, now: datetime) -> tuple[Subscriber, bool]:
    """The number's subscriber, locked, made now unless it is in the register already
    (and whether this made it; no commit). A new row comes back from its INSERT (its own
    transaction's, so nobody else can lock it); one already there is read FOR UPDATE."""
    made = insert_new(
        Subscriber,
        {
            "phone_e164": phone_e164,
            "language": language,
            "link_key": new_link_key(),
            "created_at": now,
            "confirmed_at": now,
        },
        unique=("phone_e164",),
    )
    if made is not None:
        return made, True
    return _locked(_LOCK_BY_NUMBER, {"phone_e164": phone_e164}), False


def lock_subscriber(subscriber_id: int) -> Subscriber | None:
    """Load and lock the subscriber, fresh from the database (None: erased meanwhile)."""
    return _locked(_LOCK_BY_ID, {"subscriber_id": subscriber_id})


def lock_number(phone_e164: str) -> Subscriber | None:
    """Load and lock the subscriber with this number (None: not in the register)."""
    return _locked(_LOCK_BY_NUMBER, {"phone_e164": phone_e164})


def grant_in_force(subscriber_id: int, purpose: str) -> ConsentEvent | None:
    """The grant of ``purpose`` in force, if any (read it under the subscriber's lock when
    acting on it)."""
    event = latest_events(subscriber_id).get(purpose)
    return event if event is not None and event.action == GRANT else None


def _locked(statement: Select, parameters: dict) -> Subscriber | None:
    """Load and lock (FOR UPDATE on PostgreSQL) the subscriber ``statement`` finds."""
    subscriber = read_one(statement, parameters, Subscriber)
    if subscriber is not None:
        db.session.info.setdefault(_LOCKED, set()).add(subscriber.id)
    return subscriber


def _locking(condition) -> Select:
    return select(*columns_of(Subscriber)).where(condition).with_for_update()


#: The locking reads, built once (every change from a link, STOP and sign-up take one).
_LOCK_BY_ID = _locking(Subscriber.id == bindparam("subscriber_id"))
_LOCK_BY_NUMBER = _locking(Subscriber.phone_e164 == bindparam("phone_e164"))


#: The subscribers whose rows this session's transaction has locked (and read fresh).
_LOCKED = "viihde.locked_subscribers"


@listens_for(Session, "after_transaction_end")
def _locks_released(session: Session, transaction) -> None:
    """Any end of a transaction (a savepoint's too) may have released the locks: forget."""
    session.info.pop(_LOCKED, None)


def _already_locked(subscriber_id: int) -> Subscriber | None:
    """The subscriber, if this transaction locked its row already (no statement)."""
    if subscriber_id in db.session.info.get(_LOCKED, ()):
        return db.session.get(Subscriber, subscriber_id)
    return None


def set_consent(
    subscriber_id: int,
    purposes: Iterable[str],
    granted: bool,
    context: ConsentContext,
    now: datetime,
) -> list[states.RecordedEvent]:
    """Grant or withdraw each of ``purposes`` (see ``set_choices``)."""
    return set_choices(subscriber_id, dict.fromkeys(purposes, granted), context, now)


def set_choices(
    subscriber_id: int, choices: Mapping[str, bool], context: ConsentContext, now: datetime
) -> list[states.RecordedEvent]:
    """Record each changed choice as an event (no commit); unchanged ones record nothing.

    Returns the events written, so a double submit or a repeated STOP is a no-op.
    """
    return _change(subscriber_id, lambda state: choices, context, now)


def _text_version(purpose: str, last: ConsentEvent | states.LastEvent | None) -> str:
    """The consent text an event names when its context names none: the purpose's current
    one, or for a purpose no longer in the catalogue (retired, its grants still in force)
    the text its last event was under: withdrawing it must never fail."""
    known = CATALOGUE.get(purpose)
    if known is not None:
        return known.text_version
    if last is None:  # a grant of it is refused before this; a withdrawal needs one in force
        raise ValueError(f"no such consent purpose: {purpose!r}")
    return last.consent_text_version


def withdraw_all(
    subscriber_id: int, context: ConsentContext, now: datetime
) -> list[states.RecordedEvent]:
    """Stop all marketing at once (one tap from the link, STOP by SMS): every grant in force
    when the subscriber's lock is taken, so a grant committed just before is stopped too."""
    return _change(
        subscriber_id, lambda state: {p: False for p, on in state.items() if on}, context, now
    )


def resume_after_stop(
    subscriber_id: int, context: ConsentContext, now: datetime
) -> list[states.RecordedEvent]:
    """START after STOP by SMS: grant again what the subscriber's last STOP by SMS withdrew,
    and nothing more (no commit). The STOP's answer says "to get them again, reply START":
    a purpose never granted, switched off on the page, or stopped by an earlier STOP that
    a later one did not repeat stays as it is."""
    subscriber = _already_locked(subscriber_id) or lock_subscriber(subscriber_id)
    if subscriber is None:
        return []
    latest = latest_events(subscriber.id)
    stopped = {
        purpose: event
        for purpose, event in latest.items()
        if event.action == WITHDRAW and event.source == ConsentSource.SMS_KEYWORD
    }
    if not stopped:
        return []
    moment = max(stopped.values(), key=lambda event: event.seq).created_at
    again = [
        (purpose, GRANT)
        for purpose in configured_purposes()
        if purpose in stopped and stopped[purpose].created_at == moment
    ]
    return append(subscriber, again, context, now, latest)


def _change(
    subscriber_id: int,
    choose: Callable[[dict[str, bool]], Mapping[str, bool]],
    context: ConsentContext,
    now: datetime,
) -> list[states.RecordedEvent]:
    """Lock the subscriber, read the ledger once, record what ``choose`` changes (no commit:
    the caller's, which also releases the lock)."""
    subscriber = _already_locked(subscriber_id) or lock_subscriber(subscriber_id)
    if subscriber is None:
        return []
    holding_id, latest, last_seq = states.open_holding_and_latest(subscriber.id)
    state = state_of(latest)
    changes = [
        (purpose, GRANT if granted else WITHDRAW)
        for purpose, granted in choose(state).items()
        if state.get(purpose, False) != granted
    ]
    return append(subscriber, changes, context, now, latest, holding_id, last_seq)


def end_holding(
    subscriber: Subscriber, holding: Holding, context: ConsentContext, now: datetime
) -> list[states.RecordedEvent]:
    """Withdraw every grant in force in ``holding`` (a locked subscriber's, closed by a
    holder change): a closed holding never has a grant in force (no commit)."""
    latest = latest_in(holding.id)
    ended = [(purpose, WITHDRAW) for purpose, event in latest.items() if event.action == GRANT]
    return append(subscriber, ended, context, now, latest, holding_id=holding.id)


def latest_events(subscriber_id: int) -> dict[str, ConsentEvent]:
    """The last event for each purpose in the number's open holding: the state of its
    current holder, with its proof (nothing while nobody holds it)."""
    events = holdings.open_only(select(ConsentEvent))
    return _last_of(events.where(ConsentEvent.subscriber_id == subscriber_id))


def latest_in(holding_id: int) -> dict[str, ConsentEvent]:
    """The last event for each purpose in one holding."""
    return _last_of(select(ConsentEvent).where(ConsentEvent.holding_id == holding_id))


def _last_of(events: Select) -> dict[str, ConsentEvent]:
    latest: dict[str, ConsentEvent] = {}
    for event in db.session.scalars(events.order_by(ConsentEvent.seq)):
        latest[event.purpose] = event
    return latest


def state_of(latest: Mapping[str, ConsentEvent | states.LastEvent]) -> dict[str, bool]:
    """Each purpose's state given its last events (configured ones, and any other there)."""
    state = dict.fromkeys(configured_purposes(), False)
    for purpose, event in latest.items():
        state[purpose] = event.action == GRANT
    return state


def current_consent(subscriber_id: int) -> dict[str, bool]:
    """Each purpose's current state (configured ones, and any other the ledger holds), as
    stored beside the ledger: one statement, no fold."""
    return states.current(subscriber_id)


def any_granted(state: dict[str, bool]) -> bool:
    """True when any configured purpose is granted in ``state``."""
    return any(state[purpose] for purpose in configured_purposes())


def has_consent(subscriber_id: int, purpose: str) -> bool:
    """May this purpose's marketing go to the subscriber now? Every send asks this."""
    return current_consent(subscriber_id).get(purpose, False)


def is_subscribed(subscriber_id: int) -> bool:
    """True when any configured purpose is currently granted."""
    return any_granted(current_consent(subscriber_id))


def append(
    subscriber: Subscriber,
    changes: Sequence[tuple[str, str]],
    context: ConsentContext,
    now: datetime,
    latest: Mapping[str, ConsentEvent | states.LastEvent] | None = None,
    holding_id: int | None = None,
    last_seq: int | None = None,
) -> list[states.RecordedEvent]:
    """Append ``changes`` (purpose, action) for a locked subscriber, in order, to the
    holding ``holding_id`` (by default the open one, opened now if nobody holds the
    number). The only writer of the ledger.

    ``latest`` is the holding's last event per purpose read under the same lock (read here
    when not given): a withdrawal keeps the basis of the grant it ends ("the customer
    refused"). The next place in the order follows the number's whole ledger (its last
    place ``last_seq``, read here when not given).
    """
    if not changes:
        return []
    if holding_id is None:
        holding_id = holdings.open_for(subscriber, now).id
    if latest is None:
        latest = latest_in(holding_id)
    if last_seq is None:
        last_seq = db.session.scalar(
            select(func.max(ConsentEvent.seq)).where(ConsentEvent.subscriber_id == subscriber.id)
        )
    seq = last_seq or 0
    rows = []
    for purpose, action in changes:
        if action == GRANT and purpose not in configured_purposes():
            raise ValueError(f"no such consent purpose on offer: {purpose!r}")
        basis, purchased_on = context.basis, context.purchased_on
        if action == GRANT and basis == LawfulBasis.CUSTOMER and purchased_on is None:
            raise ValueError("a grant as a customer needs the day of the purchase")
        if action == WITHDRAW:
            ended = latest.get(purpose)
            basis, purchased_on = (
                (ended.basis, ended.purchased_on) if ended else (LawfulBasis.CONSENT, None)
            )
        evidence = asdict(context.evidence)
        if evidence["consent_text_version"] is None:
            evidence["consent_text_version"] = _text_version(purpose, latest.get(purpose))
        seq += 1
        rows.append(
            {
                "subscriber_id": subscriber.id,
                "holding_id": holding_id,
                "seq": seq,
                "purpose": purpose,
                "action": action,
                "source": context.source,
                "actor": context.actor,
                "created_at": now,
                "basis": basis,
                "purchased_on": purchased_on,
                **evidence,
            }
        )
    # Core statements built once, not the unit of work (one on PostgreSQL, the state with
    # the events): the events come back as plain values with their ids.
    events = states.record(rows)
    for event in events:
        metrics.CONSENT_EVENTS.labels(event.action, context.source).inc()
    return events
