"""One-time codes: issue, throttle and resend them (``confirmation`` checks them).

A code is ``CODE_DIGITS`` digits from ``secrets``, stored only as a keyed hash, valid for
``CODE_TTL_SECONDS``, dead after ``CODE_MAX_ATTEMPTS`` tries, and usable once.
A number gets a new code only ``CODE_RESEND_INTERVAL_SECONDS`` after the last
and at most ``CODE_MAX_PER_HOUR`` an hour, however it is asked for.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache, reduce
from typing import Any

from flask import current_app
from sqlalchemy import Insert, Select, bindparam, func, select, true, update
from sqlalchemy.orm import aliased

from viihde.extensions import db
from viihde.hashing import keyed_hash
from viihde.models import (
    SmsKind,
    SmsMessage,
    Verification,
    VerificationKind,
    open_holding_of,
)
from viihde.models.statements import (
    get,
    insert_rows,
    read_once,
    returning_insert,
    run,
    serialise,
)
from viihde.ops import metrics
from viihde.register import consent, purposes
from viihde.register.budget import (
    Holdback,
    HoldbackCounts,
    log_pause,
    number_range,
    origin_of,
    pause_of,
    sent_counts,
)
from viihde.register.notices import SIGNUP_TEXT_VERSION
from viihde.sms import stage
from viihde.sms.delivery import number_cannot_receive
from viihde.sms.texts import code_message


def _signup_evidence() -> consent.Evidence:
    return consent.Evidence(consent_text_version=SIGNUP_TEXT_VERSION)


@dataclass(frozen=True)
class SignupDetails:
    """What a visitor gave with their number: the consent to confirm and its evidence."""

    #: The purposes consented to; empty means every configured purpose.
    purposes: tuple[str, ...] = ()
    language: str = "fi"
    evidence: consent.Evidence = field(default_factory=_signup_evidence)


class Refusal(StrEnum):
    TOO_SOON = "too_soon"
    HOURLY_LIMIT = "hourly_limit"
    SEND_FAILED = "send_failed"
    NUMBER_REFUSED = "number_refused"  # the provider says the number cannot receive texts
    PAUSED = "paused"  # a money budget is spent: nobody gets a code for a while
    HELD_BACK = "held_back"  # this network or number range confirms too few codes
    GUESSING = "guessing"  # too many wrong codes for this number today


@dataclass
class CodeRefused(Exception):
    """No code was sent; ``retry_after`` says in how many seconds one may be."""

    reason: Refusal
    retry_after: int = 0


def generate_code() -> str:
    """``CODE_DIGITS`` digits from the ``secrets`` module, leading zeros kept."""
    digits = current_app.config["CODE_DIGITS"]
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def code_hash(phone_e164: str, code: str) -> str:
    """The keyed hash stored in place of a code, bound to its number."""
    return keyed_hash("code", f"{phone_e164}:{code}")


def request_code(
    phone_e164: str, details: SignupDetails, now: datetime, pending_id: int | None = None
) -> Verification:
    """Issue a code for the number and stage its SMS, or raise CodeRefused. No commit: the
    caller commits, sends the staged SMS (``sms.commit_then_send``) and then settles the
    code with ``after_sending``.

    ``pending_id`` is the browser's own pending verification: when it is for the
    same number and its code was sent moments ago (a double submit, a second
    tab), it is returned as it is and nothing is staged.
    """
    return _send_code(phone_e164, VerificationKind.SIGNUP, details, now, pending_id)


def request_step_up_code(
    phone_e164: str, language: str, now: datetime, pending_id: int | None = None
) -> Verification:
    """Issue (and stage) a code that proves the holder of the number is at this browser
    now, as ``request_code`` does."""
    details = SignupDetails(language=language, evidence=consent.Evidence())
    return _send_code(phone_e164, VerificationKind.STEP_UP, details, now, pending_id)


def _send_code(
    phone_e164: str,
    kind: VerificationKind,
    details: SignupDetails,
    now: datetime,
    pending_id: int | None,
) -> Verification:
    pending = _recent_pending(pending_id, phone_e164, kind, now)
    if pending is not None:
        return pending
    values, code = _issue_code(phone_e164, kind, details, now)
    config = current_app.config
    body = code_message(
        code, config["CODE_TTL_SECONDS"], config["PUBLIC_BASE_URL"], values["language"]
    )
    # The code's SMS row first (its id), then the code pointing at it: one Core INSERT
    # each, in the caller's transaction, under the number's lock that ``_issue_code`` took.
    values["sms_message_id"] = stage(phone_e164, body, SmsKind.CODE, now, secret=code).message_id
    return insert_rows(Verification, [values], _verification_insert())[0]


@cache
def _verification_insert() -> Insert:
    """The code's INSERT, built once: the number's holding looked up in the statement
    (``holder_phone``; None until the number is in the register), every column back."""
    return returning_insert(Verification).values(
        holding_id=open_holding_of(bindparam("holder_phone"))
    )


def after_sending(verification: Verification, status: str | None) -> None:
    """Settle a code whose SMS the caller committed and sent (``status`` is what sending
    made of it; None: nothing was staged). Counted when it went; when it could not go
    (sent inline and refused), its verification is removed (it must not count against
    the visitor's next try) and so is its SMS row when the number cannot receive texts,
    staged for the caller to commit, and CodeRefused says why."""
    if status is None:
        return
    if status != "failed":
        metrics.CODES_SENT.inc()
        return
    refusal = code_not_delivered(verification) or Refusal.SEND_FAILED
    message = db.session.get(SmsMessage, verification.sms_message_id)
    db.session.delete(verification)
    if refusal == Refusal.NUMBER_REFUSED and message is not None:
        # The number's own problem, not an outage: nothing of it is kept (the provider
        # refused it outright, so the message cost nothing a budget should count).
        db.session.delete(message)
    raise CodeRefused(refusal)


def code_not_delivered(verification: Verification) -> Refusal | None:
    """Why the SMS with this verification's code failed (after the page was shown, when
    queued): NUMBER_REFUSED when the number cannot receive texts, else SEND_FAILED; None
    while it has not failed."""
    if verification.sms_message_id is None:
        return None
    return _not_delivered(db.session.get(SmsMessage, verification.sms_message_id))


def _not_delivered(message: SmsMessage | None) -> Refusal | None:
    if message is None or message.status not in ("failed", "undelivered"):
        return None
    return Refusal.NUMBER_REFUSED if number_cannot_receive(message) else Refusal.SEND_FAILED


@dataclass(frozen=True)
class CodePage:
    """A pending verification as the page that asks for its code shows it."""

    phone_e164: str
    kind: str
    created_at: datetime
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    #: Why the SMS with the code failed, if it did (``code_not_delivered``).
    undelivered: Refusal | None


def code_page(verification_id: int | None) -> CodePage | None:
    """The browser's verification as its code page shows it, if it still exists: the
    verification and the SMS that carries its code in one statement outside any
    transaction (``read_once``: no BEGIN or ROLLBACK, no objects; issue 18)."""
    if not verification_id:
        return None
    rows = read_once(_code_page_statement(), {"v_id": verification_id})
    if not rows:
        return None
    *shown, status, backend, error_code = rows[0]
    message = (
        SmsMessage(status=status, backend=backend, error_code=error_code)
        if status in ("failed", "undelivered")
        else None
    )
    return CodePage(*shown, undelivered=_not_delivered(message))


@cache
def _code_page_statement() -> Select:
    """``code_page``'s statement, built once."""
    code, message = Verification, SmsMessage
    return (
        select(
            code.phone_e164,
            code.kind,
            code.created_at,
            code.utm_source,
            code.utm_medium,
            code.utm_campaign,
            message.status,
            message.backend,
            message.error_code,
        )
        .outerjoin(message, message.id == code.sms_message_id)
        .where(code.id == bindparam("v_id"))
    )


