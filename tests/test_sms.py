"""SMS: segments, the texts in every language, the backends, and the log of what was sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests
from flask import current_app
from sqlalchemy import select

from viihde.extensions import db
from viihde.models import SmsMessage
from viihde.sms import REDACTED_CODE, segments, send_sms, texts
from viihde.sms.backends import ConsoleBackend, FileBackend, Outgoing, SendFailed
from viihde.sms.backends.twilio import TwilioBackend
from viihde.sms.delivery import backend_from_config

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
NUMBER = "+358401234567"
LANGUAGES = ["fi", "sv", "en"]
NUMBER_SENDERS = ["+358401110000", "12345"]
ALPHANUMERIC_SENDER = "Viihde"
#: The longest link we send: the 24-character host and a 23-character token.
LONGEST_LINK = "https://viihdepaketti.fi/" + "Abcd-_." + "Abcdefghijklmn-_"
BASE_URL = "https://viihdepaketti.fi"


def outgoing(to: str = NUMBER, body: str = "Hei!", sender: str | None = "Viihde") -> Outgoing:
    """A message ready to go, sent at NOW."""
    return Outgoing(to=to, body=body, sender=sender, kind="code", created_at=NOW)


def logged_messages() -> list[SmsMessage]:
    """Every SmsMessage row, oldest first."""
    return list(db.session.scalars(select(SmsMessage).order_by(SmsMessage.id)))


# Segments


def test_160_gsm7_characters_are_one_segment():
    """A full single SMS in the default alphabet."""
    assert segments.segmentation("a" * 160).segments == 1


def test_161_gsm7_characters_are_two_segments():
    """One character more and the message is split."""
    assert segments.segmentation("a" * 161).segments == 2


def test_long_gsm7_message_is_split_in_153_character_parts():
    """Parts of a split message carry a header and hold 153 characters each."""
    assert segments.segmentation("a" * 306).segments == 2
    assert segments.segmentation("a" * 307).segments == 3


def test_finnish_letters_are_in_the_gsm7_alphabet():
    """ä, ö and Å cost one septet each."""
    result = segments.segmentation("äöÅ" * 50)
    assert (result.encoding, result.units) == ("GSM-7", 150)


@pytest.mark.parametrize("extension_character", ["€", "[", "]", "{", "}", "\\", "~", "|", "^"])
def test_extension_characters_count_double(extension_character):
    """Characters of the GSM-7 extension table take an escape and a septet."""
    assert segments.segmentation(extension_character).units == 2


def test_euro_sign_pushes_a_full_message_to_two_segments():
    """159 letters and a euro sign are 161 septets."""
    assert segments.segmentation("a" * 159 + "€").segments == 2


@pytest.mark.parametrize("foreign_character", ["ą", "😀", "ç"])
def test_non_gsm_character_switches_to_ucs2(foreign_character):
    """One character outside GSM-7 changes the whole message to UCS-2."""
    assert segments.segmentation("Hei " + foreign_character).encoding == "UCS-2"


def test_ucs2_message_holds_70_characters_in_one_segment():
    """In UCS-2 a single SMS holds 70 characters, the 71st splits it."""
    assert segments.segmentation("ą" * 70).segments == 1
    assert segments.segmentation("ą" * 71).segments == 2


def test_emoji_takes_two_ucs2_units():
    """Characters outside the basic plane are surrogate pairs: 35 emoji fill a segment."""
    assert segments.segmentation("😀" * 35).segments == 1
    assert segments.segmentation("😀" * 36).segments == 2


def test_fits_one_gsm7_segment_refuses_ucs2_even_when_short():
    """A short UCS-2 text is one segment but not a GSM-7 one."""
    assert not segments.fits_one_gsm7_segment("ą")
    assert segments.fits_one_gsm7_segment("a" * 160)
    assert not segments.fits_one_gsm7_segment("a" * 161)


# Texts


@pytest.mark.parametrize("sender", ["+358401234567", "12345"])
def test_a_number_sender_accepts_replies(sender):
    """E.164 numbers and short codes can receive STOP."""
    assert texts.sender_accepts_replies(sender)


@pytest.mark.parametrize("sender", ["Viihde", "", None, "+Viihde"])
def test_an_alphanumeric_sender_does_not_accept_replies(sender):
    """An alphanumeric sender ID cannot receive replies."""
    assert not texts.sender_accepts_replies(sender)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("sender", NUMBER_SENDERS)
def test_welcome_offers_stop_when_the_sender_takes_replies(app_context, language, sender):
    """From a number, the welcome says people can reply STOP."""
    replies = texts.sender_accepts_replies(sender)
    message = texts.welcome_message(LONGEST_LINK, language, replies_reach_us=replies)
    assert "STOP" in message
    assert LONGEST_LINK in message


@pytest.mark.parametrize("language", LANGUAGES)
def test_welcome_does_not_offer_stop_from_an_alphanumeric_sender(app_context, language):
    """A reply to an alphanumeric sender goes nowhere, so it is not offered."""
    replies = texts.sender_accepts_replies(ALPHANUMERIC_SENDER)
    message = texts.welcome_message(LONGEST_LINK, language, replies_reach_us=replies)
    assert "STOP" not in message
    assert LONGEST_LINK in message


def code_message(code: str, language: str) -> str:
    """The code SMS as the app sends it, with the configured lifetime."""
    return texts.code_message(code, current_app.config["CODE_TTL_SECONDS"], BASE_URL, language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_code_message_ends_with_the_webotp_line(app_context, language):
    """The last line lets the browser fill in the code: ``@host #code``."""
    message = code_message("123456", language)
    assert message.endswith("\n\n@viihdepaketti.fi #123456")


