"""Twilio's webhooks: signed delivery reports and replies (STOP, START, HELP) to our number."""

from __future__ import annotations

import unicodedata
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from twilio.request_validator import RequestValidator

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import (
    ConsentEvent,
    ConsentSource,
    InboundMessage,
    SmsMessage,
    SmsStatusEvent,
    Subscriber,
)
from viihde.register import access, budget, consent, erasure
from viihde.register.replies import HELP, KEYWORDS, START, STOP, keyword_of
from viihde.sms import stored_body, texts
from viihde.sms.backends import FileBackend
from viihde.sms.delivery import deliver, record_status
from viihde.web.webhooks.twilio import is_genuine_request

from . import factories
from .helpers import race

TOKEN = "test-auth-token"
OUR_NUMBER = "+358401110000"
BASE = "https://viihdepaketti.fi"
STATUS = "/webhooks/twilio/status"
INBOUND = "/webhooks/twilio/inbound"
NUMBER = "+358401234567"
STRANGER = "+358409876543"
PURPOSES = ("offers", "new_content", "competitions")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def config_overrides() -> dict:
    return {"TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": OUR_NUMBER}


def new_sid() -> str:
    """A fresh Twilio message id: "SM" and 32 hex digits."""
    return "SM" + uuid.uuid4().hex


def post_with_signature(client, path: str, params: dict, signature: str | None, **kwargs):
    """POST form params to a webhook with the given X-Twilio-Signature (None: no header)."""
    headers = dict(kwargs.pop("headers", {}))
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return client.post(path, data=params, headers=headers, **kwargs)


def post_signed(client, path: str, params: dict, url: str | None = None, token: str = TOKEN, **kw):
    """POST a webhook as Twilio does: signed for the public URL it called."""
    signature = RequestValidator(token).compute_signature(url or BASE + path, params)
    return post_with_signature(client, path, params, signature, **kw)


def inbound_params(body: str, sender: str = NUMBER, sid: str | None = None) -> dict:
    return {"MessageSid": sid or new_sid(), "From": sender, "To": OUR_NUMBER, "Body": body}


def status_params(sid: str, status: str, error_code: str | None = None) -> dict:
    params = {"MessageSid": sid, "MessageStatus": status}
    if error_code:
        params["ErrorCode"] = error_code
    return params


def text(client, body: str, sender: str = NUMBER, sid: str | None = None):
    """Someone texts ``body`` to our number; Twilio calls the inbound webhook."""
    return post_signed(client, INBOUND, inbound_params(body, sender, sid))


def report(client, sid: str, status: str, error_code: str | None = None):
    """Twilio reports a delivery status."""
    return post_signed(client, STATUS, status_params(sid, status, error_code))


def reply_of(response) -> str | None:
    """The text of the TwiML <Message>, or None for an empty <Response />."""
    root = ET.fromstring(response.data)  # noqa: S314 (our own app's TwiML)
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1
    return messages[0].text if messages else None


def ledger(app) -> list[tuple[str, str, str]]:
    """The consent events, oldest first, as (action, purpose, source)."""
    with app.app_context():
        return [
            (e.action, e.purpose, e.source)
            for e in db.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
        ]


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def message_status(app, sid: str) -> tuple[str, str | None]:
    with app.app_context():
        message = db.session.scalar(select(SmsMessage).where(SmsMessage.provider_sid == sid))
        return message.status, message.error_code


def register_state(app) -> dict:
    """Everything a webhook could change, to compare before and after."""
    with app.app_context():
        messages = sorted(
            (m.id, m.status, m.error_code) for m in db.session.scalars(select(SmsMessage))
        )
    return {
        "ledger": ledger(app),
        "inbound": count(app, InboundMessage),
        "status_events": count(app, SmsStatusEvent),
        "subscribers": count(app, Subscriber),
        "messages": messages,
    }


def sent_message(app, sid: str | None = None, status: str = "sent") -> str:
    """A message row the provider accepted under ``sid``; returns the sid."""
    sid = sid or new_sid()
    with app.app_context():
        db.session.add(
            SmsMessage(
                phone_e164=NUMBER,
                kind="welcome",
                body="Tervetuloa",
                segments=1,
                backend="twilio",
                status=status,
                provider_sid=sid,
                attempts=1,
                created_at=NOW,
                updated_at=NOW,
                sent_at=NOW,
            )
        )
        db.session.commit()
    return sid


@pytest.fixture
def subscriber(app, outbox) -> int:
    """+358401234567 signed up (Finnish), all three purposes granted; its id."""
    with freeze_time("2026-11-25 12:00:00"):
        return factories.signed_up_on_the_web(app, outbox)


