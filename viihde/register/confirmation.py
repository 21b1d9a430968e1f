"""Checking a typed code: the right one confirms a sign-up (the number enters the
register, or its holder's holding gets the new consent) or a step-up.

A code dies after ``CODE_MAX_ATTEMPTS`` tries, and a number's wrong codes are capped per
day (``CODE_MAX_WRONG_PER_DAY``), however many codes it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cache

from flask import current_app
from sqlalchemy import Update, bindparam, select, update
from sqlalchemy.orm.attributes import set_committed_value

from viihde.extensions import db
from viihde.hashing import hashes_match
from viihde.models import (
    ConsentSource,
    SmsKind,
    SmsMessage,
    Subscriber,
    Verification,
    VerificationKind,
)
from viihde.models.statements import run, serialise
from viihde.ops import metrics
from viihde.register import consent
from viihde.register.codes import code_hash, wrong_codes_today
from viihde.sms import stage
from viihde.sms.texts import sender_accepts_replies, welcome_message
from viihde.tokens import preference_url


class Outcome(StrEnum):
    CONFIRMED = "confirmed"
    WRONG = "wrong"
    EXPIRED = "expired"
    USED = "used"
    EXHAUSTED = "exhausted"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CheckResult:
    """What became of a code that was typed in."""

    outcome: Outcome
    attempts_left: int = 0
    subscriber_id: int | None = field(default=None)
    #: The subscriber a confirmed sign-up made, as it committed it: while the caller holds
    #: the result, looking the subscriber up by id in the session reads nothing again.
    subscriber: Subscriber | None = field(default=None, compare=False, repr=False)


def confirm_code(verification_id: int, code: str, now: datetime) -> CheckResult:
    """Check a typed code; the right one confirms a sign-up (staging the welcome SMS) or a
    step-up. Either way the result names the subscriber the number belongs to.

    No commit: the caller commits whatever the outcome (a wrong code's try counts), then
    sends what was staged (``sms.commit_then_send``).
    """
    max_attempts = current_app.config["CODE_MAX_ATTEMPTS"]
    verification = db.session.get(Verification, verification_id)
    if verification is None:
        return CheckResult(Outcome.UNKNOWN)
    if verification.consumed_at is not None:
        return CheckResult(Outcome.USED)
    if verification.attempts >= max_attempts:
        return CheckResult(Outcome.EXHAUSTED)
    if now >= verification.expires_at:
        return CheckResult(Outcome.EXPIRED)
    # Counting the number's wrong codes and taking a try are one step: twin guesses at
    # its live codes take turns on the number's lock (as sending a code to it does), so
    # together they never get past the day's cap.
    serialise("viihde.code:" + verification.phone_e164)
    if (
        wrong_codes_today(verification.phone_e164, now)
        >= current_app.config["CODE_MAX_WRONG_PER_DAY"]
    ):
        return CheckResult(Outcome.EXHAUSTED)  # the number's guessing pause: nothing is checked
    # A try is taken whatever the code, and only while one is left (the UPDATE's condition),
    # so twin guesses cannot exceed the limit: a guess learns whether it was right only when
    # its try was taken. The right code takes its try and is used up in the same UPDATE;
    # the row as the try left it comes back with it (RETURNING), no second read.
    right = hashes_match(verification.code_hash, code_hash(verification.phone_e164, code))
    statement = _statements().claim if right else _statements().take
    parameters = {"v_id": verification_id, "max_attempts": max_attempts, "now": now}
    taken = run(statement, parameters).one_or_none()
    if taken is None:  # a twin request confirmed it, took its last try or replaced it
        db.session.refresh(verification)
        if verification.consumed_at is not None:
            return CheckResult(Outcome.USED)
        if verification.attempts >= max_attempts:
            return CheckResult(Outcome.EXHAUSTED)
        return CheckResult(Outcome.EXPIRED)
    (attempts,) = taken
    set_committed_value(verification, "attempts", attempts)
    if not right:
        left = max_attempts - attempts
        return CheckResult(Outcome.WRONG if left > 0 else Outcome.EXHAUSTED, left)
    set_committed_value(verification, "consumed_at", now)
    return _confirm(verification, now)


def _attach(verification: Verification, holding_id: int) -> None:
    """The code that confirmed a sign-up, and its SMS, belong to the holding it opened (or
    joined): they were written while nobody in the register may have held the number."""
    for table, row_id in (
        (Verification.__table__, verification.id),
        (SmsMessage.__table__, verification.sms_message_id),
    ):
        if row_id is not None:
            run(_statements().attach[table.name], {"row_id": row_id, "holding": holding_id})
    if verification.holding_id is None:
        set_committed_value(verification, "holding_id", holding_id)


@dataclass(frozen=True)
class _Statements:
    """The confirmation's UPDATEs, built once (Core, run in the session's transaction by
    ``statements.run``)."""

    #: A wrong code's try.
    take: Update
    #: The right code's try, using the code up.
    claim: Update
    attach: dict[str, Update]


@cache
def _statements() -> _Statements:
    codes, messages = Verification.__table__, SmsMessage.__table__
    a_try_left = (
        codes.c.id == bindparam("v_id"),
        codes.c.consumed_at.is_(None),
        codes.c.attempts < bindparam("max_attempts"),
        # Still live as the lock finds it: a resend (under the same lock) ends the old
        # code's life after this request had read it.
        codes.c.expires_at > bindparam("now"),
    )
    take = update(codes).where(*a_try_left).values(attempts=codes.c.attempts + 1)
    return _Statements(
        take=take.returning(codes.c.attempts),
        claim=take.values(consumed_at=bindparam("now")).returning(codes.c.attempts),
        attach={
            table.name: update(table)
            .where(table.c.id == bindparam("row_id"), table.c.holding_id.is_(None))
            .values(holding_id=bindparam("holding"))
            for table in (codes, messages)
        },
    )


def _confirm(verification: Verification, now: datetime) -> CheckResult:
    """The right code, its try taken and the code used up: the step-up's subscriber, or
    the sign-up (the subscriber and its grants, the welcome SMS staged)."""
    metrics.CODES_CONFIRMED.inc()
    if verification.kind == VerificationKind.STEP_UP:
        subscriber_id = db.session.scalar(
            select(Subscriber.id).where(Subscriber.phone_e164 == verification.phone_e164)
        )
        return CheckResult(Outcome.CONFIRMED, subscriber_id=subscriber_id)
    context = consent.ConsentContext(
        ConsentSource.SIGNUP, evidence=consent.Evidence.of(verification)
    )
    subscriber, holding_id = consent.signup(
        verification.phone_e164,
        verification.purposes.split(","),
        context,
        now,
        language=verification.language,
    )
    _attach(verification, holding_id)
    body = welcome_message(
        preference_url(subscriber.id, subscriber.link_key),
        subscriber.language,
        replies_reach_us=sender_accepts_replies(current_app.config["TWILIO_FROM"]),
    )
    # The welcome SMS row is part of the sign-up's transaction; it goes out after the commit.
    stage(subscriber.phone_e164, body, SmsKind.WELCOME, now, subscriber_id=subscriber.id)
    return CheckResult(Outcome.CONFIRMED, subscriber_id=subscriber.id, subscriber=subscriber)
