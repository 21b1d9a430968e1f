"""The customer-relationship basis: the company's own similar products marketed to its
buyers, until they refuse.

A buyer (``purchases`` imports them) gets a grant with the basis "customer" for each of
``CUSTOMER_PURPOSES`` they have no word on yet, refused by the one-tap link or STOP like
anyone's. The ledger's earlier word wins: a consent keeps its basis and a refusal stands.
A newer purchase renews a customer grant (a new grant with the new day); a purchase older
than ``CUSTOMER_RELATIONSHIP_MONTHS`` is no longer a relationship, and the daily purge
ends a grant resting on one (``lapse``, with the source "customer_relationship_ended").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import aliased

from viihde.clock import helsinki_day, months_before, start_of_day
from viihde.models import ConsentActor, ConsentEvent, ConsentSource, LawfulBasis, Subscriber
from viihde.register import consent, holdings, states
from viihde.register.consent import GRANT, WITHDRAW
from viihde.register.notices import CUSTOMER_TEXT_VERSION
from viihde.register.purposes import customer_keys

CONTEXT = consent.ConsentContext(ConsentSource.CUSTOMER_IMPORT, actor=ConsentActor.SYSTEM)
#: The withdrawal that ends a grant whose purchase has grown too old.
ENDED = consent.ConsentContext(ConsentSource.CUSTOMER_RELATIONSHIP_ENDED, actor=ConsentActor.SYSTEM)


@dataclass(frozen=True)
class CustomerGrants:
    """What ``grant_as_customer`` did for one buyer."""

    subscriber: Subscriber
    created: bool
    granted: list[states.RecordedEvent] = field(default_factory=list)
    #: Customer grants renewed: the purchase is newer than the one they rest on.
    renewed: list[states.RecordedEvent] = field(default_factory=list)
    #: Purposes left as they were: granted already (a consent keeps its basis) ...
    already_granted: list[str] = field(default_factory=list)
    #: ... or refused (withdrawn, or all marketing stopped).
    refused: list[str] = field(default_factory=list)
    #: The purchase was made before the number passed to its current holder: nothing.
    previous_holders: bool = False


def grant_as_customer(
    phone_e164: str,
    purchased_on: date,
    language: str,
    context: consent.ConsentContext,
    now: datetime,
) -> CustomerGrants:
    """Market the company's own similar products to a buyer, until they refuse (no commit).

    Each customer purpose the buyer has no word on yet gets a grant with basis
    "customer"; a customer grant resting on an older purchase is renewed; a consent
    keeps its basis and a refusal stands. Someone who stopped all marketing gets nothing
    new. Only the current holder's own word counts: withdrawals the system made (a
    lapsed relationship) are nobody's refusal, an earlier holding's events are another
    person's, and a purchase from before the current holder's time was someone else's.
    """
    subscriber, created = consent.enter(phone_e164, language, now)
    since = holdings.holder_since(subscriber.id)
    if since is not None and start_of_day(purchased_on) < since:
        return CustomerGrants(subscriber, created, previous_holders=True)
    ledger = consent.latest_events(subscriber.id)
    own = {purpose: e for purpose, e in ledger.items() if _own_word(e)}
    system_ended = max((e.seq for e in ledger.values() if not _own_word(e)), default=0)
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
    for event in consent.append(subscriber, changes, customer, now, ledger):
        (outcome.renewed if event.purpose in own else outcome.granted).append(event)
    return outcome


def _own_word(event: ConsentEvent) -> bool:
    """Did the holder say this (not the system)? Asked of the current holding's events."""
    return event.source not in consent.ENDED_BY_THE_SYSTEM


def relationship_cutoff(now: datetime, months: int) -> date:
    """The oldest purchase day that is still a relationship at ``now`` (a Helsinki day):
    ``months`` calendar months back, to the day. Anything earlier is too old."""
    return helsinki_day(months_before(now, months))


def lapsed_grants(cutoff: date) -> Select:
    """(subscriber_id, purpose) of every customer grant still in force whose purchase is
    before ``cutoff``: one query for the whole register.

    "Still in force": in an open holding, with no later event in it for the same purpose,
    a NOT EXISTS that the (holding_id, purpose, seq) index answers. ``lapse`` checks each
    again.
    """
    later = aliased(ConsentEvent)
    grants = holdings.open_only(select(ConsentEvent.subscriber_id, ConsentEvent.purpose))
    return grants.where(
        ConsentEvent.action == consent.GRANT,
        ConsentEvent.basis == LawfulBasis.CUSTOMER,
        ConsentEvent.purchased_on < cutoff,
        ~exists().where(
            later.holding_id == ConsentEvent.holding_id,
            later.purpose == ConsentEvent.purpose,
            later.seq > ConsentEvent.seq,
        ),
    )


def lapse(subscriber_id: int, cutoff: date, now: datetime) -> list[states.RecordedEvent]:
    """End the customer relationships of one subscriber that are over (no commit).

    Under the subscriber's row lock, each purpose whose latest event is a grant as a
    customer for a purchase before ``cutoff`` (``relationship_cutoff``) is withdrawn by
    the system, with the source "customer_relationship_ended"; the withdrawal keeps the
    basis and purchase of the grant it ends. The ledger is read again under the lock, so
    a consent or a newer purchase recorded since the search is never withdrawn.
    """
    subscriber = consent.lock_subscriber(subscriber_id)
    if subscriber is None:  # erased meanwhile
        return []
    latest = consent.latest_events(subscriber.id)
    ended = [
        (purpose, WITHDRAW)
        for purpose, event in latest.items()
        if event.action == GRANT
        and event.basis == LawfulBasis.CUSTOMER
        and event.purchased_on < cutoff
    ]
    return consent.append(subscriber, ended, ENDED, now, latest)