def _recent_pending(
    pending_id: int | None, phone_e164: str, kind: VerificationKind, now: datetime
) -> Verification | None:
    if pending_id is None:
        return None
    pending = db.session.get(Verification, pending_id)
    interval = timedelta(seconds=current_app.config["CODE_RESEND_INTERVAL_SECONDS"])
    if (
        pending is not None
        and pending.phone_e164 == phone_e164
        and pending.kind == kind
        and pending.consumed_at is None
        and now < pending.created_at + interval
    ):
        return pending
    return None


def seconds_until_resend(verification: Verification | CodePage, now: datetime) -> int:
    """How long before a new code can be asked for (0: now)."""
    ready = verification.created_at + timedelta(
        seconds=current_app.config["CODE_RESEND_INTERVAL_SECONDS"]
    )
    return _seconds_until(ready, now) if now < ready else 0


def pending_verification(verification_id: int | None) -> Verification | None:
    """The browser's verification, if it still exists."""
    return get(Verification, verification_id) if verification_id else None


def resend_code(verification_id: int, now: datetime) -> Verification:
    """Issue (and stage) a fresh code for the same purpose; the old code stops working with
    the caller's commit (no commit here)."""
    old = db.session.get(Verification, verification_id)
    if old is None or old.consumed_at is not None:
        raise LookupError("no pending verification")
    details = SignupDetails(
        purposes=tuple(filter(None, old.purposes.split(","))),
        language=old.language,
        evidence=consent.Evidence.of(old),
    )
    new = _send_code(old.phone_e164, old.kind, details, now, None)
    db.session.execute(
        update(Verification)
        .where(Verification.id == old.id, Verification.consumed_at.is_(None))
        .values(expires_at=now)
    )
    return new


