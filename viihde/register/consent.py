"""The consent ledger: subscribe, grant, withdraw, and the current state.

The only place that writes ``ConsentEvent`` rows. Events are appended in
per-subscriber order under a lock on the subscriber row, so a STOP racing an
opt-in is serialised, never lost or duplicated; the current state is the fold
of the ledger and is never stored twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, make_dataclass, replace
from datetime import date, datetime

from sqlalchemy import select

from viihde.clock import start_of_day
from viihde.extensions import db
from viihde.models import (
    EVIDENCE_FIELDS,
    ConsentActor,
    ConsentEvent,
    ConsentEvidence,
    ConsentSource,
    LawfulBasis,
    Subscriber,
)
from viihde.models.statements import insert_once
from viihde.ops import metrics
from viihde.register.notices import CUSTOMER_TEXT_VERSION, PRIVACY_NOTICE_VERSION
from viihde.register.purposes import CATALOGUE, customer_keys
from viihde.register.purposes import configured_keys as configured_purposes

GRANT = "grant"
WITHDRAW = "withdraw"
#: Withdrawals the system made, not the person: a customer grant whose purchase grew too
#: old (``customers.lapse``), and a previous holder's grants (``holders``). Neither is
#: anyone's refusal.
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
    _insert_subscriber(phone_e164, language, now)
    subscriber = _locked(Subscriber.phone_e164 == phone_e164)
    subscriber.language = language
    _append(subscriber, [(purpose, GRANT) for purpose in purposes], context, now)
    return subscriber


def _insert_subscriber(phone_e164: str, language: str, now: datetime) -> bool:
    """Insert the number as a subscriber unless it is one already; True if this made it."""
    made = insert_once(
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
    return made is not None


@dataclass(frozen=True)
class CustomerGrants:
    """What ``grant_as_customer`` did for one buyer."""

    subscriber: Subscriber
    created: bool
    granted: list[ConsentEvent] = field(default_factory=list)
    #: Customer grants renewed: the purchase is newer than the one they rest on.
    renewed: list[ConsentEvent] = field(default_factory=list)
    #: Purposes left as they were: granted already (a consent keeps its basis) ...
    already_granted: list[str] = field(default_factory=list)
    #: ... or refused (withdrawn, or all marketing stopped).
    refused: list[str] = field(default_factory=list)
    #: The purchase was made before the number passed to its current holder: nothing.
    previous_holders: bool = False


def grant_as_customer(
    phone_e164: str, purchased_on: date, language: str, context: ConsentContext, now: datetime
) -> CustomerGrants:
    """Market the company's own similar products to a buyer, until they refuse (no commit).

    Each customer purpose the buyer has no word on yet gets a grant with basis
    "customer"; a customer grant resting on an older purchase is renewed; a consent
    keeps its basis and a refusal stands. Someone who stopped all marketing gets nothing
    new. Only the current holder's own word counts: withdrawals the system made (a
    lapsed relationship, a holder change) and events before the number changed hands are
    nobody's refusal, and a purchase from before the change was someone else's.
    """
    created = _insert_subscriber(phone_e164, language, now)
    subscriber = _locked(Subscriber.phone_e164 == phone_e164)
    since = subscriber.holder_since
    if since is not None and start_of_day(purchased_on) < since:
        return CustomerGrants(subscriber, created, previous_holders=True)
    ledger = latest_events(subscriber.id)
    own = {purpose: e for purpose, e in ledger.items() if _own_word(e, since)}
    system_ended = max((e.seq for e in ledger.values() if not _own_word(e, since)), default=0)
    # Stopped: nothing in force, and the buyer's last word came after the system's.
    stopped = (
        bool(own)
        and not any(e.action == GRANT for e in own.values())
        and max(e.seq for e in own.values()) > system_ended
    )
    outcome = CustomerGrants(subscriber, created)
    changes = []
    for purpose in customer_keys():
        event = own.get(purpose)
        if event is None and not stopped:
            changes.append((purpose, GRANT))
        elif event is None or event.action != GRANT:
            outcome.refused.append(purpose)
        elif event.basis == LawfulBasis.CUSTOMER and event.purchased_on < purchased_on:
            changes.append((purpose, GRANT))
        else:
            outcome.already_granted.append(purpose)
    evidence = replace(context.evidence, consent_text_version=CUSTOMER_TEXT_VERSION)
    customer = replace(
        context, basis=LawfulBasis.CUSTOMER, purchased_on=purchased_on, evidence=evidence
    )
    for event in _append(subscriber, changes, customer, now, ledger):
        (outcome.renewed if event.purpose in own else outcome.granted).append(event)
    return outcome


def _own_word(event: ConsentEvent, holder_since: datetime | None) -> bool:
    """Did the number's current holder say this (not the system, not a previous holder)?"""
    current = holder_since is None or event.created_at >= holder_since
    return current and event.source not in ENDED_BY_THE_SYSTEM


