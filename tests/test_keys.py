"""The register remembers the hash key its hashes are made with (``register.keys``): an
instance, a worker or a command under another HASH_KEY stops before it makes a hash that
matches nothing, or misses an erasure (an erased person would come back)."""

from __future__ import annotations

import re

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import RegisterKey, Subscriber, Tombstone
from viihde.register.keys import MISMATCH, fingerprint, hash_key_problem
from viihde.sms import queue as sms_queue

SCRAPER = {"Authorization": "Bearer scraper-token-123"}
ANOTHER_KEY = "another-hash-key-of-enough-length-0123456789"


def recorded(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(RegisterKey))


def test_the_first_check_records_the_key_and_later_ones_compare(app):
    """The first check (after migration 0019) records the fingerprint; the same key passes
    again and another fails; nothing of the key itself is stored."""
    with app.app_context():
        assert hash_key_problem(utcnow()) is None
        db.session.commit()
        assert hash_key_problem(utcnow()) is None
        stored = db.session.scalar(select(RegisterKey.fingerprint))
        assert stored == fingerprint() and re.fullmatch(r"[0-9a-f]{64}", stored)  # a digest
        assert (app.config["HASH_KEY"] or app.config["SECRET_KEY"]) not in stored
        app.config["HASH_KEY"] = ANOTHER_KEY
        assert hash_key_problem(utcnow()) == MISMATCH
    assert recorded(app) == 1


@pytest.mark.parametrize("config_overrides", [{"METRICS_TOKEN": "scraper-token-123"}])
def test_an_instance_under_another_hash_key_is_not_ready(app, client):
    assert client.get("/readyz").status_code == 200  # records the key
    app.config["HASH_KEY"] = ANOTHER_KEY
    public = client.get("/readyz")
    assert (public.status_code, public.json) == (503, {"status": "not ready"})
    assert client.get("/readyz", headers=SCRAPER).json["hash key"] == MISMATCH


def test_a_command_under_another_hash_key_stops_before_it_acts(app, runner, visitor):
    """An erasure under another key would leave a tombstone nothing matches: the command
    stops, and the person is still there, not erased."""
    visitor.sign_up("040 123 4567")
    with app.app_context():
        assert hash_key_problem(utcnow()) is None
        db.session.commit()
    app.config["HASH_KEY"] = ANOTHER_KEY
    result = runner.invoke(args=["subject", "erase", "0401234567", "--yes"])
    assert result.exit_code != 0 and "HASH_KEY is not the key" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1
        assert db.session.scalar(select(func.count()).select_from(Tombstone)) == 0


def test_a_worker_under_another_hash_key_does_not_start(app, runner):
    with app.app_context():
        assert hash_key_problem(utcnow()) is None
        db.session.commit()
    app.config["HASH_KEY"] = ANOTHER_KEY
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    app.extensions[sms_queue.EXTENSION] = Queue("sms", connection=unreachable)
    result = runner.invoke(args=["worker", "--burst"])
    assert result.exit_code != 0 and "HASH_KEY is not the key" in result.output