def _issue_code(
    phone_e164: str, kind: VerificationKind, details: SignupDetails, now: datetime
) -> tuple[dict[str, Any], str]:
    """Take the number's lock and check every limit, then make a code and its verification's
    values.

    The verification is not written here: the caller inserts it, with the id of the SMS
    that carries the code, in the transaction that holds the lock. A refusal raises
    CodeRefused; the caller's transaction (ended by its commit) releases the lock.
    """
    config = current_app.config
    serialise("viihde.code:" + phone_e164, plan_once=True)
    checks = _Checks(phone_e164, kind, details.evidence.ip, now)
    pause = pause_of(checks.sent)
    if pause is not None:
        log_pause(pause)
        raise CodeRefused(Refusal.PAUSED, _seconds_until(pause.until, now))
    holdback = checks.holdback_verdict(now)
    if holdback is not None:
        raise CodeRefused(Refusal.HELD_BACK, _seconds_until(holdback.until, now))
    history = checks.history
    if history.wrong_today >= config["CODE_MAX_WRONG_PER_DAY"]:
        raise CodeRefused(Refusal.GUESSING, 24 * 3600)
    interval = timedelta(seconds=config["CODE_RESEND_INTERVAL_SECONDS"])
    newest = history.newest_in_hour
    if newest is not None and now < newest + interval:
        raise CodeRefused(Refusal.TOO_SOON, _seconds_until(newest + interval, now))
    if history.in_hour >= config["CODE_MAX_PER_HOUR"]:
        raise CodeRefused(
            Refusal.HOURLY_LIMIT,
            _seconds_until(history.oldest_in_hour + timedelta(hours=1), now),
        )
    code = generate_code()
    network, wide_network = origin_of(details.evidence.ip)
    values = {
        "phone_e164": phone_e164,
        "holder_phone": phone_e164,  # whose the code is: ``_verification_insert``
        "kind": kind,
        "network": network,
        "wide_network": wide_network,
        "number_range": number_range(phone_e164),
        "code_hash": code_hash(phone_e164, code),
        "language": details.language,
        "purposes": ",".join(
            details.purposes
            or (purposes.configured_keys() if kind == VerificationKind.SIGNUP else ())
        ),
        "attempts": 0,
        "created_at": now,
        "expires_at": now + timedelta(seconds=config["CODE_TTL_SECONDS"]),
        **asdict(details.evidence),
    }
    return values, code


