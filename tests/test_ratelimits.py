"""Rate limits cost nothing where none applies, and in Redis one round trip to test all of
a request's limits and one more to count them when an SMS went."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from redis import Redis
from redis.connection import Connection

from viihde.sms import queue as sms_queue
from viihde.web import ratelimits

from .helpers import Visitor, form_fields, race, slow_code_sending

LIMITED_VIEWS = {
    "signup.submit",
    "signup.resend",
    "preferences.send_code",
    "staff.login",
    "staff.login_totp",
    "staff.enrol_totp",
    "staff.test_send_campaign",
    "staff.home",
    "staff.card",
    "staff.withdraw",
    "staff.erase",
    "staff.export_json",
    "staff.export_page",
    "api.audience_page",
}


@pytest.fixture
def config_overrides(redis_url) -> dict:
    Redis.from_url(redis_url).flushdb()
    return {"RATELIMIT_STORAGE_URI": redis_url, "SMS_LIMIT_PER_IP": "2 per hour"}


@contextmanager
def redis_round_trips() -> Iterator[list[bytes]]:
    """Every command or pipeline sent to Redis meanwhile, one entry per round trip."""
    sent: list[bytes] = []
    send = Connection.send_packed_command

    def counted(connection, command, check_health=True):
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        return send(connection, command, check_health)

    Connection.send_packed_command = counted
    try:
        yield sent
    finally:
        Connection.send_packed_command = send


@pytest.fixture
def round_trips(app) -> Iterator[list[bytes]]:
    """Round trips from now on (the pooled connection's handshake done before)."""
    with app.app_context():
        ratelimits.limits().redis.ping()
    with redis_round_trips() as sent:
        yield sent


@pytest.mark.parametrize("config_overrides", [{}])
def test_only_the_views_that_send_sms_or_guard_a_sign_in_carry_limits(app, monkeypatch):
    """Every other page does no rate-limit work at all (the staff look-up counts each
    staff member's searches): with the counters broken, the
    landing page, the privacy notice, the code page and a webhook still answer."""
    carried = {
        endpoint
        for endpoint, view in app.view_functions.items()
        if getattr(view, "rate_limits", None)
    }
    assert carried == LIMITED_VIEWS

    def broken(*args, **kwargs):
        raise AssertionError("rate-limit work on a page without limits")

    monkeypatch.setattr(ratelimits.Limits, "reserve", broken)
    monkeypatch.setattr(ratelimits.Limits, "release", broken)
    client = app.test_client()
    for path in ("/", "/privacy", "/code", "/welcome", "/healthz"):
        assert client.get(path).status_code in (200, 302, 404)


def test_a_code_sent_costs_one_round_trip_and_a_refusal_two(app, outbox, round_trips):
    """Five limits (per client, number, block, country, overall; the number's in two
    windows, six counters): one script before the view tests each and takes the try in
    all of them at once; a request that sent nothing gives its try back in one more."""
    visitor = Visitor(app.test_client(), outbox)
    assert visitor.submit_number("040 123 4567").status_code == 302
    assert len(round_trips) == 1
    (reserved,) = round_trips
    assert reserved.count(b"EVAL") == 1 and reserved.count(b"viihde:limit:") == 6

    round_trips.clear()
    assert visitor.submit_number("09 123 4567").status_code == 400  # a landline: none sent
    assert len(round_trips) == 2  # taken, and given back
    assert [trip.count(b"viihde:limit:") for trip in round_trips] == [2, 2]  # client, everyone


def test_submits_arriving_together_stay_within_the_clients_limit(
    app, outbox, round_trips, monkeypatch
):
    """Twelve numbers from one address at the same instant, with a limit of two an hour:
    two codes, ten 429s. The test and the count are one step in Redis, so requests at
    once cannot all pass a test none of them has counted yet (before: twelve codes, on
    PostgreSQL; SQLite's one writer serialises the requests before their limits)."""

    def submit(n: int):
        return lambda: Visitor(app.test_client(), outbox).submit_number(f"040 123 45{n:02d}")

    slow_code_sending(monkeypatch)
    answers = race(*(submit(n) for n in range(12)), app=app)
    assert sorted(answer.status_code for answer in answers) == [302] * 2 + [429] * 10
    assert len(outbox.messages()) == 2


def test_the_counts_live_in_redis_and_a_limit_refuses_saying_when_to_try_again(
    app, outbox, round_trips, redis_url
):
    """Two codes from one client, then 429 with nothing sent and Retry-After (when the
    full window ends: one more round trip, on a refusal only); the counters are in Redis
    (every process shares them), numbers only as keyed hashes."""
    for number in ("040 123 4501", "040 123 4502"):
        client = app.test_client()
        assert Visitor(client, outbox).submit_number(number).status_code == 302
    round_trips.clear()
    refused = Visitor(app.test_client(), outbox).submit_number("040 123 4503")
    assert refused.status_code == 429
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600  # the hour's window
    assert len(round_trips) == 2 and b"TTL" in round_trips[1]
    assert len(outbox.messages()) == 2
    keys = [key.decode() for key in Redis.from_url(redis_url).keys("viihde:limit:*")]
    assert any("sms-ip/" in key for key in keys)
    assert not any("401234" in key for key in keys)


def test_a_sign_up_with_the_queue_costs_two_redis_round_trips(app, outbox, redis_url):
    """With the SMS queue on Redis too: the limits' one script, and the job handed on in
    one more (RQ writing into our pipeline; on its own it takes two), nothing else."""
    app.config["REDIS_URL"] = redis_url
    from viihde.sms import queue as sms_queue

    sms_queue.init_app(app)
    first = Visitor(app.test_client(), outbox)
    assert first.submit_number("040 123 4501").status_code == 302  # every connection made
    try:
        with redis_round_trips() as sent:
            response = Visitor(app.test_client(), outbox).submit_number("040 123 4502")
    finally:
        Redis.from_url(redis_url).flushdb()  # its two jobs are nobody else's to run
    assert response.status_code == 302
    names = [command.split(b"\r\n")[2] for command in sent]
    assert len(sent) == 2, names


def queue_on(app, redis_url) -> None:
    """The SMS queue on Redis from now on, with what a process does once already done: its
    connection made and the server's version known (RQ asks for it once per queue)."""
    app.config["REDIS_URL"] = redis_url
    sms_queue.init_app(app)
    with app.app_context():
        sms_queue.sms_queue().get_redis_server_version()


def test_confirming_a_code_costs_one_round_trip_the_welcome_sms_handed_on(app, outbox, redis_url):
    """/code carries no limits: the right code costs only the hand-off of the welcome SMS
    to the queue, one round trip (the code itself came inline, before the queue was on)."""
    visitor = Visitor(app.test_client(), outbox)
    assert visitor.submit_number("040 123 4567").status_code == 302
    queue_on(app, redis_url)
    page = visitor.client.get("/code")
    data = {**form_fields(page.text), "code": outbox.last_code()}
    try:
        with redis_round_trips() as sent:
            response = visitor.client.post("/code", data=data)
    finally:
        Redis.from_url(redis_url).flushdb()  # the welcome's job is nobody else's to run
    assert response.headers["Location"] == "/welcome"
    assert len(sent) == 1 and b"rq:job:sms-" in sent[0]  # the job, written in one pipeline
    assert len(outbox.messages()) == 1  # the welcome went to the queue, not out inline


def test_the_one_tap_unsubscribe_costs_no_redis_round_trip(app, outbox, redis_url):
    """Stop-all carries no limits and sends no SMS: with the limits and the queue both on
    Redis, pressing it makes no round trip to Redis at all."""
    visitor = Visitor(app.test_client(), outbox)
    assert visitor.sign_up("040 123 4567").headers["Location"] == "/welcome"
    queue_on(app, redis_url)
    page = visitor.client.get("/preferences")
    data = {**form_fields(page.text), "stop_all": "x"}
    with redis_round_trips() as sent:
        response = visitor.client.post("/preferences", data=data)
    assert response.headers["Location"] == "/preferences?saved=stopped"
    assert sent == []


def test_a_counters_window_starts_with_its_first_try(app, redis_url):
    """The reserving script adds one and starts the window only when there is none: a
    later try does not move its end (a fixed window, as the `limits` library keeps it); a
    try given back leaves the window where it was."""
    found = ratelimits.counters([ratelimits.Rule("5 per hour", "test", lambda: "someone")])
    redis = Redis.from_url(redis_url)
    with app.test_request_context():
        limits = ratelimits.limits()
        assert limits.reserve(found)
        (name,) = redis.keys("viihde:limit:*test*")
        assert 3590 < redis.ttl(name) <= 3600
        redis.expire(name, 100)  # the window has 100 seconds left
        assert limits.reserve(found)
        assert limits.reserve(found)
        limits.release(found)
    assert int(redis.get(name)) == 2
    assert 90 < redis.ttl(name) <= 100


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_STORAGE_URI": "memory://", "SMS_LIMIT_PER_IP": "2 per hour"}]
)
def test_in_process_counters_say_when_to_try_again_too(app, outbox):
    """Without Redis (or when it fails) the counters live in the process, and a refusal
    still says when the full window ends."""
    assert app.extensions[ratelimits.EXTENSION].redis is None
    for number in ("040 123 4501", "040 123 4502"):
        assert Visitor(app.test_client(), outbox).submit_number(number).status_code == 302
    refused = Visitor(app.test_client(), outbox).submit_number("040 123 4503")
    assert refused.status_code == 429
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600
    assert len(outbox.messages()) == 2


def test_a_full_counter_that_lost_its_end_gets_its_window_again(app, outbox, redis_url):
    """A counter whose EXPIRE was lost (its INCRBY kept) would refuse every try for ever:
    a refusal gives it its window again, and says so in Retry-After."""
    for number in ("040 123 4501", "040 123 4502"):
        assert Visitor(app.test_client(), outbox).submit_number(number).status_code == 302
    redis = Redis.from_url(redis_url)
    [full] = [key for key in redis.keys("viihde:limit:*") if b"sms-ip/" in key]
    redis.persist(full)
    refused = Visitor(app.test_client(), outbox).submit_number("040 123 4503")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "3600"
    assert 3500 < redis.ttl(full) <= 3600
