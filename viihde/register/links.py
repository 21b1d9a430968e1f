"""Preference links: the signed link every SMS carries, whose key the subscriber row holds.
Changing the key (``revoke_links``, a holder change) makes every link sent so far stop
working."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, select, update

from viihde.extensions import db
from viihde.models import ConsentState, Holding, SmsKind, Subscriber
from viihde.models.statements import read_once
from viihde.register.consent import lock_subscriber, new_link_key
from viihde.register.purposes import configured_keys
from viihde.sms import stage
from viihde.sms.texts import link_message, new_link_message
from viihde.tokens import preference_url, read_preference_token, secret_keys


def subscriber_for_token(token: str) -> Subscriber | None:
    """The subscriber a preference link names, if the link is genuine and not revoked."""

    def link_key_of(subscriber_id: int) -> str | None:
        return db.session.scalar(select(Subscriber.link_key).where(Subscriber.id == subscriber_id))

    subscriber_id = read_preference_token(token, secret_keys(), link_key_of)
    return db.session.get(Subscriber, subscriber_id) if subscriber_id is not None else None


def subscriber_for_link_key(
    subscriber_id: int, link_key: str, *, lock: bool = False
) -> Subscriber | None:
    """The subscriber, if ``link_key`` is still theirs (a revoked link's key is not).

    ``lock``: read it under its lock (``consent.lock_subscriber``), for a change about to be
    made: the change then takes no second look at the row."""
    if lock:
        subscriber = lock_subscriber(subscriber_id)
    else:
        subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.link_key != link_key:
        return None
    return subscriber


@dataclass(frozen=True)
class PurposeState:
    """What the preference page shows of one purpose."""

    granted: bool
    basis: str
    consent_text_version: str


@dataclass(frozen=True)
class PreferenceView:
    """The person a live link key opens, and each purpose's state in their holding."""

    subscriber_id: int
    phone_e164: str
    states: dict[str, PurposeState]

    @property
    def subscribed(self) -> bool:
        """Any configured purpose granted (the page offers stop-all then)."""
        return any(
            self.states[purpose].granted for purpose in configured_keys() if purpose in self.states
        )


def preference_view(subscriber_id: int, link_key: str) -> PreferenceView | None:
    """The preference page's data if ``link_key`` is still the subscriber's: one statement
    outside any transaction (the stored consent state, no fold, no identity map)."""
    rows = read_once(_view_statement(), {"subscriber_id": subscriber_id, "link_key": link_key})
    if not rows:
        return None
    states = {
        purpose: PurposeState(granted, basis, version)
        for _, purpose, granted, basis, version in rows
        if purpose is not None
    }
    return PreferenceView(subscriber_id, rows[0][0], states)


@cache
def _view_statement():
    """``preference_view``'s statement, built once."""
    return (
        select(
            Subscriber.phone_e164,
            ConsentState.purpose,
            ConsentState.granted,
            ConsentState.basis,
            ConsentState.consent_text_version,
        )
        .outerjoin(Holding, (Holding.subscriber_id == Subscriber.id) & Holding.ended_at.is_(None))
        .outerjoin(ConsentState, ConsentState.holding_id == Holding.id)
        .where(
            Subscriber.id == bindparam("subscriber_id"),
            Subscriber.link_key == bindparam("link_key"),
        )
    )


def revoke_links(subscriber_id: int, link_key: str, now: datetime) -> Subscriber | None:
    """Make every link sent so far stop working, and stage a fresh one by SMS (no commit).

    Only over ``link_key``, the key the asking browser holds: of twin requests (a double
    press, fifteen tabs) the first changes it and texts one link; the others find it
    changed and stage nothing (None).
    """
    changed = db.session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id, Subscriber.link_key == link_key)
        .values(link_key=new_link_key())
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
