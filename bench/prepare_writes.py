"""Prepare the write benchmarks of bench/http.sh on an emptied register, or count what
they wrote (``--check``). Run before bench/prepare.py: it empties every table.

Writes three files for bench/writes.lua, one browser a line, ``cookie<TAB>csrf<TAB>code``
(the ``Cookie`` header value, the form's CSRF token tied to that session, and the code
where there is one, or the subscriber a preference page's form was shown for):

- ``submit.txt``: one fresh visitor (a session holding only its CSRF token); every
  request submits a different number with it, as the landing page's form does;
- ``confirm.txt``: ``--count`` pending sign-ups, each a Verification row made the way
  ``viihde.verification`` makes one (the code kept only as its keyed hash), and a session
  holding what the landing page leaves in it (the pending verification and the token);
- ``unsubscribe.txt``: ``--count`` subscribers as a confirmed sign-up leaves them (three
  grants), each with the session that opening their preference link gives.

Sessions are signed with the app's own session serializer and the tokens the way
Flask-WTF signs them, instead of walking 20,000 browsers through the test client.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from flask_migrate import upgrade
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import app
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import (
    ConsentEvent,
    Holding,
    SmsMessage,
    Subscriber,
    Verification,
    VerificationKind,
)
from viihde.register import consent, purposes, states
from viihde.register.budget import number_range, origin_of
from viihde.register.codes import code_hash, generate_code
from viihde.register.notices import SIGNUP_TEXT_VERSION
from viihde.web import browser

#: Where each benchmark's numbers live (none is the +358 40 123 4567 of prepare.py):
#: confirmations +358 50 …, unsubscriptions +358 45 …, submissions +358 40 4xx xxxx and up
#: (made up by bench/writes.lua; the register holds no other +358 40 code).
CONFIRM_NUMBERS = "+35850{:07d}"
UNSUBSCRIBE_NUMBERS = "+35845{:07d}"
EVIDENCE = consent.Evidence(
    utm_source="bench",
    utm_medium="wrk",
    utm_campaign="http",
    consent_text_version=SIGNUP_TEXT_VERSION,
    ip="127.0.0.1",
    user_agent="wrk",
)


def empty_register() -> None:
    """Migrate, then empty every table (the benchmark database only)."""
    url = db.engine.url
    if url.get_backend_name() != "postgresql" or "bench" not in (url.database or ""):
        sys.exit(f"refusing to empty {url.database!r}: a PostgreSQL database named bench* only")
    upgrade()
    names = ", ".join(table.name for table in reversed(db.metadata.sorted_tables))
    ledgers = ("audit_entries", "consent_events")  # they refuse TRUNCATE (migration 0010)
    with db.engine.begin() as connection:
        # Their triggers are off for this TRUNCATE only, in a transaction nobody else sees.
        for ledger in ledgers:
            connection.execute(text(f"ALTER TABLE {ledger} DISABLE TRIGGER USER"))
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        for ledger in ledgers:
            connection.execute(text(f"ALTER TABLE {ledger} ENABLE TRIGGER USER"))


class Browsers:
    """Signed session cookies and their CSRF tokens, as the app itself makes them."""

    def __init__(self) -> None:
        self.cookie_name = app.config["SESSION_COOKIE_NAME"]
        self.sessions = app.session_interface.get_signing_serializer(app)
        self.tokens = URLSafeTimedSerializer(
            app.config.get("WTF_CSRF_SECRET_KEY") or app.secret_key, salt="wtf-csrf-token"
        )

    def line(self, session: dict, code: str = "") -> str:
        """One browser: its session (with a fresh CSRF secret), the form's token, a code."""
        raw = hashlib.sha1(os.urandom(64), usedforsecurity=False).hexdigest()  # as Flask-WTF
        cookie = self.sessions.dumps({**session, "csrf_token": raw})
        return f"{self.cookie_name}={cookie}\t{self.tokens.dumps(raw)}\t{code}\n"


def copy_rows(table, rows: list[dict]) -> list[int]:
    """COPY ``rows`` into ``table`` (in the session's transaction), each with an id from the
    table's own sequence; return the ids in the order of ``rows``. Thousands of times
    faster here than an INSERT through the ORM."""
    connection = db.session.connection()
    ids = connection.scalars(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
        {"table": table.name, "n": len(rows)},
    ).all()
    columns = list(rows[0])
    cursor = connection.connection.dbapi_connection.cursor()
    with cursor.copy(f"COPY {table.name} (id, {', '.join(columns)}) FROM STDIN") as copy:
        for id_, row in zip(ids, rows, strict=True):
            copy.write_row((id_, *(row[column] for column in columns)))
    return ids


