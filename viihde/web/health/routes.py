"""Health checks for the load balancer: alive (/healthz) and ready (/readyz).

Anyone may ask; only the metrics scraper (METRICS_TOKEN) sees why an instance is not
ready, since the detail names the schema's migration revisions.
"""

from __future__ import annotations

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from viihde.extensions import db, migrate
from viihde.ops.metrics import is_scraper
from viihde.sms.queue import sms_queue

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers."""
    return jsonify(status="ok")


def _database() -> str:
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError:
        return "unreachable"
    config = migrate.get_config(current_app.extensions["migrate"].directory)
    head = ScriptDirectory.from_config(config).get_current_head()
    return "ok" if current == head else f"migrations at {current}, head is {head}"


def _redis() -> str:
    queue = sms_queue()
    if queue is None:
        return "not configured"
    try:
        queue.connection.ping()
    except RedisError:
        return "unreachable"
    return "ok"


@bp.get("/readyz")
def readyz():
    """The database answers and is migrated to head, and Redis answers (if configured);
    each check's result only for the metrics scraper."""
    checks = {"database": _database(), "redis": _redis()}
    ready = checks["database"] == "ok" and checks["redis"] in ("ok", "not configured")
    detail = checks if is_scraper() else {}
    return jsonify(status="ready" if ready else "not ready", **detail), 200 if ready else 503