@pytest.mark.parametrize("language", LANGUAGES)
def test_code_message_states_the_code_in_its_text(app_context, language):
    """The code is readable in the text, not only in the WebOTP line."""
    body, _webotp_line = code_message("123456", language).rsplit("\n\n", 1)
    assert "123456" in body


@pytest.mark.parametrize(
    ("ttl_seconds", "language", "says"),
    [
        (600, "en", "It is valid for 10 minutes."),
        (300, "en", "It is valid for 5 minutes."),
        (60, "en", "It is valid for 1 minute."),
        (600, "fi", "Koodi on voimassa 10 minuuttia."),
        (60, "fi", "Koodi on voimassa 1 minuutin."),
        (900, "sv", "Den gäller i 15 minuter."),
    ],
)
def test_code_message_says_how_long_the_code_is_valid(app_context, ttl_seconds, language, says):
    """The lifetime in the text is CODE_TTL_SECONDS', in minutes, in the person's language."""
    assert says in texts.code_message("123456", ttl_seconds, BASE_URL, language)


def test_webotp_host_drops_scheme_port_and_path():
    """The WebOTP line names the host only."""
    assert texts.webotp_host("https://viihdepaketti.fi:8443/path") == "viihdepaketti.fi"


def every_sms_text(language: str) -> dict[str, str]:
    """Every SMS the app sends, rendered with the longest realistic values."""
    return {
        "code": code_message("9" * current_app.config["CODE_DIGITS"], language),
        "welcome from a number": texts.welcome_message(LONGEST_LINK, language, True),
        "welcome from a name": texts.welcome_message(LONGEST_LINK, language, False),
        "stop reply": texts.stop_reply(language),
        "help reply": texts.help_reply(LONGEST_LINK, language),
        "test message": texts.test_message(language),
        "new link": texts.new_link_message(LONGEST_LINK, language),
    }


def test_longest_link_is_48_characters():
    """The texts are checked with the longest link tokens.py promises."""
    assert len(LONGEST_LINK) == 48


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_sms_text_fits_one_gsm7_segment(app_context, language):
    """No text needs a second segment or UCS-2 in any language, at its longest."""
    too_long = {
        name: segments.segmentation(body)
        for name, body in every_sms_text(language).items()
        if not segments.fits_one_gsm7_segment(body)
    }
    assert too_long == {}


# Backends


def test_console_backend_prints_the_body_and_the_masked_number(capsys):
    """Developers see the message and whom it is for, masked."""
    ConsoleBackend().send(outgoing(body="Koodisi on 123456"))
    printed = capsys.readouterr().out
    assert "Koodisi on 123456" in printed
    assert "+358 40 *** **67" in printed


def test_console_backend_never_prints_the_full_number(capsys):
    """The terminal is a log: the number is not in it in any form."""
    ConsoleBackend().send(outgoing())
    printed = capsys.readouterr().out
    assert NUMBER not in printed
    assert "401234567" not in printed.replace(" ", "")


def test_file_backend_appends_one_json_object_per_line(tmp_path):
    """Each message is one line; earlier lines stay."""
    path = tmp_path / "outbox.jsonl"
    backend = FileBackend(str(path))
    backend.send(outgoing(body="first"))
    backend.send(outgoing(to="+46701234567", body="second"))
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(line["to"], line["body"]) for line in lines] == [
        (NUMBER, "first"),
        ("+46701234567", "second"),
    ]