SIGNED_UP = [("grant", purpose, "signup") for purpose in PURPOSES]
STOPPED = [("withdraw", purpose, "sms_keyword") for purpose in PURPOSES]


# --- The signature -------------------------------------------------------------------------

SDK_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
# twilio-python's own test vector (tests/unit/test_request_validator.py).
SDK_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
SDK_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_signature_check_passes_twilios_known_answer():
    """The SDK documentation's example request is genuine under its token."""
    assert is_genuine_request(SDK_URL, SDK_PARAMS, SDK_SIGNATURE, "12345")


@pytest.mark.parametrize("position", range(len(SDK_SIGNATURE)))
def test_signature_with_any_character_changed_is_refused(position):
    """One character off anywhere in the signature and the request is not Twilio's."""
    changed = "A" if SDK_SIGNATURE[position] != "A" else "B"
    signature = SDK_SIGNATURE[:position] + changed + SDK_SIGNATURE[position + 1 :]
    assert not is_genuine_request(SDK_URL, SDK_PARAMS, signature, "12345")


def test_signature_check_needs_a_token_and_a_signature():
    """No configured token or no signature header is never genuine."""
    assert not is_genuine_request(SDK_URL, SDK_PARAMS, SDK_SIGNATURE, None)
    assert not is_genuine_request(SDK_URL, SDK_PARAMS, SDK_SIGNATURE, "")
    assert not is_genuine_request(SDK_URL, SDK_PARAMS, "", "12345")


def _other(path: str) -> str:
    return STATUS if path == INBOUND else INBOUND


FORGERIES = {
    "unsigned": lambda client, path, params: post_with_signature(client, path, params, None),
    "signed with another token": lambda client, path, params: post_signed(
        client, path, params, token="somebody-elses-token"
    ),
    "signed for another host": lambda client, path, params: post_signed(
        client, path, params, url="https://evil.example" + path
    ),
    "signed for plain http": lambda client, path, params: post_signed(
        client, path, params, url="http://viihdepaketti.fi" + path
    ),
    "signed for the other webhook": lambda client, path, params: post_signed(
        client, path, params, url=BASE + _other(path)
    ),
    "a parameter changed after signing": lambda client, path, params: post_with_signature(
        client,
        path,
        {**params, "From": STRANGER, "MessageStatus": "failed"},
        RequestValidator(TOKEN).compute_signature(BASE + path, params),
    ),
    "a parameter added after signing": lambda client, path, params: post_with_signature(
        client,
        path,
        {**params, "ErrorCode": "30003"},
        RequestValidator(TOKEN).compute_signature(BASE + path, params),
    ),
}


@pytest.fixture
def webhook_call(app, subscriber):
    """A genuine call for each webhook: a STOP from the subscriber, a 'delivered' report."""
    sid = sent_message(app)
    return {INBOUND: inbound_params("STOP"), STATUS: status_params(sid, "delivered")}


@pytest.mark.parametrize("path", [INBOUND, STATUS])
@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_request_twilio_did_not_sign_is_refused_and_changes_nothing(
    app, client, webhook_call, path, forgery
):
    """403, and no consent event, no stored reply, no status change."""
    before = register_state(app)
    response = FORGERIES[forgery](client, path, webhook_call[path])
    assert response.status_code == 403
    assert register_state(app) == before


@pytest.mark.parametrize("path", [INBOUND, STATUS])
def test_the_genuine_call_the_forgeries_start_from_is_accepted(app, client, webhook_call, path):
    """The forgeries above are refused for their flaw, not for their content."""
    response = post_signed(client, path, webhook_call[path])
    assert response.status_code in (200, 204)


def test_without_a_configured_token_every_webhook_is_refused(app, client, webhook_call):
    """A deployment missing TWILIO_AUTH_TOKEN accepts nothing, signed or not."""
    app.config["TWILIO_AUTH_TOKEN"] = None
    before = register_state(app)
    for path in (INBOUND, STATUS):
        assert post_signed(client, path, webhook_call[path]).status_code == 403
    assert register_state(app) == before


BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_change_to_a_signed_request_is_refused(app, client, webhook_call, data):
    """One parameter value or one signature character changed: 403, nothing recorded."""
    path = data.draw(st.sampled_from([INBOUND, STATUS]))
    params = webhook_call[path]
    signature = RequestValidator(TOKEN).compute_signature(BASE + path, params)
    target = data.draw(st.sampled_from([*params, "signature"]))
    if target == "signature":
        position = data.draw(st.integers(0, len(signature) - 1))
        char = data.draw(st.sampled_from(BASE64).filter(lambda c: c != signature[position]))
        signature = signature[:position] + char + signature[position + 1 :]
    else:
        value = data.draw(st.text(max_size=20).filter(lambda v: v != params[target]))
        params = {**params, target: value}
    before = register_state(app)
    assert post_with_signature(client, path, params, signature).status_code == 403
    assert register_state(app) == before


# --- Behind the reverse proxy -------------------------------------------------------------


@pytest.mark.parametrize("path", [INBOUND, STATUS])
def test_a_request_relayed_by_the_proxy_is_checked_against_the_public_url(
    app, client, webhook_call, path
):
    """The app sees http://127.0.0.1:8000; Twilio signed https://viihdepaketti.fi: accepted."""
    response = post_signed(client, path, webhook_call[path], base_url="http://127.0.0.1:8000")
    assert response.status_code in (200, 204)


@pytest.mark.parametrize("path", [INBOUND, STATUS])
def test_a_spoofed_host_header_cannot_choose_the_signed_url(app, client, webhook_call, path):
    """Signed for evil.example and sent with Host: evil.example: still 403."""
    before = register_state(app)
    response = post_signed(
        client,
        path,
        webhook_call[path],
        url="https://evil.example" + path,
        base_url="https://evil.example",
    )
    assert response.status_code == 403
    assert register_state(app) == before


@pytest.mark.parametrize("path", [INBOUND, STATUS])
def test_a_spoofed_forwarded_host_cannot_choose_the_signed_url(app, client, webhook_call, path):
    """Signed for the host named in X-Forwarded-Host: still 403."""
    before = register_state(app)
    response = post_signed(
        client,
        path,
        webhook_call[path],
        url="https://evil.example" + path,
        base_url="http://127.0.0.1:8000",
        headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
    )
    assert response.status_code == 403
    assert register_state(app) == before


# --- Methods and CSRF ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [INBOUND, STATUS])
def test_get_on_a_webhook_is_not_allowed(client, path):
    """Twilio POSTs; a GET (signed or not) is 405."""
    assert client.get(path).status_code == 405
    signature = RequestValidator(TOKEN).compute_signature(BASE + path, {})
    assert client.get(path, headers={"X-Twilio-Signature": signature}).status_code == 405


def test_webhooks_need_no_csrf_token(app, client, webhook_call):
    """CSRF is on for forms, but Twilio's signed POSTs carry no token and are accepted."""
    assert app.config.get("WTF_CSRF_ENABLED", True)
    assert post_signed(client, INBOUND, webhook_call[INBOUND]).status_code == 200
    assert post_signed(client, STATUS, webhook_call[STATUS]).status_code == 204


# --- Delivery status callbacks ------------------------------------------------------------


def test_sent_then_delivered_marks_the_message_delivered(app, client):
    """Callbacks in order move the row forward."""
    sid = sent_message(app)
    assert report(client, sid, "sent").status_code == 204
    assert report(client, sid, "delivered").status_code == 204
    assert message_status(app, sid) == ("delivered", None)


def test_a_late_sent_never_undoes_delivered(app, client):
    """Callbacks can arrive out of order; the status only moves forward."""
    sid = sent_message(app)
    report(client, sid, "delivered")
    assert report(client, sid, "sent").status_code == 204
    assert message_status(app, sid) == ("delivered", None)


def test_undelivered_keeps_the_error_code(app, client):
    """'undelivered' with ErrorCode 30003 (unreachable handset) is recorded with the code."""
    sid = sent_message(app)
    assert report(client, sid, "undelivered", "30003").status_code == 204
    assert message_status(app, sid) == ("undelivered", "30003")


def test_a_callback_reporting_an_opt_out_at_the_provider_withdraws_marketing(
    app, client, subscriber
):
    """21610 in a callback (a Messaging Service accepts the send and reports it later): the
    person opted out with the provider, so their marketing is withdrawn as a STOP to us
    would; the callback repeated withdraws nothing more."""
    sid = sent_message(app)
    for _ in range(2):
        assert report(client, sid, "failed", "21610").status_code == 204
    assert ledger(app) == SIGNED_UP + STOPPED
    with app.app_context():
        actors = {e.actor for e in db.session.scalars(select(ConsentEvent).offset(3))}
    assert actors == {"provider"}


