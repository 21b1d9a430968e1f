"""make prod-smoke: drive the topology `make prod-up` stood up, through nginx over HTTPS,
as a visitor, a recipient and support would; then stop one web instance and one worker
in the middle of a run of sign-ups and show that sign-ups keep working and no consent
event or SMS is lost or sent twice. Prints a summary and exits 1 on any failure.

Each visitor is a client of its own loopback address (127.a.b.N, fresh a and b each
run), so the per-client limits and the sign-up breaker count them as the app would count
people; the code and welcome SMS are read from the file outbox (SMS_BACKEND=file).
"""

from __future__ import annotations

import json
import random
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests
from requests.adapters import HTTPAdapter
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".prod"
OWNER_DATABASE = "postgresql://viihde@127.0.0.1:5432/viihde"
SUPERVISOR = ["supervisorctl", "-c", str(RUN / "supervisor" / "supervisord.conf")]
INSTANCE = str(ROOT / "deploy" / "instance")
TOKEN_IN_LINK = re.compile(r"https://\S+/[A-Za-z0-9_-]{2,8}\.[A-Za-z0-9_-]{16}")
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
RESILIENCE_SIGN_UPS = 24


def environment() -> dict[str, str]:
    lines = (RUN / "env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


ENV = environment()
BASE = ENV["PUBLIC_BASE_URL"]
CERT = str(RUN / "tls" / "cert.pem")
OUTBOX = Path(ENV["SMS_OUTBOX_PATH"])
# This run's clients: a /16 of loopback nobody else used lately.
NETWORK = f"127.{random.randrange(1, 255)}.{random.randrange(0, 255)}"  # noqa: S311


class FromAddress(HTTPAdapter):
    """Connect from one loopback address: one client, as the app counts clients."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        return super().init_poolmanager(*args, **kwargs)


def client(host: int, language: str = "fi") -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # this certificate, not a CA bundle named in the environment
    session.mount("https://", FromAddress(f"{NETWORK}.{host}"))
    session.verify = CERT
    session.headers["Accept-Language"] = language
    # A browser names the page a form was on: Flask-WTF checks it over HTTPS.
    session.headers["Referer"] = BASE + "/"
    return session


def url(path: str) -> str:
    return BASE + path


def random_number() -> str:
    """A valid Finnish mobile number nobody in this register has, as people type it."""
    return f"040 {random.randrange(10**7):07d}"  # noqa: S311


def e164(number: str) -> str:
    return "+358" + number.replace(" ", "")[1:]


def token_of(page: str) -> str:
    return CSRF.search(page).group(1)


def sms_to(phone: str, kind: Callable[[str], bool], timeout: float = 30) -> dict:
    """The newest SMS to ``phone`` whose body ``kind`` accepts, waiting for a worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if OUTBOX.exists():
            found = [
                message
                for message in map(json.loads, OUTBOX.read_text().splitlines())
                if message["to"] == phone and kind(message["body"])
            ]
            if found:
                return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"no SMS to {phone[:6]}… within {timeout:.0f} s")


def is_code(body: str) -> bool:
    return re.search(r"#\d+$", body) is not None


def has_link(body: str) -> bool:
    return TOKEN_IN_LINK.search(body) is not None


def submit_number(session: requests.Session, number: str, **headers) -> requests.Response:
    page = session.get(url("/"))
    data = {"csrf_token": token_of(page.text), "phone": number, "consent": "y"}
    return session.post(url("/"), data=data, headers=headers, allow_redirects=False)


def sign_up(session: requests.Session, number: str) -> str:
    """Number, code, confirmation: returns the welcome SMS's link."""
    answer = submit_number(session, number)
    assert answer.status_code == 302 and answer.headers["Location"] == "/code", answer.status_code
    code = re.search(r"#(\d+)$", sms_to(e164(number), is_code)["body"]).group(1)
    page = session.get(url("/code"))
    confirmed = session.post(
        url("/code"),
        data={"csrf_token": token_of(page.text), "code": code},
        allow_redirects=False,
    )
    assert confirmed.headers.get("Location") == "/welcome", confirmed.status_code
    return TOKEN_IN_LINK.search(sms_to(e164(number), has_link)["body"]).group(0)


def query(sql: str, *params) -> list[tuple]:
    with psycopg.connect(OWNER_DATABASE) as connection:
        return connection.execute(sql, params).fetchall()


def supervisor(*args: str) -> str:
    return subprocess.run(
        [*SUPERVISOR, *args], capture_output=True, text=True, check=False
    ).stdout.strip()


def instance(action: str, name: str) -> None:
    """Stop or start one process as an operator does (deploy/instance drains web ones)."""
    subprocess.run([INSTANCE, action, name], capture_output=True, check=True)


@dataclass
class Report:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, run: Callable[[], str | None]) -> None:
        started = time.monotonic()
        try:
            detail = run() or ""
            ok = True
        except Exception as error:  # a failed check is reported with the others, not raised
            detail, ok = f"{type(error).__name__}: {error}", False
        took = time.monotonic() - started
        self.checks.append((name, ok, detail))
        print(f"{'ok  ' if ok else 'FAIL'} {name} ({took:.1f} s){': ' + detail if detail else ''}")

    @property
    def failed(self) -> int:
        return sum(1 for _, ok, _ in self.checks if not ok)


