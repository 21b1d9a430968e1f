"""Scale benchmark: a register of a million people, and what support and marketing feel of it.

Fills an empty PostgreSQL register (built by the migrations) with N subscribers, about
3 N consent events and a year of SMS log by COPY, then measures the staff look-up (the
console's own code path in process, and the console itself through Flask's test client
with a signed-in admin, audit writes included) and the audience export (rate, and peak
memory in a fresh process). Run by hand, never by the test suite: it DROPS the schema of
the database it is given.

    createdb scale   # or: psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE scale'
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/scale bench/scale.sh compare
    bench/scale.sh run --subscribers 100000   # one size: fill, look-up, export, plans

Subcommands: ``fill``, ``lookup``, ``export``, ``explain`` (the stages, on the register as
it is); ``run`` (all of them for one size, with a JSON summary); ``compare`` (``run`` for
each size in a fresh process, then a Markdown table).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)  # flask_migrate finds migrations/ here, `flask --app app` finds app.py

#: Databases this benchmark never empties (the test suite's, the HTTP benchmark's, ...).
PROTECTED = {"test", "test_lead", "bench", "postgres", "template0", "template1", "viihde"}

# --- the synthetic register -------------------------------------------------------------

#: Finnish mobile prefixes (after +358), each with 7 more digits: 60 million numbers.
PREFIXES = ("40", "41", "44", "45", "46", "50")
SPAN = 10_000_000
PURPOSES = ("offers", "new_content", "competitions")
TEXT_VERSION = {p: f"{p}-1" for p in PURPOSES}  # the preference page's texts
SIGNUP_TEXT_VERSION = "signup-1"
#: Privacy notice versions over the years: (version, share of the period when it began).
NOTICES = (("2024-01-15", 0.0), ("2025-05-20", 0.45), ("2026-11-25.2", 0.95))
YEARS = 3  # sign-ups spread evenly over the last three years (the proof period)
SMS_LOG_DAYS = 365  # the SMS log keeps a year (RETENTION_SMS_LOG_DAYS)
CAMPAIGNS = (
    ("facebook", "paid_social", "talvi"),
    ("facebook", "paid_social", "joulu"),
    ("instagram", "paid_social", "kesa"),
    ("google", "cpc", "brand"),
    ("google", "cpc", "sarjat"),
    ("tiktok", "paid_social", "uutuudet"),
    ("newsletter", "email", "kevat"),
    (None, None, None),  # organic: no utm parameters
    (None, None, None),
)
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) FxiOS/126.0 Mobile/15E148 Safari/605.1.15",
)
#: Who people are, per 100 sign-ups: (how many, purposes granted at sign-up, what they did
#: since: (source, what)). 25 in 100 have withdrawn everything (STOP by SMS, or support
#: recorded it), so 75 % have a grant in force. Preference-page toggles (a switch turned
#: off and on again) bring the mean number of events up to --events-per-subscriber.
PERSONAS: tuple[tuple[int, tuple[str, ...], tuple[tuple[str, str], ...]], ...] = (
    (30, PURPOSES, ()),
    (15, ("offers",), ()),
    (10, ("offers", "new_content"), ()),
    (12, PURPOSES, (("preference_page", "withdraw_one"),)),
    (12, PURPOSES, (("sms_keyword", "withdraw_all"),)),
    (9, ("offers",), (("sms_keyword", "withdraw_all"),)),
    (4, ("offers", "new_content"), (("staff", "withdraw_all"),)),
    (8, ("offers",), (("preference_page", "grant_one"),)),
)
BLOCK = sum(weight for weight, _, _ in PERSONAS)  # 100


def events_of(signup: tuple[str, ...], since: tuple[tuple[str, str], ...]) -> int:
    """A persona's events: its sign-up grants, then one per change (all its grants for a
    withdraw_all)."""
    return len(signup) + sum(len(signup) if what == "withdraw_all" else 1 for _, what in since)


#: Events per block of 100 people before the toggles.
BASE_EVENTS = sum(weight * events_of(signup, since) for weight, signup, since in PERSONAS)


def phone_of(index: int) -> str:
    """The number at ``index`` of the 60 million (+35840..., +35841..., ...)."""
    return f"+358{PREFIXES[index // SPAN]}{index % SPAN:07d}"


#: Every time of day, "HH:MM:SS+00": formatting a timestamp is then a look-up.
CLOCK = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(86400)]


def text(value: object) -> str:
    r"""A value in COPY's text format: None is \N. (No value here holds a tab, newline or
    backslash, except the newlines of SMS bodies, written escaped on purpose.)"""
    return r"\N" if value is None else str(value)


class Register:
    """The rows of a synthetic register, as COPY text; the same for the same seed.

    Written for speed (Python formats the rows of a million people in about half a
    minute): f-strings rather than joins, a pool of addresses, timestamps looked up, one
    random() call where randrange() would take five."""

    def __init__(self, subscribers: int, events_per_subscriber: float, seed: int, now: float):
        self.n = subscribers
        self.seed = seed
        # Test data, not secrets; each part of the fill draws from its own stream.
        self.rng = random.Random(seed + 3)  # noqa: S311
        self.random = self.rng.random
        self.now = now
        self.start = now - YEARS * 365 * 86400
        extra = round(events_per_subscriber * BLOCK) - BASE_EVENTS
        if extra < 0:
            raise SystemExit(f"--events-per-subscriber must be at least {BASE_EVENTS / BLOCK}")
        self.toggles_per_block, self.single_per_block = divmod(extra, 2)
        self.slots = [(signup, since) for weight, signup, since in PERSONAS for _ in range(weight)]
        self.addresses = [self.address() for _ in range(50_000)]
        self.campaigns = [(c[0], "\t".join(text(v) for v in c)) for c in CAMPAIGNS]
        self.days: dict[int, str] = {}
        #: Events after the sign-up, written last in time order (the ledger's id order).
        self.later: list[tuple[float, str]] = []

    def pick(self, values: tuple | list):
        return values[int(self.random() * len(values))]

    def address(self) -> str:
        r = self.rng.randrange
        if r(10) < 8:
            return f"{self.rng.choice((84, 91, 188, 193, 212))}.{r(256)}.{r(256)}.{r(1, 255)}"
        return f"2001:14ba:{r(65536):x}:{r(65536):x}::{r(1, 65536):x}"

    def timestamp(self, seconds: float) -> str:
        """A timestamptz in UTC (whole seconds), as COPY reads it."""
        day, rest = divmod(int(seconds), 86400)
        date = self.days.get(day)
        if date is None:
            date = self.days[day] = time.strftime("%Y-%m-%d ", time.gmtime(day * 86400))
        return date + CLOCK[rest]

    def notice(self, when: float) -> str:
        """The privacy notice in force at ``when``."""
        share = (when - self.start) / (self.now - self.start)
        for version, since in reversed(NOTICES):
            if share >= since:
                return version
        return NOTICES[0][0]

    def people(self) -> Iterator[tuple[int, str, float, float]]:
        """(id, number, created, confirmed) of everyone, in id order: the part both halves
        of the fill share, drawn from its own random stream so that both see the same."""
        base = random.Random(self.seed)  # noqa: S311
        rand = base.random
        numbers = base.sample(range(len(PREFIXES) * SPAN), self.n)
        step = (self.now - self.start - 3600) / self.n
        for i in range(self.n):
            created = self.start + (i + rand()) * step
            yield i + 1, phone_of(numbers[i]), created, created + 20 + 380 * rand()

    def subscribers_and_sms(self) -> Iterator[tuple[str, list[str]]]:
        """(table, COPY lines) of subscribers, their holdings (one each, its id the
        subscriber's) and their SMS log (a year of it), by id."""
        self.rng = random.Random(self.seed + 1)  # noqa: S311
        self.random = rand = self.rng.random
        randbytes = self.rng.randbytes
        sms_since = self.now - SMS_LOG_DAYS * 86400
        subscribers: list[str] = []
        held: list[str] = []
        sms: list[str] = []
        for subscriber_id, phone, created, confirmed in self.people():
            chance = rand()
            language = "fi" if chance < 0.85 else "sv" if chance < 0.95 else "en"
            link_key = base64.urlsafe_b64encode(randbytes(16)).rstrip(b"=").decode()
            subscribers.append(
                f"{subscriber_id}\t{phone}\t{language}\t{link_key}\t"
                f"{self.timestamp(created)}\t{self.timestamp(confirmed)}\n"
            )
            held.append(f"{subscriber_id}\t{subscriber_id}\t{self.timestamp(confirmed)}\n")
            if created >= sms_since:
                sms += self.sms_log(subscriber_id, phone, created, confirmed)
            if len(subscribers) == 1000:
                yield "subscribers", subscribers
                yield "holdings", held
                yield "sms_messages", sms
                subscribers, held, sms = [], [], []
        yield "subscribers", subscribers
        yield "holdings", held
        yield "sms_messages", sms

    def consent_events(self) -> Iterator[tuple[str, list[str]]]:
        """("consent_events", COPY lines): everyone's sign-up grants in id order, then
        everything done since sign-up, in time order (as the ledger's ids have them)."""
        self.rng = random.Random(self.seed + 2)  # noqa: S311
        self.random = rand = self.rng.random
        people = self.people()
        events: list[str] = []
        for first in range(0, self.n, BLOCK):
            size = min(BLOCK, self.n - first)
            slots = self.rng.sample(self.slots, size)
            extra = [0] * size
            for _ in range(self.toggles_per_block):
                extra[int(rand() * size)] += 1
            single = None
            if self.single_per_block:
                quiet = [
                    n for n, (signup, since) in enumerate(slots) if not since and len(signup) < 3
                ]
                single = quiet[0] if quiet else None
            for offset in range(size):
                subscriber_id, _, _, confirmed = next(people)
                signup, since = slots[offset]
                ops = [("preference_page", "toggle")] * extra[offset]
                if offset == single:  # one more switch on, for an odd number of events
                    ops.append(("preference_page", "grant_one"))
                events += self.person(subscriber_id, confirmed, signup, ops + list(since))
            if len(events) >= 3000 or first + size == self.n:
                yield "consent_events", events
                events = []
        self.later.sort()
        for first in range(0, len(self.later), 10_000):
            yield "consent_events", [line for _, line in self.later[first : first + 10_000]]
        self.later = []

    def person(
        self,
        subscriber_id: int,
        confirmed: float,
        signup: tuple[str, ...],
        ops: list[tuple[str, str]],
    ) -> list[str]:
        """A person's sign-up grants (returned) and what they did since (kept in
        ``self.later``), with the evidence each kind of event carries."""
        rand, pick = self.random, self.pick
        utm_source, utm = pick(self.campaigns)
        click_id = r"\N"
        if utm_source in ("facebook", "instagram", "google"):
            prefix = "gclid" if utm_source == "google" else "fbclid"
            click_id = f"{prefix}.{base64.urlsafe_b64encode(self.rng.randbytes(18)).decode()}"
        evidence = (
            f"signup\tsubject\t{utm}\t{click_id}\t{self.notice(confirmed)}\t"
            f"{SIGNUP_TEXT_VERSION}\t{pick(self.addresses)}\t{pick(USER_AGENTS)}\t"
            f"{self.timestamp(confirmed)}\tconsent\n"
        )
        state = dict.fromkeys(PURPOSES, False)
        lines = []
        for seq, purpose in enumerate(signup, 1):
            state[purpose] = True
            lines.append(f"{subscriber_id}\t{subscriber_id}\t{seq}\t{purpose}\tgrant\t{evidence}")
        seq = len(signup)
        if not ops:
            return lines
        moments = sum(2 if what == "toggle" else 1 for _, what in ops)
        since = confirmed + min(3600.0, (self.now - confirmed) / 2)  # an hour after, at least
        times = sorted(since + (self.now - since) * rand() for _ in range(moments))
        for source, what in ops:
            actor = "subject"
            if source == "preference_page":
                where = f"{pick(self.addresses)}\t{pick(USER_AGENTS)}"
            elif source == "staff":
                actor = f"staff:{1 + int(rand() * 6)}"
                where = f"10.20.0.{2 + int(rand() * 39)}\t\\N"
            else:
                where = "\\N\t\\N"
            granted = [p for p in PURPOSES if state[p]]
            not_granted = [p for p in PURPOSES if not state[p]]
            if what == "withdraw_all":
                when = times.pop(0)
                changes = [(when, p, False) for p in granted]
            elif what == "withdraw_one":
                changes = [(times.pop(0), pick(granted), False)] if granted else []
            elif what == "grant_one":
                changes = [(times.pop(0), pick(not_granted), True)] if not_granted else []
            else:  # toggle: a switch turned off and on again (or on and off)
                purpose = pick(PURPOSES)
                on = state[purpose]
                changes = [(times.pop(0), purpose, not on), (times.pop(0), purpose, on)]
            for when, purpose, grant in changes:
                seq += 1
                state[purpose] = grant
                self.later.append(
                    (
                        when,
                        f"{subscriber_id}\t{subscriber_id}\t{seq}\t{purpose}\t"
                        f"{'grant' if grant else 'withdraw'}\t"
                        f"{source}\t{actor}\t\\N\t\\N\t\\N\t\\N\t{self.notice(when)}\t"
                        f"{TEXT_VERSION[purpose]}\t{where}\t{self.timestamp(when)}\tconsent\n",
                    )
                )
        return lines

    def sms_log(self, subscriber_id: int, phone: str, created: float, confirmed: float):
        """The sign-up's code SMS (the code redacted, as the app logs it) and welcome SMS."""
        rand, bits = self.random, self.rng.getrandbits
        token = base64.urlsafe_b64encode(self.rng.randbytes(30)).decode()
        code = (
            "Viihdepaketti.fi-vahvistuskoodisi on ******. Se on voimassa 10 minuuttia."
            r"\n\n@viihdepaketti.fi #******"
        )
        welcome = (
            "Tervetuloa Viihdepaketti.fi:n tilaajaksi! Muuta tai lopeta viestit maksutta: "
            f"https://viihdepaketti.fi/{token}"
        )
        lines = []
        for kind, body, segments, when in (
            ("code", code, 1, created),
            ("welcome", welcome, 2, confirmed + 1),
        ):
            sent = self.timestamp(when + 0.2 + 3 * rand())
            lines.append(
                f"{phone}\t{subscriber_id}\t{subscriber_id}\t{kind}\t{body}\t{segments}\t"
                "twilio\tdelivered\t"
                f"SM{bits(128):032x}\t{self.timestamp(when)}\t{sent}\t{sent}\t1\n"
            )
        return lines


COLUMNS = {
    "subscribers": "id, phone_e164, language, link_key, created_at, confirmed_at",
    "holdings": "id, subscriber_id, started_at",
    "consent_events": (
        "subscriber_id, holding_id, seq, purpose, action, source, actor, utm_source, utm_medium, "
        "utm_campaign, click_id, privacy_notice_version, consent_text_version, ip, user_agent, "
        "created_at, basis"
    ),
    "sms_messages": (
        "phone_e164, subscriber_id, holding_id, kind, body, segments, backend, status, "
        "provider_sid, created_at, updated_at, sent_at, attempts"
    ),
}
FILLED = tuple(COLUMNS)


# --- database plumbing ------------------------------------------------------------------


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


#: What "the schema the migrations built" means here: every index, constraint, column
#: and trigger, as PostgreSQL itself prints them.
SCHEMA = """
SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT concat_ws(' ', 'column', table_name, column_name, data_type, character_maximum_length,
                 is_nullable, column_default)
FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'trigger ' || tgrelid::regclass || ' ' || pg_get_triggerdef(oid) FROM pg_trigger
WHERE NOT tgisinternal
ORDER BY 1
"""

#: Dropped for the COPY and rebuilt after it from their own definitions: the unique and
#: foreign-key constraints on or pointing at the filled tables, and their plain indexes.
#: Primary keys stay (the ids arrive in order, so they cost little during the COPY).
SECONDARY = """
SELECT 'constraint', conrelid::regclass::text, conname, pg_get_constraintdef(oid)
FROM pg_constraint
WHERE contype IN ('u', 'f')
  AND (conrelid = ANY(%(tables)s::regclass[]) OR confrelid = ANY(%(tables)s::regclass[]))
UNION ALL
SELECT 'index', tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename = ANY(%(tables)s::text[])
  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))
"""


def migrate_empty() -> None:
    """An empty register, as the migrations build it."""
    with connect() as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    from flask_migrate import upgrade

    from viihde.extensions import db

    with flask_app().app_context():
        upgrade()
        db.engine.dispose()


# --- fill -------------------------------------------------------------------------------


#: The fill's two halves, each in a process of its own, and the tables each writes.
PARTS = {"people": ("subscribers", "holdings", "sms_messages"), "events": ("consent_events",)}


def copy_part(
    part: str, subscribers: int, events_per_subscriber: float, seed: int, now: float
) -> dict[str, int]:
    """COPY one half of the register: each table on its own connection, in the
    transaction that emptied it, so that COPY FREEZE writes rows already frozen and
    all-visible (no hint-bit rewrite or freezing vacuum later)."""
    from psycopg.copy import QueuedLibpqWriter

    register = Register(subscribers, events_per_subscriber, seed, now)
    rows = register.subscribers_and_sms() if part == "people" else register.consent_events()
    counts = dict.fromkeys(PARTS[part], 0)
    with contextlib.ExitStack() as stack:
        copies = {}
        for table in PARTS[part]:
            conn = stack.enter_context(connect(autocommit=False))
            conn.execute("SET synchronous_commit = off")
            # The ledger refuses TRUNCATE (migration 0010): its triggers are off for this
            # TRUNCATE only, in a transaction nobody else sees before they are back on.
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            conn.execute(f"TRUNCATE {table}")
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            cursor = stack.enter_context(conn.cursor())
            statement = f"COPY {table} ({COLUMNS[table]}) FROM STDIN (FREEZE)"
            # The writer thread sends while this one formats the next rows.
            copies[table] = stack.enter_context(
                cursor.copy(statement, writer=QueuedLibpqWriter(cursor))
            )
        for table, lines in rows:
            if lines:
                copies[table].write("".join(lines))
                counts[table] += len(lines)
        # Leaving the stack ends each COPY, then commits and closes its connection.
    return counts


def fill(subscribers: int, events_per_subscriber: float, seed: int) -> dict:
    """Migrate an empty register and fill it by COPY; the seconds each step took."""
    seconds: dict[str, float] = {}
    began = mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        seconds[name] = round(now - mark, 2)
        mark = now

    migrate_empty()
    lap("migrate")
    now = time.time()
    Register(subscribers, events_per_subscriber, seed, now)  # refuses a bad mean early
    counts = dict.fromkeys(FILLED, 0)
    with connect() as conn:
        migrated = [row[0] for row in conn.execute(SCHEMA)]
        secondary = conn.execute(SECONDARY, {"tables": list(FILLED)}).fetchall()
        with conn.transaction():
            for kind, table, name, _ in secondary:
                if kind == "constraint":
                    conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for kind, _, name, _ in secondary:
                if kind == "index":
                    conn.execute(f'DROP INDEX "{name}"')

        # Two processes fill the tables side by side (subscribers and SMS log; consent
        # events), so that both cores generate rows while PostgreSQL reads them.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(PARTS), mp_context=spawn) as pool:
            parts = [
                pool.submit(copy_part, part, subscribers, events_per_subscriber, seed, now)
                for part in PARTS
            ]
            for part in parts:
                counts.update(part.result())
        for table in FILLED:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608  (ours)
                f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            )
        lap("copy")

        conn.execute("SET maintenance_work_mem = '512MB'")
        for kind, _, _, definition in secondary:
            if kind == "index":
                conn.execute(definition)
        for kind, table, name, definition in secondary:
            if kind == "constraint":
                conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        lap("indexes")
        conn.execute("VACUUM (ANALYZE) " + ", ".join(FILLED))
        lap("analyze")
        seconds["total"] = round(time.perf_counter() - began, 2)
        rebuilt = [row[0] for row in conn.execute(SCHEMA)]
        if rebuilt != migrated:
            differences = "\n".join(sorted(set(migrated) ^ set(rebuilt)))
            raise SystemExit(f"the schema is not the one the migrations built:\n{differences}")
        in_force = conn.execute(
            """SELECT count(DISTINCT subscriber_id) FROM (
                 SELECT DISTINCT ON (subscriber_id, purpose) subscriber_id, action
                 FROM consent_events ORDER BY subscriber_id, purpose, seq DESC
               ) last WHERE action = 'grant'"""
        ).fetchone()[0]
        sizes = dict(
            conn.execute(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)",
                [list(FILLED)],
            ).fetchall()
        )
    return {
        "seconds": seconds,
        "rows": counts,
        "with_a_grant_in_force": round(in_force / subscribers, 3),
        "megabytes": {t: round(sizes[t] / 2**20) for t in FILLED},
        "seed": seed,
    }


