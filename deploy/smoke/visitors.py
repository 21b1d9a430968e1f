"""What a person does through nginx: a client from their own address, the forms, their SMS."""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable

import requests
from requests.adapters import HTTPAdapter

from deploy.smoke.stack import BASE, CERT, OUTBOX

TOKEN_IN_LINK = re.compile(r"https://\S+/[A-Za-z0-9_-]{2,8}\.[A-Za-z0-9_-]{16}")
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
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


def shown_for(page: str) -> str:
    """The subscriber a preference page's forms were shown for (they must say so)."""
    return re.search(r'name="subscriber" type="hidden" value="(\d+)"', page).group(1)


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
    """The landing page (no cookie, no token: the same bytes for everyone), then its form
    as a browser posts it, naming its origin (the app checks it against PUBLIC_BASE_URL)."""
    page = session.get(url("/"))
    assert page.status_code == 200 and "Set-Cookie" not in page.headers, page.headers
    data = {"phone": number, "consent": "y"}
    headers = {"Origin": BASE, "Sec-Fetch-Site": "same-origin", **headers}
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