def end_customer_grants(
    subscriber_id: int, cutoff: date, context: ConsentContext, now: datetime
) -> list[ConsentEvent]:
    """Withdraw, as ``context`` says, each purpose whose latest event is a grant as a
    customer for a purchase before ``cutoff`` (no commit). Under the subscriber's row lock
    and on the ledger read under it, so a consent or a newer purchase recorded since a
    search is never withdrawn; the withdrawal keeps the basis and purchase it ends."""
    subscriber = _locked(Subscriber.id == subscriber_id)
    if subscriber is None:  # erased meanwhile
        return []
    latest = latest_events(subscriber.id)
    ended = [
        (purpose, WITHDRAW)
        for purpose, event in latest.items()
        if event.action == GRANT
        and event.basis == LawfulBasis.CUSTOMER
        and event.purchased_on < cutoff
    ]
    return _append(subscriber, ended, context, now, latest)


def lock_subscriber(subscriber_id: int) -> Subscriber | None:
    """Load and lock the subscriber, fresh from the database (None: erased meanwhile)."""
    return _locked(Subscriber.id == subscriber_id)


def grant_in_force(subscriber_id: int, purpose: str) -> ConsentEvent | None:
    """The grant of ``purpose`` in force, if any (read it under the subscriber's lock when
    acting on it)."""
    event = latest_events(subscriber_id).get(purpose)
    return event if event is not None and event.action == GRANT else None