# --- look-up ----------------------------------------------------------------------------


def typed(phone: str, style: int) -> str:
    """A number as support types what a caller reads out."""
    national = "0" + phone[4:]
    return (
        f"{national[:3]} {national[3:6]} {national[6:]}",  # 040 123 4567
        phone,  # +358401234567
        national,  # 0401234567
        f"+358 {phone[4:6]} {phone[6:9]} {phone[9:]}",  # +358 40 123 4567
    )[style % 4]


def check(condition: bool, problem: str) -> None:
    """Stop the benchmark if it measured something other than what it means to."""
    if not condition:
        raise SystemExit(f"look-up: {problem}")


def percentiles(nanoseconds: list[int]) -> dict[str, float]:
    """p50, p95, p99 and the maximum, in milliseconds (nearest rank)."""
    ordered = sorted(nanoseconds)

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1e6, 2)

    return {
        "n": len(ordered),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1] / 1e6, 2),
    }


def lookup(samples: int, digit_samples: int, seed: int) -> dict:
    """Staff look-up latency: the console's code path in process, then through HTTP."""
    import pyotp
    from sqlalchemy import func, select

    from viihde.clock import utcnow
    from viihde.extensions import db
    from viihde.models import Subscriber
    from viihde.register import access, accounts, lookup

    app = flask_app()
    rng = random.Random(seed)  # noqa: S311  (which numbers to look up)
    results: dict[str, dict] = {}
    with app.app_context():
        top = db.session.scalar(select(func.max(Subscriber.id)))
        ids = rng.sample(range(1, top + 1), min(samples + 50, top))
        phones = dict(
            db.session.execute(
                select(Subscriber.id, Subscriber.phone_e164).where(Subscriber.id.in_(ids))
            ).all()
        )
        db.session.remove()
    picked = [(i, phones[i]) for i in ids if i in phones]
    regions = app.config["ALLOWED_REGIONS"]

    def timed(step: Callable[[], object]) -> int:
        """One step in a fresh session (a request's), the session's end not counted."""
        began = time.perf_counter_ns()
        step()
        elapsed = time.perf_counter_ns() - began
        db.session.remove()
        return elapsed

    find_ns, card_ns = [], []
    with app.app_context():
        for n, (subscriber_id, phone) in enumerate(picked):
            query = typed(phone, n)

            def find(query=query, subscriber_id=subscriber_id):
                search = lookup.read_search(query, regions)
                subscriber = lookup.subscriber_by_phone(search.phone_e164)
                check(subscriber.id == subscriber_id, f"{query} found someone else")

            def card(subscriber_id=subscriber_id):
                subscriber = lookup.subscriber_by_id(subscriber_id)
                data = access.export(subscriber.phone_e164)
                check(bool(data["consent_events"]), "a card without consent events")

            a, b = timed(find), timed(card)
            if n >= 50:  # the first 50 warm the caches up
                find_ns.append(a)
                card_ns.append(b)
        results["find (parse + subscriber_by_phone)"] = percentiles(find_ns)
        results["card data (subscriber_by_id + export)"] = percentiles(card_ns)
        results["find + card data"] = percentiles(
            [a + b for a, b in zip(find_ns, card_ns, strict=True)]
        )

        # The last 6 or 7 digits. read_search takes those that begin like a short Finnish
        # mobile number (4x..., 50...) for a whole number: they are left out, and counted.
        tails, taken_whole = [], 0
        for n, (subscriber_id, phone) in enumerate(picked):
            if len(tails) == digit_samples + 5:
                break
            digits = phone[-6 - n % 2 :]
            if lookup.read_search(digits, regions).last_digits:
                tails.append((subscriber_id, digits))
            else:
                taken_whole += 1
        digits_ns = []
        for n, (_, digits) in enumerate(tails):
            elapsed = timed(lambda digits=digits: lookup.find_by_last_digits(digits))
            if n >= 5:
                digits_ns.append(elapsed)
        results["last digits (find_by_last_digits)"] = percentiles(digits_ns)
        results["last digits (find_by_last_digits)"]["taken_as_a_whole_number"] = taken_whole

        # The console itself: an admin signed in with password and TOTP.
        email = f"scale-{int(time.time())}@viihdepaketti.fi"
        password = "mittaus-" + base64.urlsafe_b64encode(os.urandom(12)).decode()
        staff = accounts.create_staff(email, "admin", password, utcnow())
        staff.totp_secret = accounts.new_totp_secret()
        secret = staff.totp_secret
        db.session.commit()
        db.session.remove()

    client = app.test_client()
    base_url = app.config["PUBLIC_BASE_URL"]

    def form_token(path: str) -> str:
        page = client.get(path, base_url=base_url).text
        marker = 'name="csrf_token" type="hidden" value="'
        return page.split(marker, 1)[1].split('"', 1)[0]

    signed_in = client.post(
        "/staff/login",
        data={"csrf_token": form_token("/staff/login"), "email": email, "password": password},
        base_url=base_url,
    )
    check(signed_in.headers.get("Location", "").endswith("/totp"), "no TOTP step")
    signed_in = client.post(
        "/staff/login/totp",
        data={"csrf_token": form_token("/staff/login/totp"), "code": pyotp.TOTP(secret).now()},
        base_url=base_url,
    )
    check(signed_in.headers.get("Location", "").endswith("/staff/"), "TOTP refused")
    token = form_token("/staff/")

    def search(query: str):
        return client.post("/staff/", data={"csrf_token": token, "query": query}, base_url=base_url)

    search_ns, view_ns = [], []
    for n, (subscriber_id, phone) in enumerate(picked):
        began = time.perf_counter_ns()
        found = search(typed(phone, n))
        middle = time.perf_counter_ns()
        shown = client.get(found.headers["Location"], base_url=base_url)
        ended = time.perf_counter_ns()
        check(found.headers.get("Location", "").endswith(f"/card/{subscriber_id}"), "search")
        check(shown.status_code == 200, f"the card answered {shown.status_code}")
        if n >= 50:
            search_ns.append(middle - began)
            view_ns.append(ended - middle)
    results["HTTP POST /staff/ (search, audited, 302)"] = percentiles(search_ns)
    results["HTTP GET /staff/card/<id> (audited, rendered)"] = percentiles(view_ns)
    results["HTTP search + card"] = percentiles(
        [a + b for a, b in zip(search_ns, view_ns, strict=True)]
    )

    digits_ns = []
    for n, (subscriber_id, digits) in enumerate(tails):
        began = time.perf_counter_ns()
        listed = search(digits)
        elapsed = time.perf_counter_ns() - began
        check(f"/staff/card/{subscriber_id}" in listed.text, "not among the last digits' list")
        if n >= 5:
            digits_ns.append(elapsed)
    results["HTTP POST /staff/ (last digits, audited)"] = percentiles(digits_ns)
    return results


