"""Health checks for the load balancer: alive (/healthz) and ready (/readyz).

Anyone may ask; only the metrics scraper (METRICS_TOKEN) sees why an instance is not
ready, since the detail names the schema's migration revisions.
"""

from __future__ import annotations

from functools import cache

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError
from flask import Blueprint, current_app, jsonify
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from viihde.clock import utcnow
from viihde.extensions import db, migrate
from viihde.ops.metrics import is_scraper
from viihde.register.keys import hash_key_problem
from viihde.sms.queue import sms_queue

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers."""
    return jsonify(status="ok")


def _database() -> str:
    """The register's check: ok; ok when a newer release has migrated it on (this instance
    serves on until it is replaced: a rolling deploy); or why not."""
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError:
        return "unreachable"
    script = _migrations(current_app.extensions["migrate"].directory)
    head = script.get_current_head()
    if current == head:
        return "ok"
    if current is not None and not _known(script, current):
        return f"ok, migrations at {current}: newer than this release's {head}"
    return f"migrations at {current}, head is {head}"


@cache
def _migrations(directory: str) -> ScriptDirectory:
    """This release's migrations, read once a process: /readyz is asked every few seconds
    (and by anyone who can reach it), and reading the files took 17 ms of CPU each time."""
    script = ScriptDirectory.from_config(migrate.get_config(directory))
    script.get_current_head()  # the revision map, built now
    return script


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except (CommandError, ResolutionError):
        return False


def _hash_key() -> str:
    try:
        problem = hash_key_problem(utcnow())
        db.session.commit()  # the fingerprint, when this was the first check
    except SQLAlchemyError:
        db.session.rollback()
        return "unreachable"
    return problem or "ok"


def _redis() -> str:
    queue = sms_queue()
    if queue is None:
        return "not configured"
    try:
        queue.connection.ping()
    except RedisError:
        return "unreachable: limits in this process's memory, SMS sent from the request"
    return "ok"


@bp.get("/readyz")
def readyz():
    """The database answers and is migrated to this release's head (or past it), and its
    hashes were made with this instance's HASH_KEY; each check's result only for the
    metrics scraper.

    Redis is reported, not required: without it each instance counts the limits in its own
    memory and sends SMS from the request (``web.ratelimits``, ``sms.dispatch``), so a
    load balancer taking every instance out when Redis fails would turn a degraded service
    into none."""
    checks = {"database": _database(), "redis": _redis()}
    if checks["database"].startswith("ok"):
        checks["hash key"] = _hash_key()
    ready = checks["database"].startswith("ok") and checks.get("hash key") == "ok"
    detail = checks if is_scraper() else {}
    return jsonify(status="ready" if ready else "not ready", **detail), 200 if ready else 503