def test_an_opt_out_callback_whose_withdrawal_fails_is_recorded_with_it_or_not_at_all(
    app, client, subscriber, monkeypatch
):
    """The status and the withdrawal it causes are one transaction: when the withdrawal
    fails (the database, a crash), the status is not recorded either, so Twilio's retry of
    the callback is not dropped as a repeat, and withdraws then."""
    withdraw_all = consent.withdraw_all

    def database_gone(*args, **kwargs):
        monkeypatch.setattr(consent, "withdraw_all", withdraw_all)
        raise OperationalError("INSERT INTO consent_events", {}, Exception("database is locked"))

    monkeypatch.setattr(consent, "withdraw_all", database_gone)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    sid = sent_message(app)
    assert report(client, sid, "failed", "21610").status_code == 500
    assert count(app, SmsStatusEvent) == 0 and message_status(app, sid) == ("sent", None)

    assert report(client, sid, "failed", "21610").status_code == 204
    assert ledger(app) == SIGNED_UP + STOPPED


def test_another_failure_in_a_callback_withdraws_nothing(app, client, subscriber):
    """30003 (a phone off) is no opt-out: consent stays."""
    sid = sent_message(app)
    report(client, sid, "undelivered", "30003")
    assert ledger(app) == SIGNED_UP


def test_an_opt_out_reported_before_the_provider_id_is_saved_still_withdraws(
    app, subscriber, monkeypatch
):
    """The 21610 callback came first; when the send returns that sid, it counts."""
    sid = new_sid()
    with app.app_context():
        assert record_status(sid, "failed", "21610", NOW)
        message = SmsMessage(
            phone_e164=NUMBER, kind="welcome", body="Tervetuloa", segments=1, backend="file",
            status="queued", attempts=0, created_at=NOW, updated_at=NOW,
        )  # fmt: skip
        db.session.add(message)
        db.session.commit()
        monkeypatch.setattr(FileBackend, "send", lambda self, outgoing: sid)
        deliver(message.id, "Tervetuloa", NOW)
    assert ledger(app) == SIGNED_UP + STOPPED


def test_a_repeated_callback_is_recorded_once(app, client):
    """Twilio retries: five identical callbacks are one status event, each answered 204."""
    sid = sent_message(app)
    for _ in range(5):
        assert report(client, sid, "delivered").status_code == 204
    assert count(app, SmsStatusEvent) == 1
    assert message_status(app, sid) == ("delivered", None)


def test_a_callback_for_an_unknown_message_is_acknowledged_and_changes_no_message(app, client):
    """An id we never saved: 204, and every message stays as it was."""
    sid = sent_message(app)
    before = register_state(app)["messages"]
    assert report(client, new_sid(), "delivered").status_code == 204
    assert register_state(app)["messages"] == before
    assert message_status(app, sid) == ("sent", None)


def test_an_unknown_status_word_is_acknowledged_and_not_recorded(app, client):
    """'read' (WhatsApp) means nothing to an SMS row: 204, nothing stored."""
    sid = sent_message(app)
    assert report(client, sid, "read").status_code == 204
    assert count(app, SmsStatusEvent) == 0
    assert message_status(app, sid) == ("sent", None)


def test_a_callback_before_the_provider_id_is_saved_still_counts(app_context, monkeypatch):
    """'delivered' arrives first; when the send returns that sid, the row ends delivered."""
    sid = new_sid()
    assert record_status(sid, "delivered", None, NOW)
    message = SmsMessage(
        phone_e164=NUMBER,
        kind="welcome",
        body="Tervetuloa",
        segments=1,
        backend="file",
        status="queued",
        attempts=0,
        created_at=NOW,
        updated_at=NOW,
    )
    db.session.add(message)
    db.session.commit()
    monkeypatch.setattr(FileBackend, "send", lambda self, outgoing: sid)
    assert deliver(message.id, "Tervetuloa", NOW) == "delivered"
    db.session.expire_all()
    row = db.session.get(SmsMessage, message.id)
    assert (row.status, row.provider_sid) == ("delivered", sid)


# --- Keywords -----------------------------------------------------------------------------

WORDS = [(word, keyword) for keyword, words in KEYWORDS.items() for word in sorted(words)]


def spellings(word: str) -> list[str]:
    """How people type a keyword: any case, spaces around, a full stop or an exclamation."""
    mixed = "".join(c.lower() if i % 2 else c.upper() for i, c in enumerate(word.lower()))
    return [word, word.lower(), mixed, f"  {word}  ", f"{word}!", f"{word.lower()}.", f" {mixed}! "]


