"""One-time codes as a domain: generation, keyed hashes, binding and limits."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from viihde import hashing
from viihde.extensions import db
from viihde.models import Verification
from viihde.register.codes import (
    CodeRefused,
    Refusal,
    SignupDetails,
    code_hash,
    generate_code,
    request_code,
    resend_code,
)
from viihde.register.confirmation import Outcome, confirm_code
from viihde.register.consent import Evidence
from viihde.sms import commit_then_send

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PHONE = "+358401234567"


@pytest.fixture
def fixed_code(monkeypatch) -> str:
    monkeypatch.setattr("viihde.register.codes.generate_code", lambda: "042424")
    return "042424"


@pytest.mark.parametrize("config_overrides", [{}, {"CODE_DIGITS": 8}])
def test_codes_are_code_digits_long_with_leading_zeros_kept(app_context, app):
    """Every code is exactly CODE_DIGITS digits (six)."""
    codes = [generate_code() for _ in range(2000)]
    digits = app.config["CODE_DIGITS"]
    assert all(len(code) == digits and code.isdigit() for code in codes)


def test_code_digits_are_uniform(app_context, app):
    """Each digit position is spread evenly over 0-9 (a loose chi-squared bound)."""
    codes = [generate_code() for _ in range(20000)]
    for position in range(app.config["CODE_DIGITS"]):
        counts = Counter(code[position] for code in codes)
        expected = len(codes) / 10
        chi2 = sum((counts[str(d)] - expected) ** 2 / expected for d in range(10))
        assert chi2 < 40, (position, counts)  # p < 1e-5 for 9 degrees of freedom


def test_code_hash_is_keyed_and_bound_to_the_number(app_context, app):
    """Another number or another key gives another hash; the code is not in it."""
    assert code_hash(PHONE, "042424") != code_hash("+358501234567", "042424")
    first = code_hash(PHONE, "042424")
    app.config["HASH_KEY"] = "another-hash-key"
    assert code_hash(PHONE, "042424") != first
    assert "042424" not in first


def test_codes_are_compared_in_constant_time(app_context, fixed_code, monkeypatch):
    """The comparison goes through hmac.compare_digest."""
    calls = []
    real = hashing.hmac.compare_digest
    monkeypatch.setattr(hashing.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    verification = request_code(PHONE, SignupDetails(), NOW)
    commit_then_send(NOW)
    confirm_code(verification.id, "000000", NOW)
    commit_then_send(NOW)
    assert calls


def test_right_code_confirms_once_then_reads_as_used(app_context, fixed_code):
    """A code works once."""
    verification = request_code(PHONE, SignupDetails(), NOW)
    commit_then_send(NOW)
    assert confirm_code(verification.id, fixed_code, NOW).outcome == Outcome.CONFIRMED
    assert confirm_code(verification.id, fixed_code, NOW).outcome == Outcome.USED


def test_fifth_try_may_be_right_but_five_wrong_kill_the_code(app_context, fixed_code):
    """Four wrong, then right: confirmed. Five wrong: exhausted, even for the right code."""
    first = request_code(PHONE, SignupDetails(), NOW)
    commit_then_send(NOW)
    results = [confirm_code(first.id, "111111", NOW) for _ in range(4)]
    commit_then_send(NOW)
    assert [r.attempts_left for r in results] == [4, 3, 2, 1]
    assert confirm_code(first.id, fixed_code, NOW).outcome == Outcome.CONFIRMED

    second = request_code("+358501234567", SignupDetails(), NOW)
    commit_then_send(NOW)
    outcomes = [confirm_code(second.id, "111111", NOW).outcome for _ in range(5)]
    commit_then_send(NOW)
    assert outcomes[-1] == Outcome.EXHAUSTED
    assert confirm_code(second.id, fixed_code, NOW).outcome == Outcome.EXHAUSTED


def test_expired_code_is_refused(app_context, app, fixed_code):
    """CODE_TTL_SECONDS (ten minutes) after sending, the code reads as expired."""
    verification = request_code(PHONE, SignupDetails(), NOW)
    commit_then_send(NOW)
    later = NOW + timedelta(seconds=app.config["CODE_TTL_SECONDS"])
    assert confirm_code(verification.id, fixed_code, later).outcome == Outcome.EXPIRED


def test_unknown_verification_is_reported_as_such(app_context):
    """A stale session pointing at nothing is not an error."""
    assert confirm_code(424242, "123456", NOW).outcome == Outcome.UNKNOWN


def test_throttle_tells_when_to_come_back(app_context, fixed_code):
    """Too soon: the seconds to wait; over the hourly cap: until the oldest ages out."""
    request_code(PHONE, SignupDetails(), NOW)
    commit_then_send(NOW)
    with pytest.raises(CodeRefused) as too_soon:
        request_code(PHONE, SignupDetails(), NOW + timedelta(seconds=20))
        commit_then_send(NOW)
    assert (too_soon.value.reason, too_soon.value.retry_after) == (Refusal.TOO_SOON, 40)
    request_code(PHONE, SignupDetails(), NOW + timedelta(minutes=1))
    commit_then_send(NOW)
    request_code(PHONE, SignupDetails(), NOW + timedelta(minutes=2))
    commit_then_send(NOW)
    with pytest.raises(CodeRefused) as hourly:
        request_code(PHONE, SignupDetails(), NOW + timedelta(minutes=3))
        commit_then_send(NOW)
    assert hourly.value.reason == Refusal.HOURLY_LIMIT
    assert hourly.value.retry_after == 57 * 60


def test_resend_keeps_the_campaign_and_expires_the_old_code(app_context, fixed_code):
    """The new code carries the same consent details; the old one stops working."""
    details = SignupDetails(language="sv", evidence=Evidence(utm_campaign="talvi"))
    old = request_code(PHONE, details, NOW)
    commit_then_send(NOW)
    new = resend_code(old.id, NOW + timedelta(seconds=61))
    commit_then_send(NOW)
    assert (new.utm_campaign, new.language) == ("talvi", "sv")
    later = NOW + timedelta(seconds=62)
    assert confirm_code(old.id, fixed_code, later).outcome == Outcome.EXPIRED
    assert confirm_code(new.id, fixed_code, later).outcome == Outcome.CONFIRMED


def test_a_code_replaced_after_it_was_read_is_not_confirmed(app_context, fixed_code):
    """A resend ends the old code's life under the number's lock; a confirmation that had
    read the old code before (a request racing the resend) finds it dead when it takes its
    try: expired, not confirmed, and no try taken."""
    from sqlalchemy.orm.attributes import set_committed_value

    old = request_code(PHONE, SignupDetails(), NOW)
    commit_then_send(NOW)
    resend_code(old.id, NOW + timedelta(seconds=61))
    commit_then_send(NOW)
    stale = db.session.get(Verification, old.id)
    set_committed_value(stale, "expires_at", NOW + timedelta(minutes=10))  # as read before
    result = confirm_code(old.id, fixed_code, NOW + timedelta(seconds=62))
    assert result.outcome == Outcome.EXPIRED
    assert db.session.scalar(select(Verification.attempts).where(Verification.id == old.id)) == 0


def test_only_hashes_are_stored(app_context, fixed_code):
    """The verification row has the keyed hash, never the code."""
    request_code(PHONE, SignupDetails(), NOW)
    commit_then_send(NOW)
    stored = db.session.scalar(select(Verification))
    assert stored.code_hash == code_hash(PHONE, fixed_code)
    assert fixed_code not in str(vars(stored))
