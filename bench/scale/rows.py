"""The synthetic register's rows as COPY text, the same for the same seed."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Iterator

from bench.scale.shape import (
    BASE_EVENTS,
    BLOCK,
    CAMPAIGNS,
    NOTICES,
    PERSONAS,
    PREFIXES,
    PURPOSES,
    SIGNUP_TEXT_VERSION,
    SMS_LOG_DAYS,
    SPAN,
    TEXT_VERSION,
    USER_AGENTS,
    YEARS,
    phone_of,
)

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