def test_the_keyword_lists_are_the_documented_ones():
    """STOP words in Finnish, Swedish and English, and START and HELP words."""
    assert KEYWORDS[STOP] == {
        "STOP", "LOPETA", "LOPPU", "POISTA", "STOPPI", "SEIS", "PERU", "POIS", "AVSLUTA",
        "SLUTA", "AVBRYT", "STOPP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPALL",
        "OPTOUT", "REVOKE",
    }  # fmt: skip
    assert KEYWORDS[START] == {"START", "ALOITA", "TILAA", "UNSTOP"}
    assert {keyword_of(word) for word in ("HELP", "APUA", "INFO", "HJÄLP")} == {HELP}


@pytest.mark.parametrize(("word", "keyword"), WORDS)
def test_each_keyword_is_recognised_however_it_is_typed(word, keyword):
    """Case, surrounding spaces and a trailing '!' or '.' do not matter."""
    for spelling in spellings(word):
        assert keyword_of(spelling) == keyword, spelling


@pytest.mark.parametrize(
    "spelling",
    ['"STOP"', "Stop,", "«Sluta»", "(stop)", "STOP\u200b", "\u2060lopeta", "-STOP-", "‘Optout’"],
)
def test_quotes_punctuation_and_invisible_characters_around_stop_do_not_matter(spelling):
    """What a phone's keyboard or a copy-paste puts around the word is not part of it."""
    assert keyword_of(spelling) == STOP


@pytest.mark.parametrize(
    ("opt_out_type", "keyword"), [("STOP", STOP), ("start", START), ("HELP", HELP)]
)
def test_twilios_own_reading_of_a_reply_decides(opt_out_type, keyword):
    """With Twilio's Advanced Opt-Out, Twilio has read the reply (in its own word lists)
    and blocked or unblocked the number already: the register follows it."""
    assert keyword_of("Lopettakaa nämä viestit", opt_out_type) == keyword
    assert keyword_of("STOP", "") == STOP
    assert keyword_of("Hei", "SOMETHING") is None


@pytest.mark.parametrize("spelling", ["hjälp", "HJÄLP", "Hjälp!", "HJALP", "hjalp."])
def test_hjalp_means_help_with_or_without_the_umlaut(spelling):
    """Swedish HJÄLP, typed on a phone without ä, is still help."""
    assert keyword_of(spelling) == HELP


ALL_WORDS = [*sorted(word for words in KEYWORDS.values() for word in words), "HJÄLP"]


def _folded(body: str) -> str:
    decomposed = unicodedata.normalize("NFKD", body)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


@settings(max_examples=300)
@given(st.text(max_size=30).filter(lambda t: not any(w in _folded(t) for w in ALL_WORDS)))
def test_a_text_without_any_keyword_is_no_keyword(body):
    """Anything that does not contain a keyword at all is just a message."""
    assert keyword_of(body) is None


@pytest.mark.parametrize(
    "sentence",
    ["stop sending me stuff", "please stop", "Start the film", "help me choose", "STOP STOP",
     "yes please", "is this the end", "", "!"],
)  # fmt: skip
def test_a_sentence_with_a_keyword_in_it_is_no_keyword(sentence):
    """Only a whole message is a keyword; "stop sending me stuff" is a conversation."""
    assert keyword_of(sentence) is None


@given(
    st.sampled_from(ALL_WORDS),
    st.from_regex(r"[A-Za-zÅÄÖåäö]{1,12}", fullmatch=True),
    st.booleans(),
)
def test_a_keyword_with_another_word_is_no_keyword(word, other, keyword_first):
    """A keyword plus any other word, before or after it, is not a keyword."""
    sentence = f"{word} {other}" if keyword_first else f"{other} {word}"
    assert keyword_of(sentence) is None


# --- STOP ---------------------------------------------------------------------------------


def test_stop_withdraws_every_purpose_and_says_how_to_undo_it(app, client, subscriber):
    """All three purposes withdrawn with source sms_keyword; the reply mentions START."""
    response = text(client, "STOP")
    assert response.status_code == 200
    assert response.content_type.startswith("text/xml")
    assert "START" in reply_of(response)
    assert ledger(app) == SIGNED_UP + STOPPED
    with app.app_context():
        assert not consent.is_subscribed(subscriber)
        actors = {e.actor for e in db.session.scalars(select(ConsentEvent).offset(3))}
    assert actors == {"subject"}


def test_stop_is_answered_in_the_subscribers_language(app, client, subscriber):
    """A Finnish subscriber's LOPETA gets the Finnish answer, not the English one."""
    reply = reply_of(text(client, "LOPETA"))
    with app.app_context():
        assert reply == texts.stop_reply("fi")
        assert reply != texts.stop_reply("en")