@dataclass(frozen=True)
class _CodeHistory:
    """A number's codes of the last 24 hours, counted in one query."""

    #: Wrong codes typed in the last 24 hours (right ones excluded).
    wrong_today: int
    #: Codes sent in the last hour, and the first and last of them.
    in_hour: int
    oldest_in_hour: datetime | None
    newest_in_hour: datetime | None


def _history_counts(phone_e164: str, now: datetime) -> tuple[Select, dict[str, Any]]:
    """One row: a number's codes of the last 24 hours (``_CodeHistory``'s fields); the
    statement is built once, these are its parameters."""
    parameters = {
        "history_phone": phone_e164,
        "history_hour_ago": now - timedelta(hours=1),
        "history_day_ago": now - timedelta(days=1),
    }
    return _history_statement(), parameters


@cache
def _history_statement() -> Select:
    code = aliased(Verification, name="v")  # short: see ``budget._sent_statement``
    in_hour = code.created_at > bindparam("history_hour_ago")
    return select(
        func.coalesce(func.sum(code.attempts), 0) - func.count(code.consumed_at),
        func.count().filter(in_hour),
        func.min(code.created_at).filter(in_hour),
        func.max(code.created_at).filter(in_hour),
    ).where(
        code.phone_e164 == bindparam("history_phone"),
        code.created_at > bindparam("history_day_ago"),
    )


class _Checks:
    """Everything a code about to be sent is checked against, read in ONE statement under
    the number's lock: the SMS budget (``budget.sent_counts``), a sign-up's holdback
    (``budget.HoldbackCounts``) and the number's own codes (``_history_counts``), each a
    one-row subquery side by side (the statement built once per shape)."""

    def __init__(self, phone_e164: str, kind: VerificationKind, ip: str | None, now: datetime):
        sent, sent_parameters = sent_counts(now)
        history, history_parameters = _history_counts(phone_e164, now)
        self._holdback = HoldbackCounts(ip, phone_e164, now)
        parts = [sent, history]
        if kind == VerificationKind.SIGNUP:  # step-up codes are never held back
            parts.append(self._holdback.query)
        statement, widths = _side_by_side(tuple(parts))
        parameters = sent_parameters | history_parameters | self._holdback.parameters
        row = run(statement, parameters).one()
        self.sent = row[: widths[0]]
        self.history = _CodeHistory(*row[widths[0] : widths[0] + widths[1]])
        self._holdback_row = row[widths[0] + widths[1] :]

    def holdback_verdict(self, now: datetime) -> Holdback | None:
        """A sign-up's holdback (None: not held back, or not a sign-up)."""
        if not self._holdback_row:
            return None
        return self._holdback.verdict(self._holdback_row, now)


@cache
def _side_by_side(parts: tuple[Select, ...]) -> tuple[Select, list[int]]:
    """One-row queries as one statement (a cross join of their subqueries), and the
    number of columns each gives."""
    subqueries = [part.subquery() for part in parts]
    joined = reduce(lambda left, right: left.join(right, true()), subqueries)
    columns = [column for subquery in subqueries for column in subquery.c]
    return select(*columns).select_from(joined), [len(subquery.c) for subquery in subqueries]


def _code_history(phone_e164: str, now: datetime) -> _CodeHistory:
    return _CodeHistory(*run(*_history_counts(phone_e164, now)).one())


def wrong_codes_today(phone_e164: str, now: datetime) -> int:
    """Wrong codes typed for this number in the last 24 hours (right ones excluded)."""
    return _code_history(phone_e164, now).wrong_today


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds() + 0.999))
