"""Twin requests at the same moment never lose or duplicate a consent event.

Each test races real threads (each with its own app context, session and
database connection) through a barrier, on SQLite and, in CI, PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import pairwise

from sqlalchemy import func, select

from viihde.extensions import db
from viihde.models import ConsentEvent, Subscriber, Verification
from viihde.register import consent
from viihde.register.codes import SignupDetails, code_hash, request_code
from viihde.register.confirmation import Outcome, confirm_code
from viihde.sms import commit_then_send

from .helpers import race

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ROUNDS = 8
PURPOSES = ("offers", "new_content", "competitions")


def issue(app, phone: str, now: datetime, monkeypatch) -> tuple[int, str]:
    """Send a code to ``phone`` and return the verification id and the code."""
    codes = iter(["123456", "234567", "345678"])
    monkeypatch.setattr("viihde.register.codes.generate_code", lambda: next(codes))
    with app.app_context():
        verification = request_code(phone, SignupDetails(), now)
        commit_then_send(NOW)
        assert verification.code_hash == code_hash(phone, "123456")
        return verification.id, "123456"


def ledger(app, phone: str) -> list[ConsentEvent]:
    with app.app_context():
        subscriber = db.session.scalar(select(Subscriber).where(Subscriber.phone_e164 == phone))
        return list(subscriber.consent_events) if subscriber else []


def subscribers(app, phone: str) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(Subscriber).where(Subscriber.phone_e164 == phone)
        )


def test_the_same_code_confirmed_twice_at_once_gives_one_subscriber_and_one_event(app, monkeypatch):
    """Double submit: one CONFIRMED, one USED, one subscriber, one grant."""
    for round_ in range(ROUNDS):
        phone = f"+35840123{round_:04d}"
        verification_id, code = issue(app, phone, NOW, monkeypatch)
        results = race(
            partial(confirm_code, verification_id, code, NOW),
            partial(confirm_code, verification_id, code, NOW),
            app=app,
        )
        outcomes = [result.outcome for result in results]
        assert Counter(outcomes) == Counter({Outcome.CONFIRMED: 1, Outcome.USED: 1})
        assert subscribers(app, phone) == 1
        assert len(ledger(app, phone)) == 3  # one grant per offered purpose


def test_two_tabs_confirming_two_codes_for_one_number_make_one_subscriber(app, monkeypatch):
    """Two verifications of one number confirmed together: one subscriber, ordered events."""
    for round_ in range(ROUNDS):
        phone = f"+35850123{round_:04d}"
        first, code = issue(app, phone, NOW, monkeypatch)
        second, _ = issue(app, phone, NOW + timedelta(seconds=61), monkeypatch)
        later = NOW + timedelta(seconds=62)
        results = race(
            partial(confirm_code, first, code, later),
            partial(confirm_code, second, code, later),
            app=app,
        )
        outcomes = [result.outcome for result in results]
        assert outcomes == [Outcome.CONFIRMED, Outcome.CONFIRMED]
        assert subscribers(app, phone) == 1
        events = ledger(app, phone)
        assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
        assert {e.action for e in events} == {"grant"}


def test_stop_racing_an_opt_in_loses_nothing(app):
    """STOP and 'subscribe again' at once: both are recorded in order, state = last event."""
    phone = "+358401119999"
    with app.app_context():
        subscriber_id = consent.subscribe(
            phone, PURPOSES, consent.ConsentContext(source="signup"), NOW
        ).id
        db.session.commit()
        consent.withdraw_all(subscriber_id, consent.ConsentContext(source="preference_page"), NOW)
        db.session.commit()
    stop = consent.ConsentContext(source="sms_keyword")
    opt_in = consent.ConsentContext(source="preference_page")
    for _ in range(ROUNDS):
        race(
            partial(consent.set_consent, subscriber_id, PURPOSES, True, opt_in, NOW),
            partial(consent.withdraw_all, subscriber_id, stop, NOW),
            app=app,
        )
        events = ledger(app, phone)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        for purpose in PURPOSES:
            actions = [e.action for e in events if e.purpose == purpose]
            assert all(a != b for a, b in pairwise(actions))
        with app.app_context():
            assert consent.is_subscribed(subscriber_id) == (events[-1].action == "grant")


def test_parallel_guesses_never_exceed_five_tries(app, monkeypatch):
    """Ten wrong guesses at once: five are evaluated, the code is dead, the right one fails."""
    verification_id, code = issue(app, "+358401112222", NOW, monkeypatch)
    guesses = [partial(confirm_code, verification_id, f"{n:06d}", NOW) for n in range(10)]
    outcomes = Counter(result.outcome for result in race(*guesses, app=app))
    assert outcomes[Outcome.WRONG] + outcomes[Outcome.EXHAUSTED] == 10
    with app.app_context():
        assert db.session.get(Verification, verification_id).attempts == 5
    with app.app_context():
        assert confirm_code(verification_id, code, NOW).outcome == Outcome.EXHAUSTED


def test_the_right_code_among_parallel_guesses_gets_a_verdict_only_with_a_try(app, monkeypatch):
    """Nine wrong guesses and the right code at once: at most five get a verdict (wrong, or
    confirmed), the right one only if its try was among the five; it is used up exactly
    when it was confirmed."""
    verification_id, code = issue(app, "+358401113333", NOW, monkeypatch)
    guesses = [partial(confirm_code, verification_id, f"{n:06d}", NOW) for n in range(9)]
    guesses.insert(4, partial(confirm_code, verification_id, code, NOW))
    outcomes = Counter(result.outcome for result in race(*guesses, app=app))
    assert outcomes[Outcome.WRONG] + outcomes[Outcome.CONFIRMED] <= 5
    assert outcomes[Outcome.CONFIRMED] <= 1 and sum(outcomes.values()) == 10
    with app.app_context():
        verification = db.session.get(Verification, verification_id)
        assert verification.attempts <= 5
        assert (verification.consumed_at is not None) == (outcomes[Outcome.CONFIRMED] == 1)


def test_parallel_guesses_at_three_live_codes_stay_within_the_days_cap(app, monkeypatch):
    """Eighteen wrong guesses at once, six at each of a number's three live codes: the
    wrong codes checked never exceed the number's cap of ten a day."""
    phone = "+358401239999"
    monkeypatch.setattr("viihde.register.codes.generate_code", lambda: "123456")
    ids = []
    with app.app_context():
        for n in range(3):
            ids.append(request_code(phone, SignupDetails(), NOW + timedelta(seconds=61 * n)).id)
            commit_then_send(NOW)
    later = NOW + timedelta(seconds=200)
    guesses = [partial(confirm_code, ids[n % 3], "654321", later) for n in range(18)]
    outcomes = Counter(result.outcome for result in race(*guesses, app=app))
    with app.app_context():
        tries = db.session.scalar(
            select(func.sum(Verification.attempts)).where(Verification.phone_e164 == phone)
        )
    assert tries <= app.config["CODE_MAX_WRONG_PER_DAY"]
    assert outcomes[Outcome.WRONG] + outcomes[Outcome.EXHAUSTED] == 18
    assert sum(1 for o in outcomes.elements() if o == Outcome.WRONG) <= tries