# --- export -----------------------------------------------------------------------------


def memory(pid: int | str = "self") -> dict[str, int]:
    """A process's resident set now (VmRSS) and at its peak (VmHWM), in KiB. Not
    ru_maxrss: Linux carries that over from the parent across fork and exec."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {"rss": int(fields["VmRSS"].split()[0]), "peak": int(fields["VmHWM"].split()[0])}


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def export_child(purpose: str, output: str, trace: bool) -> dict:
    """Run in a fresh process: write_csv over members(purpose), with the memory it took."""
    import tracemalloc

    from sqlalchemy import event, text

    from viihde.extensions import db
    from viihde.register import audience

    app = flask_app()
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # connect first: the pool is not the export's
        db.session.rollback()
        before = memory()
        # Start the peak (VmHWM) afresh, so that it is the export's, not the imports'.
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        if trace:
            tracemalloc.start()
        # The time spent in SQL (PostgreSQL sends the whole result at once), apart from
        # the Python that turns rows into CSV lines (preference links signed, ...).
        in_sql = [0.0]

        def sent(conn, cursor, statement, parameters, context, many) -> None:
            conn.info["sent"] = time.perf_counter()

        def answered(conn, cursor, statement, parameters, context, many) -> None:
            in_sql[0] += time.perf_counter() - conn.info.pop("sent")

        event.listen(db.engine, "before_cursor_execute", sent)
        event.listen(db.engine, "after_cursor_execute", answered)
        began, cpu = time.perf_counter(), time.process_time()
        rows = 0
        with open(output, "w", encoding="utf-8") as out:
            for _ in audience.write_csv(audience.members(purpose), out):
                rows += 1
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        traced = tracemalloc.get_traced_memory()[1] if trace else None
        after = memory()
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "seconds_in_sql": round(in_sql[0], 2),
        "cpu_seconds": round(cpu, 2),
        "rss_before_mib": mib(before["rss"]),
        "peak_rss_mib": mib(after["peak"]),
        "peak_rss_growth_mib": mib(after["peak"] - before["rss"]),
        "rss_after_mib": mib(after["rss"]),
        "tracemalloc_peak_mib": round(traced / 2**20, 1) if traced is not None else None,
    }


def export(purpose: str, repeat: int) -> dict:
    """The export in fresh processes (rate and memory), and `flask audience export` itself."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="scale-export-") as directory:
        output = str(Path(directory) / f"{purpose}.csv")
        for trace in [False] * repeat + [True]:
            command = [sys.executable, __file__, "export-child", "--purpose", purpose]
            command += ["--output", output] + (["--tracemalloc"] if trace else [])
            done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        flask = []
        for _ in range(repeat):
            command = [str(Path(sys.executable).parent / "flask"), "--app", "app", "audience"]
            command += ["export", "--purpose", purpose, "--output", output]
            with tempfile.TemporaryFile("w+") as errors:
                began = time.perf_counter()
                process = subprocess.Popen(command, stderr=errors)  # noqa: S603
                peak = 0
                while process.poll() is None:  # its peak, read until it ends
                    with contextlib.suppress(OSError, KeyError):
                        peak = memory(process.pid)["peak"]
                    time.sleep(0.02)
                seconds = time.perf_counter() - began
                errors.seek(0)
                stderr = errors.read()
            if process.returncode:
                raise SystemExit(f"flask audience export failed:\n{stderr}")
            with open(output, encoding="utf-8") as written:
                rows = sum(1 for _ in written) - 1
            flask.append(
                {
                    "rows": rows,
                    "seconds": round(seconds, 2),
                    "rows_per_second": round(rows / seconds),
                    "peak_rss_mib": mib(peak),
                    "says": stderr.strip().splitlines()[-1],
                }
            )
    return {"write_csv": runs[:-1], "tracemalloc": runs[-1], "flask_cli": flask}


