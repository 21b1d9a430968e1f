"""Where SMS go: the console and a file for development and tests, Twilio in production."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from requests import RequestException
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from ..phone import mask


class SendFailed(Exception):
    """The backend could not hand the message over; ``code`` is the provider's, if any."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Outgoing:
    """A message ready to go."""

    to: str
    body: str
    sender: str | None
    kind: str
    created_at: datetime


class Backend(Protocol):
    name: str

    def send(self, message: Outgoing) -> str | None:
        """Send the message; return the provider's id for it, if any."""


class ConsoleBackend:
    """Prints each message to standard output (numbers masked): the ``make run`` default."""

    name = "console"

    def send(self, message: Outgoing) -> str | None:
        print(
            f"\n--- SMS to {mask(message.to)} from {message.sender or '-'} ({message.kind}) ---\n"
            f"{message.body}\n--- end of SMS ---",
            file=sys.stdout,
            flush=True,
        )
        return None


class FileBackend:
    """Appends one JSON object per message to a file (``to`` in E.164, ``body``)."""

    name = "file"

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def send(self, message: Outgoing) -> str | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "to": message.to,
            "from": message.sender,
            "body": message.body,
            "kind": message.kind,
            "sent_at": message.created_at.isoformat(),
        }
        with self.path.open("a", encoding="utf-8") as outbox:
            outbox.write(json.dumps(record, ensure_ascii=False) + "\n")
        return None


class TwilioBackend:
    """Sends through Twilio's REST API with the official SDK."""

    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, messaging_service_sid: str | None):
        self.client = Client(account_sid, auth_token)
        self.messaging_service_sid = messaging_service_sid

    def send(self, message: Outgoing) -> str | None:
        options = {"to": message.to, "body": message.body}
        if self.messaging_service_sid:
            options["messaging_service_sid"] = self.messaging_service_sid
        else:
            options["from_"] = message.sender
        try:
            return self.client.messages.create(**options).sid
        except TwilioRestException as error:
            raise SendFailed(str(error.msg), str(error.code or error.status)) from None
        except (TwilioException, RequestException) as error:  # RequestException: no answer
            raise SendFailed(type(error).__name__) from None


def backend_from_config(config: dict) -> Backend:
    """The backend that ``SMS_BACKEND`` names."""
    name = config["SMS_BACKEND"]
    if name == "console":
        return ConsoleBackend()
    if name == "file":
        return FileBackend(config["SMS_OUTBOX_PATH"])
    if name == "twilio":
        return TwilioBackend(
            config["TWILIO_ACCOUNT_SID"],
            config["TWILIO_AUTH_TOKEN"],
            config["TWILIO_MESSAGING_SERVICE_SID"],
        )
    raise ValueError(f"unknown SMS_BACKEND {name!r} (console, file or twilio)")