# The scenes


@dataclass
class Scene:
    """What the scenes share: the numbers signed up and the links sent."""

    finnish: str = field(default_factory=random_number)
    swedish: str = field(default_factory=random_number)
    finnish_link: str = ""


def finnish_sign_up(scene: Scene) -> str:
    session = client(10, "fi")
    landing = session.get(url("/"))
    assert '<html lang="fi">' in landing.text and "Matkapuhelinnumero" in landing.text
    scene.finnish_link = sign_up(session, scene.finnish)
    code = sms_to(e164(scene.finnish), is_code)["body"]
    assert "vahvistuskoodisi" in code, "the code SMS is not in Finnish"
    return "landing page and code SMS in Finnish, code confirmed"


def swedish_sign_up(scene: Scene) -> str:
    session = client(11, "sv")
    landing = session.get(url("/"))
    assert '<html lang="sv">' in landing.text and "Mobilnummer" in landing.text
    sign_up(session, scene.swedish)
    code = sms_to(e164(scene.swedish), is_code)["body"]
    assert "Din kod till Viihdepaketti.fi" in code, "the code SMS is not in Swedish"
    return "landing page and code SMS in Swedish, code confirmed"


def open_link_and_unsubscribe(scene: Scene) -> str:
    recipient = client(12, "fi")
    opened = recipient.get(scene.finnish_link, allow_redirects=False)
    assert opened.headers.get("Location") == "/preferences", opened.status_code
    page = recipient.get(url("/preferences"))
    assert page.status_code == 200 and "**" in page.text, "no masked number on the page"
    stopped = recipient.post(
        url("/preferences"),
        data={"csrf_token": token_of(page.text), "stop_all": "y"},
        allow_redirects=False,
    )
    assert stopped.status_code == 302, stopped.status_code
    rows = query(
        "SELECT e.source FROM consent_events e JOIN subscribers s ON s.id = e.subscriber_id"
        " WHERE s.phone_e164 = %s AND e.action = 'withdraw'",
        e164(scene.finnish),
    )
    assert {source for (source,) in rows} == {"preference_page"} and len(rows) == 3, rows
    return "link opened from another browser, all marketing stopped in one tap"


def reply_stop(scene: Scene) -> str:
    inbound = url("/webhooks/twilio/inbound")
    params = {
        "MessageSid": "SM" + secrets.token_hex(16),
        "From": e164(scene.swedish),
        "To": "+358401110000",
        "Body": "STOP",
    }
    signature = RequestValidator(ENV["TWILIO_AUTH_TOKEN"]).compute_signature(inbound, params)
    forged = requests.post(
        inbound, data=params, headers={"X-Twilio-Signature": "x"}, verify=CERT, timeout=10
    )
    assert forged.status_code == 403, f"a forged webhook got {forged.status_code}"
    answer = requests.post(
        inbound, data=params, headers={"X-Twilio-Signature": signature}, verify=CERT, timeout=10
    )
    assert answer.status_code == 200 and "<Message>" in answer.text, answer.status_code
    rows = query(
        "SELECT e.source FROM consent_events e JOIN subscribers s ON s.id = e.subscriber_id"
        " WHERE s.phone_e164 = %s AND e.action = 'withdraw'",
        e164(scene.swedish),
    )
    assert {source for (source,) in rows} == {"sms_keyword"}, rows
    return "signed STOP withdrew everything (a forged one got 403)"