def _locked(condition) -> Subscriber | None:
    """Load and lock (FOR UPDATE on PostgreSQL) the subscriber matching ``condition``."""
    return db.session.execute(
        select(Subscriber)
        .where(condition)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def set_consent(
    subscriber_id: int,
    purposes: Iterable[str],
    granted: bool,
    context: ConsentContext,
    now: datetime,
) -> list[ConsentEvent]:
    """Grant or withdraw each of ``purposes`` (see ``set_choices``)."""
    return set_choices(subscriber_id, dict.fromkeys(purposes, granted), context, now)


def set_choices(
    subscriber_id: int, choices: Mapping[str, bool], context: ConsentContext, now: datetime
) -> list[ConsentEvent]:
    """Record each changed choice as an event (no commit); unchanged ones record nothing.

    Returns the events written, so a double submit or a repeated STOP is a no-op.
    """
    return _change(subscriber_id, lambda state: choices, context, now)


def withdraw_all(subscriber_id: int, context: ConsentContext, now: datetime) -> list[ConsentEvent]:
    """Stop all marketing at once (one tap from the link, STOP by SMS): every grant in force
    when the subscriber's lock is taken, so a grant committed just before is stopped too."""
    return _change(
        subscriber_id, lambda state: {p: False for p, on in state.items() if on}, context, now
    )


def _change(
    subscriber_id: int,
    choose: Callable[[dict[str, bool]], Mapping[str, bool]],
    context: ConsentContext,
    now: datetime,
) -> list[ConsentEvent]:
    """Lock the subscriber, read the ledger once, record what ``choose`` changes (no commit:
    the caller's, which also releases the lock)."""
    subscriber = _locked(Subscriber.id == subscriber_id)
    if subscriber is None:
        return []
    latest = latest_events(subscriber.id)
    state = state_of(latest)
    changes = [
        (purpose, GRANT if granted else WITHDRAW)
        for purpose, granted in choose(state).items()
        if state.get(purpose, False) != granted
    ]
    return _append(subscriber, changes, context, now, latest)


def withdraw_grants_before(
    phone_e164: str, since: datetime, context: ConsentContext, now: datetime
) -> tuple[Subscriber | None, list[ConsentEvent]]:
    """The number passed to a new holder at ``since``: withdraw every grant in force given
    before then and change the link key, so the previous holder's links stop working.

    The subscriber's ``holder_since`` becomes ``since``, unless it names a later change
    already (a file listing an older change never moves it back).

    No commit: a whole register update is one transaction, the caller's.
    """
    subscriber = _locked(Subscriber.phone_e164 == phone_e164)
    if subscriber is None:
        return None, []
    if subscriber.holder_since is None or subscriber.holder_since < since:
        subscriber.holder_since = since
    latest = latest_events(subscriber.id)
    ended = [
        (purpose, WITHDRAW)
        for purpose, event in latest.items()
        if event.action == GRANT and event.created_at < since
    ]
    events = _append(subscriber, ended, context, now, latest)
    if events:
        subscriber.link_key = new_link_key()
    return subscriber, events


def latest_events(subscriber_id: int) -> dict[str, ConsentEvent]:
    """The last event for each purpose in the ledger: the state, with its proof."""
    latest: dict[str, ConsentEvent] = {}
    for event in db.session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber_id)
        .order_by(ConsentEvent.seq)
    ):
        latest[event.purpose] = event
    return latest


def state_of(latest: dict[str, ConsentEvent]) -> dict[str, bool]:
    """Each purpose's state given its last events (configured ones, and any other there)."""
    state = dict.fromkeys(configured_purposes(), False)
    for purpose, event in latest.items():
        state[purpose] = event.action == GRANT
    return state


def current_consent(subscriber_id: int) -> dict[str, bool]:
    """Each purpose's current state (configured ones, and any other the ledger holds)."""
    return state_of(latest_events(subscriber_id))


def any_granted(state: dict[str, bool]) -> bool:
    """True when any configured purpose is granted in ``state``."""
    return any(state[purpose] for purpose in configured_purposes())


def has_consent(subscriber_id: int, purpose: str) -> bool:
    """May this purpose's marketing go to the subscriber now? Every send asks this."""
    return current_consent(subscriber_id).get(purpose, False)


def is_subscribed(subscriber_id: int) -> bool:
    """True when any configured purpose is currently granted."""
    return any_granted(current_consent(subscriber_id))


def _append(
    subscriber: Subscriber,
    changes: Sequence[tuple[str, str]],
    context: ConsentContext,
    now: datetime,
    latest: dict[str, ConsentEvent] | None = None,
) -> list[ConsentEvent]:
    """Append ``changes`` (purpose, action) for a locked subscriber, in order, in one flush.

    ``latest`` is the ledger's last event per purpose read under the same lock (read here
    when not given): the next place in the order follows it, and a withdrawal keeps the
    basis of the grant it ends ("the customer refused").
    """
    if not changes:
        return []
    if latest is None:
        latest = latest_events(subscriber.id)
    seq = max((event.seq for event in latest.values()), default=0)
    events = []
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
            evidence["consent_text_version"] = CATALOGUE[purpose].text_version
        seq += 1
        events.append(
            ConsentEvent(
                subscriber_id=subscriber.id,
                seq=seq,
                purpose=purpose,
                action=action,
                source=context.source,
                actor=context.actor,
                created_at=now,
                basis=basis,
                purchased_on=purchased_on,
                **evidence,
            )
        )
    db.session.add_all(events)
    db.session.flush()
    for event in events:
        metrics.CONSENT_EVENTS.labels(event.action, context.source).inc()
    return events
