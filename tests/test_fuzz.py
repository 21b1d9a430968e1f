"""Every public form and webhook survives random text, bytes, huge values and odd encodings:
never a 500, never an exception (TESTING propagates them, so one would fail the test)."""

from __future__ import annotations

import pytest
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from .conftest import Visitor

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
def test_public_forms_never_answer_5xx(client, path, form):
    """Anything in any field: a 2xx, 3xx or 4xx."""
    assert client.post(path, data=form).status_code < 500


@FUZZ
@given(path=st.sampled_from(LINKED_POSTS), form=forms)
def test_preference_forms_never_answer_5xx(linked, path, form):
    """The same behind a live link (sign-out and erasure may end it: still no 5xx)."""
    assert linked.post(path, data=form).status_code < 500


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