def test_a_retried_stop_withdraws_once_and_replies_once(app, client, subscriber):
    """The same MessageSid five times: three withdrawals, one stored message, one reply."""
    sid = new_sid()
    responses = [text(client, "STOP", sid=sid) for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert [reply_of(r) is not None for r in responses] == [True, False, False, False, False]
    assert ledger(app) == SIGNED_UP + STOPPED
    assert count(app, InboundMessage) == 1


def test_the_same_stop_from_five_threads_at_once_withdraws_once(app, subscriber):
    """Five simultaneous deliveries of one STOP: three withdrawals, one stored, one reply."""
    sid = new_sid()
    params = inbound_params("STOP", sid=sid)

    def deliver_stop():
        return post_signed(app.test_client(), INBOUND, params)

    responses = race(*[deliver_stop] * 5)
    assert [r.status_code for r in responses] == [200] * 5
    assert sum(reply_of(r) is not None for r in responses) == 1
    assert ledger(app) == SIGNED_UP + STOPPED
    assert count(app, InboundMessage) == 1


def test_a_stop_that_failed_midway_is_acted_on_when_twilio_retries(
    app, client, subscriber, monkeypatch
):
    """The first attempt dies before withdrawing; the retry of the same message still stops."""
    withdraw_all = consent.withdraw_all

    def database_gone(*args, **kwargs):
        monkeypatch.setattr(consent, "withdraw_all", withdraw_all)
        raise OperationalError("INSERT INTO consent_events", {}, Exception("database is locked"))

    monkeypatch.setattr(consent, "withdraw_all", database_gone)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    params = inbound_params("STOP")
    assert post_signed(client, INBOUND, params).status_code == 500
    retry = post_signed(client, INBOUND, params)
    assert retry.status_code == 200
    assert ledger(app) == SIGNED_UP + STOPPED
    assert "START" in reply_of(retry)


def test_stop_from_an_unknown_number_is_answered_and_records_nothing(app, client):
    """No subscriber is created and the ledger stays empty; the person still gets an answer."""
    response = text(client, "STOP", sender=STRANGER)
    assert response.status_code == 200
    assert "START" in reply_of(response)
    assert count(app, Subscriber) == 0
    assert ledger(app) == []


# --- START and HELP -----------------------------------------------------------------------


def test_start_after_stop_grants_again_under_the_stop_reply(app, client, subscriber):
    """Grants for every purpose with consent_text_version sms-start-1; the reply has the link."""
    text(client, "STOP")
    response = text(client, "START")
    reply = reply_of(response)
    assert "STOP" in reply
    link = next(word for word in reply.split() if word.startswith("https://"))
    assert link.startswith("https://viihdepaketti.fi/")
    assert ledger(app) == SIGNED_UP + STOPPED + [("grant", p, "sms_keyword") for p in PURPOSES]
    with app.app_context():
        latest = consent.latest_events(subscriber)
        assert {latest[p].consent_text_version for p in PURPOSES} == {"sms-start-1"}
        assert consent.is_subscribed(subscriber)
    assert app.test_client().get(link.removeprefix(BASE)).status_code == 302


def test_start_grants_again_only_what_the_last_stop_withdrew(app, client, subscriber):
    """Competitions switched off on the page, then STOP, then START: offers and new
    content come back, competitions stays off (the person never asked for it again)."""
    with app.app_context():
        page = consent.ConsentContext(ConsentSource.PREFERENCE_PAGE)
        consent.set_consent(subscriber, ["competitions"], False, page, NOW)
        db.session.commit()
    text(client, "STOP")
    reply = reply_of(text(client, "START"))

    assert "https://viihdepaketti.fi/" in reply
    assert ledger(app)[3:] == [
        ("withdraw", "competitions", "preference_page"),
        ("withdraw", "offers", "sms_keyword"),
        ("withdraw", "new_content", "sms_keyword"),
        ("grant", "offers", "sms_keyword"),
        ("grant", "new_content", "sms_keyword"),
    ]


def test_start_answers_the_latest_stop_not_an_earlier_one(app, client, subscriber):
    """STOP, offers switched on again on the page, STOP again, START: only offers, which
    the second STOP withdrew, comes back."""
    text(client, "STOP")
    with app.app_context():
        page = consent.ConsentContext(ConsentSource.PREFERENCE_PAGE)
        consent.set_consent(subscriber, ["offers"], True, page, NOW + timedelta(minutes=1))
        db.session.commit()
    text(client, "STOP")
    text(client, "START")

    assert ledger(app)[6:] == [
        ("grant", "offers", "preference_page"),
        ("withdraw", "offers", "sms_keyword"),
        ("grant", "offers", "sms_keyword"),
    ]


def test_start_without_a_stop_by_sms_grants_nothing_and_sends_the_link(app, client, subscriber):
    """Everything switched off on the page, then START: no consent the person never gave
    by SMS; the answer is the settings link (where they choose)."""
    with app.app_context():
        page = consent.ConsentContext(ConsentSource.PREFERENCE_PAGE)
        consent.set_consent(subscriber, PURPOSES, False, page, NOW)
        db.session.commit()
    reply = reply_of(text(client, "START"))

    assert ledger(app) == SIGNED_UP + [("withdraw", p, "preference_page") for p in PURPOSES]
    assert "https://viihdepaketti.fi/" in reply
    with app.app_context():
        before_the_link, after_the_link = texts.help_reply("LINK", "fi").split("LINK")
    assert reply.startswith(before_the_link) and reply.endswith(after_the_link)


def test_yes_is_no_keyword(app, client, subscriber):
    """ "Yes" answers anything (a question in a message, a friend): it grants nothing."""
    text(client, "STOP")
    assert keyword_of("Yes") is None
    assert reply_of(text(client, "Yes")) is None
    assert ledger(app) == SIGNED_UP + STOPPED


def test_twilios_opt_out_type_stops_whatever_the_words(app, client, subscriber):
    """A reply Twilio read as an opt-out (``OptOutType=STOP``) withdraws all marketing."""
    params = inbound_params("Lopettakaa nämä viestit") | {"OptOutType": "STOP"}
    assert post_signed(client, INBOUND, params).status_code == 200
    assert ledger(app) == SIGNED_UP + STOPPED


def test_start_while_subscribed_changes_nothing_but_answers(app, client, subscriber):
    """Already subscribed: no new events, the welcome text again."""
    reply = reply_of(text(client, "aloita"))
    assert "https://viihdepaketti.fi/" in reply
    assert ledger(app) == SIGNED_UP


def test_help_sends_the_link_and_the_stop_word(app, client, subscriber):
    """HELP: who we are, the subscriber's own preference link and STOP; consent unchanged."""
    reply = reply_of(text(client, "apua"))
    assert "https://viihdepaketti.fi/" in reply
    assert "STOP" in reply
    assert ledger(app) == SIGNED_UP


@pytest.mark.parametrize("body", ["HELP", "START"])
def test_help_or_start_from_an_unknown_number_sends_the_help_text(app, client, body):
    """A stranger gets the site address and STOP, and becomes no subscriber."""
    reply = reply_of(text(client, body, sender=STRANGER))
    assert "https://viihdepaketti.fi" in reply
    assert "STOP" in reply
    assert count(app, Subscriber) == 0
    assert ledger(app) == []


@pytest.mark.parametrize(
    "config_overrides",
    [{"TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": OUR_NUMBER, "SMS_HOURLY_LIMIT": 5}],
)
def test_one_phone_texting_help_in_a_loop_cannot_spend_the_sms_budget(app, client):
    """Answers count in the sign-up SMS budget: a number gets SMS_REPLIES_PER_NUMBER_PER_HOUR
    (3) of them an hour, the rest of its texts are stored and go unanswered, and sign-up
    codes are not paused by them. An hour on, it is answered again."""
    with freeze_time(NOW) as clock:
        answered = [reply_of(text(client, "HELP", sender=STRANGER)) is not None for _ in range(6)]
        with app.app_context():
            assert budget.sms_pause(utcnow()) is None
        assert answered == [True] * 3 + [False] * 3
        assert count(app, InboundMessage) == 6
        clock.tick(timedelta(minutes=61))
        assert reply_of(text(client, "HELP", sender=STRANGER)) is not None


@pytest.mark.parametrize("sender", ["+12025550123", "+447700900123", "+882345678901"])
def test_no_answer_goes_to_a_number_outside_the_allowed_regions(app, client, sender):
    """A HELP or STOP from abroad is stored (a STOP acted on) and gets no SMS back: an
    answer there costs more, and a spoofed sender could aim them at a premium number."""
    for body in ("HELP", "STOP", "START"):
        response = text(client, body, sender=sender)
        assert response.status_code == 200
        assert reply_of(response) is None
    with app.app_context():
        kinds = db.session.scalars(select(SmsMessage.kind)).all()
    assert "reply" not in kinds


# --- Other texts and the reply log --------------------------------------------------------


def test_any_other_text_is_stored_and_not_answered(app, client, subscriber):
    """Kept with keyword None, answered with an empty TwiML, no reply row."""
    response = text(client, "Milloin tulee uusi kausi?")
    assert response.status_code == 200
    assert reply_of(response) is None
    assert b"<Message" not in response.data
    with app.app_context():
        stored = db.session.scalar(select(InboundMessage))
        assert (stored.phone_e164, stored.body, stored.keyword) == (
            NUMBER,
            "Milloin tulee uusi kausi?",
            None,
        )
        kinds = db.session.scalars(select(SmsMessage.kind)).all()
    assert "reply" not in kinds
    assert ledger(app) == SIGNED_UP


def test_every_answer_is_logged_as_a_reply_to_the_number(app, client, subscriber):
    """STOP and HELP each leave one SmsMessage of kind reply with the text sent (a link
    without its token, as every logged message keeps it)."""
    stop = reply_of(text(client, "STOP"))
    help_ = reply_of(text(client, "HELP"))
    with app.app_context():
        replies = db.session.scalars(
            select(SmsMessage).where(SmsMessage.kind == "reply").order_by(SmsMessage.id)
        ).all()
        assert [(m.phone_e164, m.subscriber_id, m.body) for m in replies] == [
            (NUMBER, subscriber, stop),
            (NUMBER, subscriber, stored_body(help_)),
        ]
    assert "/[link]" in stored_body(help_) and "/[link]" not in help_


def test_a_strangers_stop_reply_is_logged_without_a_subscriber(app, client):
    """The reply row names the number and no subscriber."""
    text(client, "STOP", sender=STRANGER)
    with app.app_context():
        reply = db.session.scalar(select(SmsMessage).where(SmsMessage.kind == "reply"))
        assert (reply.phone_e164, reply.subscriber_id) == (STRANGER, None)


# --- STOP racing an opt-in ----------------------------------------------------------------


def test_stop_racing_an_opt_in_never_loses_an_event(app, subscriber):
    """Five rounds of STOP against a grant: every purpose's ledger alternates and folds right."""

    def stop():
        return post_signed(app.test_client(), INBOUND, inbound_params("STOP")).status_code

    def opt_in():
        with app.app_context():
            try:
                context = consent.ConsentContext("preference_page")
                granted = consent.set_consent(subscriber, PURPOSES, True, context, NOW)
                db.session.commit()
                return len(granted)
            finally:
                db.session.remove()

    for _ in range(5):
        assert race(stop, opt_in)[0] == 200
    with app.app_context():
        events = db.session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subscriber_id == subscriber)
            .order_by(ConsentEvent.seq)
        ).all()
        state = consent.current_consent(subscriber)
        for purpose in PURPOSES:
            actions = [e.action for e in events if e.purpose == purpose]
            assert all(a != b for a, b in pairwise(actions)), (purpose, actions)
            assert state[purpose] == (actions[-1] == "grant")
        assert [e.seq for e in events] == list(range(1, len(events) + 1))


