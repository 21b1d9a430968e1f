"""Every public form and webhook survives random text, bytes, huge values and odd encodings:
never a 500, never an exception (TESTING propagates them, so one would fail the test)."""

from __future__ import annotations

import io
import re
from urllib.parse import urlencode

import pyotp
import pytest
from freezegun import freeze_time
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from . import factories
from .helpers import Visitor

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TOKEN = "fuzz-auth-token"
BASE = "https://viihdepaketti.fi"

values = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.text(alphabet="0123456789 +-().", max_size=40),
    st.sampled_from(
        ["", " ", "\x00", "\n\r", "%00", "' OR 1=1 --", "<script>", "９" * 10, "x" * 5000]
    ),
)
forms = st.dictionaries(
    st.sampled_from(
        ["phone", "consent", "code", "utm_source", "utm_campaign", "click_id", "email", "password",
         "stop_all", "save", "purpose-offers", "understood", "reason", "query", "csrf_token"]
    ),
    values,
    max_size=8,
)  # fmt: skip


@pytest.fixture
def config_overrides() -> dict:
    # Past CSRF, so the fuzz reaches the handlers; SMS limits high, so it reaches the code.
    return {
        "WTF_CSRF_ENABLED": False,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "SMS_LIMIT_PER_IP": "100000 per hour",
        "SMS_LIMIT_GLOBAL": "100000 per hour",
        "SMS_LIMIT_PER_COUNTRY": "100000 per hour",
        "SMS_LIMIT_PER_BLOCK": "100000 per hour",
        "SMS_HOURLY_LIMIT": 100000,
        "SMS_DAILY_LIMIT": 100000,
        "STAFF_LOGIN_LIMIT_PER_IP": "100000 per hour",
    }


@pytest.fixture
def linked(app, outbox):
    """A browser that confirmed a sign-up here (so every preference page is open to it)."""
    with freeze_time("2026-11-25 12:00:00", ignore=["limits"]):
        visitor = Visitor(app.test_client(), outbox)
        visitor.client.post("/", data={"phone": "040 123 4567", "consent": "y"})
        visitor.client.post("/code", data={"code": outbox.last_code()})
    return visitor.client


PUBLIC_POSTS = ["/", "/code", "/code/resend", "/staff/login", "/staff/login/totp"]
LINKED_POSTS = ["/preferences", "/preferences/verify", "/preferences/verify/send",
                "/preferences/erase", "/preferences/sign-out"]  # fmt: skip


@FUZZ
@given(path=st.sampled_from(PUBLIC_POSTS), form=forms)
# Found by this test on PostgreSQL: the staff sign-in looked the email up with its NUL.
@example(path="/staff/login", form={"email": "\x00", "password": "x" * 12})
def test_public_forms_never_answer_5xx(client, path, form):
    """Anything in any field: a 2xx, 3xx or 4xx."""
    assert client.post(path, data=form).status_code < 500


@FUZZ
@given(path=st.sampled_from(LINKED_POSTS), form=forms)
def test_preference_forms_never_answer_5xx(linked, path, form):
    """The same behind a live link (sign-out and erasure may end it: still no 5xx)."""
    assert linked.post(path, data=form).status_code < 500


#: Every field a public or linked form reads.
FORM_FIELDS = ["phone", "consent", "utm_source", "utm_medium", "utm_campaign", "click_id",
               "code", "email", "password", "understood", "save", "stop_all", "subscriber",
               "purpose-offers", "next"]  # fmt: skip


@pytest.mark.parametrize("field", FORM_FIELDS)
def test_a_field_posted_as_a_file_is_refused_not_a_500(linked, field):
    """A multipart body whose field is a file part (no form here takes a file): the field
    counts as missing, a 4xx or a redirect, on every form."""
    for path in PUBLIC_POSTS + LINKED_POSTS:
        data = {"phone": "040 123 4567", "consent": "y", field: (io.BytesIO(b"x"), "a.txt")}
        response = linked.post(path, data=data, content_type="multipart/form-data")
        assert response.status_code < 500, (path, field)


CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "application/json",
    "text/plain; charset=utf-16",
    "application/x-www-form-urlencoded; charset=latin-1",
]