# --- query plans ------------------------------------------------------------------------


def explain(purpose: str) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the queries the look-up and the export make, captured
    as the app sends them; returns each plan's text."""
    from sqlalchemy import event, func, select

    from viihde.extensions import db
    from viihde.models import Subscriber
    from viihde.register import audience, consent, lookup

    app = flask_app()
    plans: dict[str, str] = {}
    with app.app_context():
        top = db.session.scalar(select(func.max(Subscriber.id)))
        phone = db.session.scalar(select(Subscriber.phone_e164).where(Subscriber.id == top // 2))
        db.session.remove()
        cases: dict[str, Callable[[], object]] = {
            "subscriber_by_phone": lambda: lookup.subscriber_by_phone(phone),
            "latest_events (the card's consents)": lambda: consent.latest_events(top // 2),
            "find_by_last_digits (6 digits)": lambda: lookup.find_by_last_digits(phone[-6:]),
            "audience.page, first page": lambda: audience.page(purpose, 0),
            "audience.page, in the middle": lambda: audience.page(purpose, top // 2),
            "audience.page, last page": lambda: audience.page(purpose, max(top - 900, 0)),
        }
        for name, call in cases.items():
            captured: list[tuple[str, object]] = []

            def capture(conn, cursor, statement, parameters, context, many, captured=captured):
                captured.append((statement, parameters))

            event.listen(db.engine, "before_cursor_execute", capture)
            try:
                call()
            finally:
                event.remove(db.engine, "before_cursor_execute", capture)
                db.session.remove()
            statement, parameters = next(
                (s, p)
                for s, p in captured
                if s.lstrip().upper().startswith(("SELECT", "WITH")) and "FROM" in s.upper()
            )
            with db.engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                ).all()
            plans[name] = "\n".join(row[0] for row in rows)
    return plans


# --- the whole run, and the comparison --------------------------------------------------


def run(args) -> dict:
    """Fill (``--repeat`` times: the figures of each fill are kept), show the plans, then
    measure the look-up and the export ``--repeat`` times each."""
    summary: dict = {"subscribers": args.subscribers, "machine": machine(), "load": {}}
    print(f"== {args.subscribers:,} subscribers", flush=True)
    if not args.no_fill:
        summary["fills"] = []
        for _ in range(args.repeat):
            summary["load"].setdefault("fill", []).append(round(os.getloadavg()[0], 1))
            summary["fills"].append(fill(args.subscribers, args.events_per_subscriber, args.seed))
            print(json.dumps(summary["fills"][-1], indent=1), flush=True)
        summary["fill"] = summary["fills"][-1]
    plans = explain(args.purpose)
    summary["plans"] = plans
    for name, plan in plans.items():
        print(f"-- {name}: {plan.splitlines()[0].strip()} | {plan.splitlines()[-1].strip()}")
    summary["lookup"] = []
    for n in range(args.repeat):
        summary["load"].setdefault("lookup", []).append(round(os.getloadavg()[0], 1))
        summary["lookup"].append(lookup(args.samples, args.digit_samples, args.seed + n))
        print(json.dumps(summary["lookup"][-1], indent=1), flush=True)
    summary["load"]["export"] = [round(os.getloadavg()[0], 1)]
    summary["export"] = export(args.purpose, args.repeat)
    print(json.dumps(summary["export"], indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return summary


def machine() -> dict:
    with connect() as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                "('shared_buffers', 'work_mem', 'maintenance_work_mem', 'max_wal_size')"
            ).fetchall()
        )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": sys.version.split()[0],
        "postgresql": version,
        "postgresql_settings": settings,
        "load_average": os.getloadavg(),
    }


def compare(args) -> None:
    summaries = []
    for size in args.sizes:
        output = Path(tempfile.gettempdir()) / f"scale-{size}.json"
        command = [sys.executable, __file__, "run", "--subscribers", str(size)]
        command += ["--events-per-subscriber", str(args.events_per_subscriber)]
        command += ["--repeat", str(args.repeat), "--samples", str(args.samples)]
        command += ["--digit-samples", str(args.digit_samples), "--json", str(output)]
        subprocess.run(command, check=True)  # noqa: S603
        summaries.append(json.loads(output.read_text()))
    print()
    print(table(summaries))


def table(summaries: list[dict]) -> str:
    """The figures at each size side by side, each repeated measurement shown."""

    def each(values) -> str:  # each repeated measurement, separated by "; "
        return "; ".join(str(v) for v in values)

    rows: list[tuple[str, Callable[[dict], str]]] = [
        ("subscribers / consent events / SMS log rows", lambda s: " / ".join(
            f"{s['fill']['rows'][t]:,}" for t in FILLED)),
        ("with a grant in force", lambda s: f"{s['fill']['with_a_grant_in_force']:.0%}"),
        ("fill: total (migrate, COPY, indexes, vacuum+analyze) s", lambda s: each(
            f"{f['seconds']['total']} ({f['seconds']['migrate']}, {f['seconds']['copy']}, "
            f"{f['seconds']['indexes']}, {f['seconds']['analyze']})"
            for f in s.get("fills", [s["fill"]]))),
        ("load average (1 min) at the start: fill; look-up; export", lambda s: " · ".join(
            each(s["load"].get(stage, [])) for stage in ("fill", "lookup", "export"))),
    ]  # fmt: skip
    for name in summaries[0]["lookup"][0]:
        rows.append(
            (
                f"{name}: p50 / p95 / p99 ms",
                lambda s, name=name: each(
                    f"{run[name]['p50']} / {run[name]['p95']} / {run[name]['p99']}"
                    for run in s["lookup"]
                ),
            )
        )

    def exported(kind: str, key: str) -> Callable[[dict], str]:
        return lambda s: each(run[key] for run in s["export"][kind])

    rows += [
        ("export (write_csv): rows", lambda s: f"{s['export']['write_csv'][0]['rows']:,}"),
        ("export (write_csv): seconds", exported("write_csv", "seconds")),
        ("export (write_csv): rows/s", exported("write_csv", "rows_per_second")),
        ("export: of which in SQL, s", exported("write_csv", "seconds_in_sql")),
        ("export: CPU seconds of the exporting process", exported("write_csv", "cpu_seconds")),
        ("export: peak RSS growth MiB", exported("write_csv", "peak_rss_growth_mib")),
        ("export: tracemalloc peak MiB", lambda s: each([s["export"]["tracemalloc"][
            "tracemalloc_peak_mib"]])),
        ("`flask audience export`: seconds", exported("flask_cli", "seconds")),
        ("`flask audience export`: peak RSS MiB", exported("flask_cli", "peak_rss_mib")),
    ]  # fmt: skip
    sizes = [f"{s['subscribers']:,}" for s in summaries]
    lines = ["| | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    for name, cell in rows:
        cells = []
        for summary in summaries:
            try:
                cells.append(cell(summary))
            except (KeyError, IndexError):
                cells.append("–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def sized(command: argparse.ArgumentParser) -> None:
        command.add_argument("--subscribers", type=int, default=1_000_000)
        command.add_argument("--events-per-subscriber", type=float, default=3.0)
        command.add_argument("--seed", type=int, default=2026)

    def measured(command: argparse.ArgumentParser) -> None:
        command.add_argument("--samples", type=int, default=2000, help="look-ups timed")
        command.add_argument("--digit-samples", type=int, default=100, help="last-digit searches")
        command.add_argument("--repeat", type=int, default=2, help="each measurement, times")

    sized(commands.add_parser("fill", help="migrate an empty register and fill it"))
    lookup_command = commands.add_parser("lookup", help="staff look-up latency")
    measured(lookup_command)
    lookup_command.add_argument("--seed", type=int, default=2026)
    export_command = commands.add_parser("export", help="audience export rate and memory")
    export_command.add_argument("--purpose", default="offers")
    export_command.add_argument("--repeat", type=int, default=2)
    child = commands.add_parser("export-child", help=argparse.SUPPRESS)
    child.add_argument("--purpose", default="offers")
    child.add_argument("--output", default=os.devnull)
    child.add_argument("--tracemalloc", action="store_true")
    explain_command = commands.add_parser("explain", help="query plans (EXPLAIN ANALYZE)")
    explain_command.add_argument("--purpose", default="offers")
    run_command = commands.add_parser("run", help="fill, then measure everything")
    sized(run_command)
    measured(run_command)
    run_command.add_argument("--purpose", default="offers")
    run_command.add_argument("--no-fill", action="store_true", help="measure the register as is")
    run_command.add_argument("--json", help="write the summary here")
    compare_command = commands.add_parser("compare", help="run at each size, then a table")
    compare_command.add_argument(
        "--sizes", type=lambda v: [int(s) for s in v.split(",")], default=[100_000, 1_000_000]
    )
    compare_command.add_argument("--events-per-subscriber", type=float, default=3.0)
    measured(compare_command)
    args = parser.parse_args()

    if args.command == "fill":
        print(json.dumps(fill(args.subscribers, args.events_per_subscriber, args.seed), indent=1))
    elif args.command == "lookup":
        for n in range(args.repeat):
            print(json.dumps(lookup(args.samples, args.digit_samples, args.seed + n), indent=1))
    elif args.command == "export":
        print(json.dumps(export(args.purpose, args.repeat), indent=1))
    elif args.command == "export-child":
        print(json.dumps(export_child(args.purpose, args.output, args.tracemalloc)))
    elif args.command == "explain":
        for name, plan in explain(args.purpose).items():
            print(f"-- {name}\n{plan}\n")
    elif args.command == "run":
        run(args)
    elif args.command == "compare":
        compare(args)


if __name__ == "__main__":
    main()
