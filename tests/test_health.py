"""The load balancer's checks: ready or not for everyone, the reasons for the scraper only."""

from __future__ import annotations

import pytest
from flask_migrate import upgrade
from redis import Redis
from rq import Queue
from sqlalchemy import text

from viihde.extensions import db
from viihde.sms import queue as sms_queue

from . import helpers
from .helpers import Visitor

SCRAPER_TOKEN = "scraper-token-123"
SCRAPER = {"Authorization": f"Bearer {SCRAPER_TOKEN}"}
with_scraper_token = pytest.mark.parametrize("config_overrides", [{"METRICS_TOKEN": SCRAPER_TOKEN}])


def app_on(uri: str):
    """An app on another register than the suite's, with the scraper's token."""
    return helpers.app_on(uri, METRICS_TOKEN=SCRAPER_TOKEN)


def migrated_then(tmp_path, statement: str):
    """An app on a register of its own, migrated to head, then changed by ``statement``."""
    app = app_on("sqlite:///" + str(tmp_path / "register.sqlite3"))
    with app.app_context():
        upgrade()
        db.session.execute(text(statement))
        db.session.commit()
        db.engine.dispose()
    return app


def test_healthz_says_the_process_is_alive(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


@with_scraper_token
def test_readyz_tells_the_public_only_that_it_is_ready(client):
    """Migrated to head, no Redis configured: ready, and nothing more without the token."""
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer "}):
        response = client.get("/readyz", headers=headers)
        assert (response.status_code, response.json) == (200, {"status": "ready"})


@with_scraper_token
def test_readyz_shows_the_scraper_each_check(client):
    """The metrics token (as for /metrics) adds the database's, the hash key's and Redis's
    state."""
    response = client.get("/readyz", headers=SCRAPER)
    assert response.status_code == 200
    assert response.json == {
        "status": "ready",
        "database": "ok",
        "hash key": "ok",
        "redis": "not configured",
    }


def test_readyz_shows_no_detail_when_no_token_is_configured(client):
    """No METRICS_TOKEN: an empty bearer token is not a match."""
    response = client.get("/readyz", headers={"Authorization": "Bearer "})
    assert response.json == {"status": "ready"}


def test_readyz_hides_the_migration_revisions_from_the_public(tmp_path):
    """A register behind head is not ready; which revisions, only the scraper learns."""
    app = app_on("sqlite:///" + str(tmp_path / "behind.sqlite3"))
    with app.app_context():
        upgrade(revision="0001")
        db.engine.dispose()
    public = app.test_client().get("/readyz")
    assert (public.status_code, public.json) == (503, {"status": "not ready"})
    assert "0001" not in public.text
    scraper = app.test_client().get("/readyz", headers=SCRAPER)
    assert scraper.status_code == 503
    assert scraper.json["database"].startswith("migrations at 0001, head is ")


@with_scraper_token
def test_readyz_stays_ready_when_redis_is_down_and_says_so(app, client, outbox):
    """Redis down: the limits count in memory and SMS go from the request, so the instance
    still serves (a load balancer pulling every instance would make it an outage); the
    scraper sees why it is degraded."""
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    app.extensions[sms_queue.EXTENSION] = Queue("sms", connection=unreachable)
    public = client.get("/readyz")
    assert (public.status_code, public.json) == (200, {"status": "ready"})
    assert client.get("/readyz", headers=SCRAPER).json["redis"].startswith("unreachable")
    assert Visitor(app.test_client(), outbox).sign_up().status_code == 302  # it does serve


def test_readyz_stays_ready_when_a_newer_release_has_migrated_on(tmp_path):
    """A rolling deploy: the new release migrated the register past this instance's head.
    The old instance serves on until it is replaced (not ready, every old instance would
    leave the load balancer at once); one whose register is behind is still not ready."""
    app = migrated_then(tmp_path, "UPDATE alembic_version SET version_num = '0099'")
    public = app.test_client().get("/readyz")
    assert (public.status_code, public.json) == (200, {"status": "ready"})
    scraper = app.test_client().get("/readyz", headers=SCRAPER)
    assert scraper.json["database"].startswith("ok, migrations at 0099: newer than")


def test_readyz_is_503_when_the_database_is_unreachable():
    """No register, not ready."""
    app = app_on("sqlite:////nonexistent/dir/register.sqlite3")
    public = app.test_client().get("/readyz")
    assert (public.status_code, public.json) == (503, {"status": "not ready"})
    scraper = app.test_client().get("/readyz", headers=SCRAPER)
    assert scraper.json["database"] == "unreachable"


def test_readyz_is_503_when_the_hash_key_cannot_be_read(tmp_path):
    """The database answers but its record of the hash key cannot be read (a role without
    its grant, the table lost): not ready, and said so to the scraper, every time."""
    app = migrated_then(tmp_path, "DROP TABLE register_keys")
    client = app.test_client()
    public = client.get("/readyz")
    assert (public.status_code, public.json) == (503, {"status": "not ready"})
    scraper = client.get("/readyz", headers=SCRAPER)
    assert (scraper.json["database"], scraper.json["hash key"]) == ("ok", "unreachable")


def test_readyz_reads_the_migrations_once_a_process(client, monkeypatch):
    """The load balancer asks every few seconds, and anyone who reaches it may ask: the
    release's migrations are read once (reading them took 17 ms of CPU a check)."""
    from alembic.script import ScriptDirectory

    from viihde.web.health import routes

    routes._migrations.cache_clear()
    real, read = ScriptDirectory.from_config, []
    monkeypatch.setattr(
        ScriptDirectory, "from_config", lambda *a, **k: read.append(1) or real(*a, **k)
    )
    for _ in range(3):
        assert client.get("/readyz").status_code == 200
    assert len(read) == 1