@FUZZ
@given(
    path=st.sampled_from(PUBLIC_POSTS + LINKED_POSTS),
    body=st.binary(max_size=2000),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_raw_bodies_in_odd_encodings_never_answer_5xx(linked, path, body, content_type):
    """Random bytes under any content type."""
    assert linked.post(path, data=body, content_type=content_type).status_code < 500


@FUZZ
@given(token=st.text(max_size=60))
def test_random_links_never_answer_5xx(client, token):
    """Whatever follows the slash, a page or a 404."""
    path = "/" + token.replace("/", "").replace("?", "").replace("#", "")
    assert client.get(path).status_code < 500


WEBHOOK_FIELDS = ["MessageSid", "MessageStatus", "ErrorCode", "From", "To", "Body", "AccountSid"]


@FUZZ
@given(path=st.sampled_from(["/webhooks/twilio/status", "/webhooks/twilio/inbound"]),
       params=st.dictionaries(st.sampled_from(WEBHOOK_FIELDS), values, max_size=6))  # fmt: skip
def test_signed_webhooks_with_random_content_never_answer_5xx(client, path, params):
    """Even a genuinely signed request with nonsense in it is handled."""
    signature = RequestValidator(TOKEN).compute_signature(BASE + path, params)
    response = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code in (200, 204, 413)  # 413: over 16 KiB, refused unread


@FUZZ
@given(path=st.sampled_from(["/webhooks/twilio/status", "/webhooks/twilio/inbound"]),
       params=st.dictionaries(st.sampled_from(WEBHOOK_FIELDS), values, max_size=6),
       signature=st.text(st.characters(exclude_categories=("Cc",)), max_size=40))  # fmt: skip
def test_unsigned_webhooks_get_403_whatever_they_carry(client, path, params, signature):
    """Random signatures: always 403 (or 413 when the body is over the limit)."""
    response = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code in (403, 413)


def test_a_body_over_the_limit_is_413_wherever_a_form_is_read(client):
    """17 KiB is refused the moment a handler would read it (a page that first redirects
    reads nothing)."""
    for path in ["/", "/staff/login", "/webhooks/twilio/inbound", "/webhooks/twilio/status"]:
        assert client.post(path, data={"x": "9" * 17 * 1024}).status_code == 413, path


def test_nul_characters_are_stored_safely(client, app):
    """PostgreSQL refuses NUL in text: a reply with one is still stored and answered."""
    params = {"MessageSid": "SM" + "1" * 32, "From": "+358401234567", "Body": "STOP\x00now"}
    path = "/webhooks/twilio/inbound"
    signature = RequestValidator(TOKEN).compute_signature(BASE + path, params)
    response = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200


# Every route, with the ids, dates and digits an attacker tries

#: Numbers no id column holds or no id is: zero, negative, past int4 and int8, and digits
#: of other scripts (fullwidth, Arabic-Indic) that int() would read as ASCII ones.
ODD_NUMBERS = ["0", "-1", str(2**31), str(2**63), "99999999999999999999", "１２", "١٢"]
#: What a ``<token:...>`` matches, naming no subscriber: id 0, and an id past int4.
ODD_TOKENS = ["AA.AAAAAAAAAAAAAAAA", "________.________________"]
ODD_DAYS = ["0001-01-01", "9999-12-31", "2026-02-30", "１２３４-０１-０１", "garbage"]
DAY_PARAMETERS = ("since", "until", "day", "from", "to")
ODD_QUERIES = [
    *({name: day for name in DAY_PARAMETERS} for day in ODD_DAYS),
    {"since": "0001-01-01", "until": "9999-12-31"},
    {
        "number": "０４０ １２３ ４５６７",
        "limit": str(2**63),
        "campaign": "١٢",
        "holding": "earlier",
    },
    # PostgreSQL refuses NUL in text: a filter carrying one must not reach it as a 500.
    {"actor": "x\x00y", "action": "\x00", "number": "040\x00123", "query": "\x00"},
]


def signed_in_admin(app):
    """A browser of an admin with TOTP (the fuzz config has CSRF off)."""
    admin = factories.staff_member(app, "admin", totp=True)
    client = app.test_client()
    client.post("/staff/login", data={"email": admin.email, "password": admin.password})
    response = client.post("/staff/login/totp", data={"code": pyotp.TOTP(admin.totp_secret).now()})
    assert response.headers["Location"] == "/staff/"
    return client


#: Asked last: they end the browser's session, and the routes after them would see none.
SESSION_ENDERS = {"staff.logout", "preferences.sign_out"}


def odd_requests(app):
    """(method, URL) for every rule: each variable filled with each odd value, and the
    rules without one asked with odd dates and digits in the query string."""
    rules = sorted(app.url_map.iter_rules(), key=lambda rule: rule.endpoint in SESSION_ENDERS)
    for rule in rules:
        methods = sorted(rule.methods & {"GET", "POST"})
        if rule.arguments:
            values = ODD_TOKENS if "<token:" in rule.rule else ODD_NUMBERS
            paths = [re.sub(r"<[^>]+>", value, rule.rule) for value in values]
            yield from ((method, path) for path in paths for method in methods)
            continue
        yield from ((method, rule.rule) for method in methods)
        if "GET" in methods:
            yield from (("GET", f"{rule.rule}?{urlencode(query)}") for query in ODD_QUERIES)


def test_odd_ids_dates_and_digits_never_answer_5xx_on_any_route(app, outbox):
    """Anonymous, with a sign-up confirmed just now, and as an admin; GET and POST: a 2xx,
    3xx or 4xx, never an error (which TESTING would raise here)."""
    confirmed = Visitor(app.test_client(), outbox)
    confirmed.client.post("/", data={"phone": "040 123 4567", "consent": "y"})
    confirmed.client.post("/code", data={"code": outbox.last_code()})
    browsers = {
        "anonymous": app.test_client(),
        "confirmed": confirmed.client,
        "admin": signed_in_admin(app),
    }
    requests = list(odd_requests(app))
    assert len(requests) > 200
    for who, client in browsers.items():
        for method, url in requests:
            status = client.open(url, method=method).status_code
            assert status < 500, (who, method, url, status)
