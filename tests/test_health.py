"""The load balancer's checks."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from viihde.sms import queue as sms_queue


def test_healthz_says_the_process_is_alive(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_checks_the_database_and_its_migrations(client):
    """Migrated to head, no Redis configured: ready."""
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "database": "ok", "redis": "not configured"}


def test_readyz_is_503_when_redis_is_configured_but_down(app, client):
    """A queue that cannot be reached means this instance cannot send: not ready."""
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    app.extensions[sms_queue.EXTENSION] = Queue("sms", connection=unreachable)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["redis"] == "unreachable"


def test_readyz_is_503_when_the_database_is_unreachable():
    """No register, not ready."""
    from viihde import create_app

    from .conftest import SECRET

    app = create_app(
        {
            "APP_ENV": "testing",
            "SECRET_KEY": SECRET,
            "SQLALCHEMY_DATABASE_URI": "sqlite:////nonexistent/dir/register.sqlite3",
            "REDIS_URL": None,
        }
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["database"] == "unreachable"