# --- The person's rights ------------------------------------------------------------------


def test_replies_are_in_the_export_and_go_with_erasure(app, client, subscriber):
    """The STOP someone sent shows in their export; erasing the number removes it."""
    text(client, "Stop!")
    text(client, "kiitos")
    with app.app_context():
        replies = access.export(NUMBER)["sms_replies"]
        assert [(r["body"], r["keyword"]) for r in replies] == [("Stop!", "stop"), ("kiitos", None)]
        erasure.erase(NUMBER, "cli", NOW)
        db.session.commit()
        assert access.export(NUMBER)["sms_replies"] == []
    assert count(app, InboundMessage) == 0
    assert count(app, SmsMessage) == 0


# --- Speed --------------------------------------------------------------------------------


def test_stop_is_answered_inline_without_calling_out(app, client, subscriber, monkeypatch):
    """Twilio waits 15 s for the answer: a STOP does its work in the register and answers
    in the response itself, sending nothing out while Twilio waits (its speed is measured
    by bench/, never by a timed test)."""
    from viihde.sms import backends
    from viihde.sms.backends.twilio import TwilioBackend

    def no_call(self, message):
        raise AssertionError("an outbound send while Twilio waits for the answer")

    for backend in (backends.ConsoleBackend, backends.FileBackend, TwilioBackend):
        monkeypatch.setattr(backend, "send", no_call)
    response = text(client, "STOP")
    assert response.status_code == 200
    assert reply_of(response)