def test_file_backend_keeps_non_ascii_bodies_readable(tmp_path):
    """Finnish letters are written as they are, one message still one line."""
    path = tmp_path / "outbox.jsonl"
    FileBackend(str(path)).send(outgoing(body="Tervetuloa!\nLähetä STOP"))
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["body"] == "Tervetuloa!\nLähetä STOP"


def test_file_backend_creates_the_outbox_folder(tmp_path):
    """A fresh checkout has no instance folder yet."""
    path = tmp_path / "not" / "yet" / "outbox.jsonl"
    FileBackend(str(path)).send(outgoing())
    assert path.exists()


@pytest.mark.parametrize(
    ("name", "kind"),
    [("console", ConsoleBackend), ("file", FileBackend)],
)
def test_backend_from_config_builds_the_named_backend(tmp_path, name, kind):
    """SMS_BACKEND names the backend."""
    config = {"SMS_BACKEND": name, "SMS_OUTBOX_PATH": str(tmp_path / "outbox.jsonl")}
    assert isinstance(backend_from_config(config), kind)


def test_backend_from_config_refuses_an_unknown_name():
    """A typo in SMS_BACKEND fails loudly instead of dropping messages."""
    with pytest.raises(ValueError, match="carrier-pigeon"):
        backend_from_config({"SMS_BACKEND": "carrier-pigeon"})


def test_twilio_network_error_is_a_send_failure(monkeypatch):
    """When Twilio cannot be reached, the backend reports SendFailed like any other failure."""
    backend = TwilioBackend(
        {
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "auth-token",
            "TWILIO_TIMEOUT_SECONDS": 1,
            "PUBLIC_BASE_URL": BASE_URL,
        }
    )

    def unreachable(*args, **kwargs):
        raise requests.exceptions.ConnectionError("api.twilio.com unreachable")

    monkeypatch.setattr(backend.client.http_client, "request", unreachable)
    with pytest.raises(SendFailed) as failure:
        backend.send(outgoing())
    assert failure.value.transient


# send_sms


def test_send_sms_logs_one_sent_row_per_message(app_context):
    """Every message sent leaves a row with its status and segments."""
    send_sms(NUMBER, "Hei!", "welcome", NOW)
    send_sms(NUMBER, "a" * 161, "welcome", NOW)
    assert [(row.status, row.segments) for row in logged_messages()] == [("sent", 1), ("sent", 2)]


def test_send_sms_hands_the_message_to_the_backend(app_context, outbox):
    """The file backend of the tests receives the number in E.164 and the body."""
    send_sms(NUMBER, "Hei!", "welcome", NOW)
    assert (outbox.last()["to"], outbox.last()["body"]) == (NUMBER, "Hei!")


def test_send_sms_records_who_what_and_when(app_context):
    """The row names the number, the kind, the backend and the time."""
    send_sms(NUMBER, "Hei!", "welcome", NOW)
    (row,) = logged_messages()
    assert (row.phone_e164, row.kind, row.backend, row.created_at) == (
        NUMBER,
        "welcome",
        "file",
        NOW,
    )


def test_one_time_code_is_sent_but_not_stored(app_context, outbox):
    """The person gets the code; the register keeps only asterisks in its place."""
    body = code_message("482913", "en")
    send_sms(NUMBER, body, "code", NOW, secret="482913")
    (row,) = logged_messages()
    assert outbox.last_code() == "482913"
    assert "482913" not in row.body
    assert row.body.endswith(f"#{REDACTED_CODE}")


def test_failed_send_is_recorded_and_not_raised(app_context, monkeypatch):
    """When the backend fails, the row says failed with the provider's code."""

    def refuse(self, message):
        raise SendFailed("unreachable destination", "30003")

    monkeypatch.setattr(FileBackend, "send", refuse)
    message = send_sms(NUMBER, "Hei!", "welcome", NOW)
    (row,) = logged_messages()
    assert (message.id, row.status, row.error_code) == (row.id, "failed", "30003")


def test_failed_send_writes_nothing_to_the_outbox(app_context, outbox, monkeypatch):
    """A failed message was not delivered anywhere."""

    def refuse(self, message):
        raise SendFailed("queue full")

    monkeypatch.setattr(FileBackend, "send", refuse)
    send_sms(NUMBER, "Hei!", "welcome", NOW)
    assert outbox.messages() == []