def pending_signups(count: int, now) -> list[tuple[int, str]]:
    """``count`` codes sent and not yet typed, as ``verification._issue_code`` leaves them:
    (verification id, code)."""
    codes = [generate_code() for _ in range(count)]
    numbers = [CONFIRM_NUMBERS.format(i) for i in range(count)]
    network, wide_network = origin_of(EVIDENCE.ip)
    rows = [
        {
            "phone_e164": number,
            "network": network,
            "wide_network": wide_network,
            "number_range": number_range(number),
            "kind": VerificationKind.SIGNUP,
            "code_hash": code_hash(number, code),
            "language": "fi",
            "purposes": ",".join(purposes.configured_keys()),
            "attempts": 0,
            "created_at": now,
            "expires_at": now + timedelta(seconds=app.config["CODE_TTL_SECONDS"]),
            **asdict(EVIDENCE),
        }
        for number, code in zip(numbers, codes, strict=True)
    ]
    return list(zip(copy_rows(Verification.__table__, rows), codes, strict=True))


def subscribers(count: int, now) -> list[tuple[int, str]]:
    """``count`` confirmed subscribers, each with the three grants of a sign-up:
    (id, link key). The first is made by ``consent.subscribe``, the rest copy its rows."""
    context = consent.ConsentContext("signup", evidence=EVIDENCE)
    first = consent.subscribe(
        UNSUBSCRIBE_NUMBERS.format(0), purposes.configured_keys(), context, now
    )
    db.session.flush()
    skip = {"id", "phone_e164", "link_key", "subscriber_id", "holding_id"}
    columns = Subscriber.__table__.columns
    person = {c.key: getattr(first, c.key) for c in columns if c.key not in skip}
    grants = [
        {c.key: getattr(event, c.key) for c in ConsentEvent.__table__.columns if c.key not in skip}
        for event in db.session.scalars(
            select(ConsentEvent).where(ConsentEvent.subscriber_id == first.id)
        )
    ]
    rest = [
        {**person, "phone_e164": UNSUBSCRIBE_NUMBERS.format(i), "link_key": consent.new_link_key()}
        for i in range(1, count)
    ]
    ids = copy_rows(Subscriber.__table__, rest)
    # Each its own holding, grants in it, and the state they make (as a sign-up leaves it).
    held = copy_rows(Holding.__table__, [{"subscriber_id": id_, "started_at": now} for id_ in ids])
    events = [
        {"subscriber_id": id_, "holding_id": holding_id, **grant}
        for id_, holding_id in zip(ids, held, strict=True)
        for grant in grants
    ]
    copy_rows(ConsentEvent.__table__, events)
    states.refold(held)
    return [(first.id, first.link_key), *zip(ids, (row["link_key"] for row in rest), strict=True)]


def prepare(count: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    browsers = Browsers()
    with app.app_context():
        empty_register()
        now = utcnow()
        signups = pending_signups(count, now)
        people = subscribers(count, now)
        db.session.commit()
        # Statistics for the planner, as autovacuum keeps them in production: without them a
        # freshly copied table gets plans made for an empty one (the checks of a submission
        # sorted all 16,000 codes of the address instead of reading its latest 200). Outside
        # a transaction: one that is rolled back (a connection closed without a commit) takes
        # its statistics with it, as it did here until 2026-12-07.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
    (out / "submit.txt").write_text(browsers.line({}))
    with (out / "confirm.txt").open("w") as file:
        file.writelines(browsers.line({browser.PENDING: id_}, code) for id_, code in signups)
    with (out / "unsubscribe.txt").open("w") as file:
        file.writelines(
            browsers.line({browser.LINK: {"s": id_, "k": key}}, str(id_)) for id_, key in people
        )
    print(f"prepared {count} pending sign-ups and {count} subscribers in {out}")


def check() -> None:
    """What the run wrote: codes issued, sign-ups confirmed, people who stopped everything."""
    with app.app_context():
        issued = db.session.scalar(
            select(func.count())
            .select_from(Verification)
            .where(Verification.phone_e164.like("+35840%"))
        )
        sent = db.session.scalar(
            select(func.count()).select_from(SmsMessage).where(SmsMessage.kind == "code")
        )
        confirmed = db.session.scalar(
            select(func.count())
            .select_from(Subscriber)
            .where(Subscriber.phone_e164.like(CONFIRM_NUMBERS[:6] + "%"))
        )
        welcomed = db.session.scalar(
            select(func.count()).select_from(SmsMessage).where(SmsMessage.kind == "welcome")
        )
        stopped = db.session.scalar(
            select(func.count(func.distinct(ConsentEvent.subscriber_id))).where(
                ConsentEvent.action == consent.WITHDRAW
            )
        )
    print(
        f"database: {issued} codes issued ({sent} code SMS logged), {confirmed} sign-ups "
        f"confirmed ({welcomed} welcome SMS logged), {stopped} people stopped all marketing"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="browsers per write")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench-writes")
    parser.add_argument("--check", action="store_true", help="count what a run wrote")
    arguments = parser.parse_args()
    if arguments.check:
        check()
    else:
        prepare(arguments.count, arguments.out)
