"""The database the benchmark may empty: its URL, its connections, the app over it."""

from __future__ import annotations

import os

#: Databases this benchmark never empties (the test suite's, the HTTP benchmark's, ...).
PROTECTED = {"test", "test_lead", "bench", "postgres", "template0", "template1", "viihde"}


def libpq_url() -> str:
    """DATABASE_URL for psycopg, after checking it is a database the benchmark may empty."""
    from sqlalchemy.engine import make_url

    url = make_url(os.environ["DATABASE_URL"])
    if not url.drivername.startswith("postgresql"):
        raise SystemExit("bench/scale needs PostgreSQL")
    if url.database in PROTECTED:
        raise SystemExit(f"refusing to empty the database {url.database!r}: use one of its own")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def connect(autocommit: bool = True):
    import psycopg

    return psycopg.connect(libpq_url(), autocommit=autocommit)


def flask_app():
    import logging

    logging.disable(logging.INFO)  # no request or audit log line per look-up
    from app import app

    return app