def staff_look_up(scene: Scene) -> str:
    email = f"smoke-{secrets.token_hex(4)}@viihdepaketti.fi"
    password = secrets.token_urlsafe(24)
    created = subprocess.run(
        [str(RUN / "venv" / "bin" / "flask"), "--app", "viihde", "staff", "create", email,
         "--role", "support", "--password-stdin"],
        input=password + "\n", capture_output=True, text=True, cwd=RUN,
        env={**ENV, "PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr[-300:]
    staff = client(13, "en")
    page = staff.get(url("/staff/login"))
    signed_in = staff.post(
        url("/staff/login"),
        data={"csrf_token": token_of(page.text), "email": email, "password": password},
        allow_redirects=False,
    )
    assert signed_in.headers.get("Location") == "/staff/", signed_in.status_code
    home = staff.get(url("/staff/"))
    found = staff.post(
        url("/staff/"),
        data={"csrf_token": token_of(home.text), "query": scene.finnish},
        allow_redirects=False,
    )
    assert "/staff/card/" in found.headers.get("Location", ""), found.status_code
    card = staff.get(url(found.headers["Location"]))
    assert card.status_code == 200 and "/[link]" in card.text and not has_link(card.text)
    return "support signed in, found the number as typed, card shows no live link"


def limits_see_the_client(scene: Scene) -> str:
    """Spoofed X-Forwarded-For from the client changes nothing: nginx appends the real
    address and the app (PROXY_COUNT=1) reads only that one."""
    spoofer = client(20)
    statuses = [
        submit_number(spoofer, random_number(), **{"X-Forwarded-For": f"203.0.113.{n}"}).status_code
        for n in range(6)
    ]
    assert statuses == [302] * 5 + [429], statuses
    assert submit_number(client(21), random_number()).status_code == 302
    number = random_number()
    session = client(22)
    session.headers["X-Forwarded-For"] = "198.51.100.1"
    sign_up(session, number)
    rows = query(
        "SELECT DISTINCT e.ip FROM consent_events e JOIN subscribers s"
        " ON s.id = e.subscriber_id WHERE s.phone_e164 = %s",
        e164(number),
    )
    assert rows == [(f"{NETWORK}.22",)], rows
    return "5 codes, then 429, whatever the spoofed header; consent records the real address"


def resilience(scene: Scene) -> str:
    """Sign-ups while web-1 and worker-1 stop: every one answered, nothing lost or twice."""
    numbers = [random_number() for _ in range(RESILIENCE_SIGN_UPS)]
    stopped_at: list[datetime] = []

    def one(index: int) -> str:
        if index == RESILIENCE_SIGN_UPS // 3:
            stopped_at.append(datetime.now(UTC))
            instance("stop", "web-1")
            instance("stop", "worker-1")
        sign_up(client(30 + index), numbers[index])
        return numbers[index]

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(one, range(RESILIENCE_SIGN_UPS)))
    assert done == numbers
    status = supervisor("status")
    assert re.search(r"viihde:web-1\s+STOPPED", status) and re.search(
        r"viihde:worker-1\s+STOPPED", status
    ), status
    phones = [e164(number) for number in numbers]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (waiting,) = query(
            "SELECT count(*) FROM sms_messages WHERE phone_e164 = ANY(%s)"
            " AND status IN ('queued', 'sending')",
            phones,
        )[0]
        if not waiting:
            break
        time.sleep(0.5)
    subscribers = query(
        "SELECT phone_e164, count(*) FROM subscribers WHERE phone_e164 = ANY(%s)"
        " GROUP BY phone_e164",
        phones,
    )
    assert sorted(subscribers) == sorted((phone, 1) for phone in phones), "subscribers"
    events = query(
        "SELECT s.phone_e164, e.purpose, count(*) FROM consent_events e JOIN subscribers s"
        " ON s.id = e.subscriber_id WHERE s.phone_e164 = ANY(%s) GROUP BY 1, 2",
        phones,
    )
    assert {n for *_, n in events} == {1} and len(events) == 3 * len(phones), "consent events"
    messages = query(
        "SELECT phone_e164, kind, status, created_at FROM sms_messages WHERE phone_e164 = ANY(%s)",
        phones,
    )
    kinds = Counter((phone, kind) for phone, kind, _, _ in messages)
    assert set(kinds.values()) == {1} and len(kinds) == 2 * len(phones), "SMS rows"
    assert {status for _, _, status, _ in messages} == {"sent"}, "an SMS was not delivered"
    lines = Counter(
        (message["to"], "code" if is_code(message["body"]) else "welcome")
        for message in map(json.loads, OUTBOX.read_text().splitlines())
        if message["to"] in phones
    )
    assert set(lines.values()) == {1} and len(lines) == 2 * len(phones), "SMS sent twice or lost"
    after = sum(1 for *_, created_at in messages if created_at > stopped_at[0])
    instance("start", "web-1")
    instance("start", "worker-1")
    assert requests.get("http://127.0.0.1:8001/readyz", timeout=10).status_code == 200
    return (
        f"{len(numbers)} sign-ups, web-1 and worker-1 stopped after {len(numbers) // 3}: every "
        f"one confirmed, {len(phones)} subscribers, {len(events)} consent events, "
        f"{len(messages)} SMS each delivered once ({after} by the surviving worker), "
        "then both started again"
    )


def main() -> int:
    if not (RUN / "supervisor.sock").exists():
        print("prod-smoke: nothing is running; make prod-up first", file=sys.stderr)
        return 1
    print(f"prod-smoke against {BASE}, clients from {NETWORK}.0/24")
    scene = Scene()
    report = Report()
    report.check("a visitor signs up in Finnish", lambda: finnish_sign_up(scene))
    report.check("a visitor signs up in Swedish", lambda: swedish_sign_up(scene))
    report.check(
        "the recipient opens the link and unsubscribes", lambda: open_link_and_unsubscribe(scene)
    )
    report.check("a reply STOP through the signed webhook", lambda: reply_stop(scene))
    report.check("support looks the number up", lambda: staff_look_up(scene))
    report.check("the limits see the client, not nginx", lambda: limits_see_the_client(scene))
    report.check("an instance and a worker stop mid-run", lambda: resilience(scene))
    passed = len(report.checks) - report.failed
    print(f"\nprod-smoke: {passed} of {len(report.checks)} checks passed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
