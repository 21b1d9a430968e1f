"""The scenes: a visitor signs up, the recipient unsubscribes, STOP by SMS, support, the limits."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from dataclasses import dataclass, field

import requests
from twilio.request_validator import RequestValidator

from deploy.smoke.stack import CERT, ENV, RUN, query, supervisor
from deploy.smoke.visitors import (
    NETWORK,
    client,
    e164,
    has_link,
    is_code,
    random_number,
    shown_for,
    sign_up,
    sms_to,
    submit_number,
    token_of,
    url,
)


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
        data={
            "csrf_token": token_of(page.text),
            "subscriber": shown_for(page.text),
            "stop_all": "y",
        },
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


def logs_keep_no_link(scene: Scene) -> str:
    """The link opened through nginx reached its access log and the app's: neither (nor any
    other log of the stack) shows its signature, with which a reader could act as the person."""
    signature = scene.finnish_link.rsplit("/", 1)[1].split(".", 1)[1]
    logs = sorted((RUN / "log").glob("*.log"))
    access = (RUN / "log" / "nginx-access.log").read_text()
    assert ".[token]" in access, "the link's request is not in nginx's access log"
    leaking = [path.name for path in logs if signature in path.read_text(errors="replace")]
    assert not leaking, f"the link's signature is in {leaking}"
    return f"{len(logs)} logs read, the link's request among them, its signature in none"


#: What only the owner may read: the secrets, the environment, the TLS key, the SMS file.
PRIVATE = ("env", "secrets/secret_key", "secrets/hash_key", "tls/key.pem", "sms-outbox.jsonl")
PROGRAMS = ("web-1", "web-2", "worker-1", "worker-2", "scheduler")


def runs_as_the_service_account(scene: Scene) -> str:
    """Every program runs as viihde, not root; nobody else reads the secrets, the SMS file
    or the logs (a local user with SECRET_KEY could sign a staff session)."""
    service = pwd.getpwnam("viihde").pw_uid
    for program in PROGRAMS:
        pid = supervisor("pid", f"viihde:{program}")
        assert pid.isdigit() and pid != "0", f"{program}: not running ({pid})"
        assert os.stat(f"/proc/{pid}").st_uid == service, f"{program} does not run as viihde"
    shared = [name for name in PRIVATE if (RUN / name).stat().st_mode & 0o077]
    assert not shared, f"readable by others than the owner: {shared}"
    logs = [path.name for path in (RUN / "log").glob("*.log") if path.stat().st_mode & 0o007]
    assert not logs, f"logs anyone may read: {logs}"
    return f"{len(PROGRAMS)} programs as viihde; secrets, SMS file and logs private"
