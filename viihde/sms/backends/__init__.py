"""Where SMS go: the console and a file for development and tests, Twilio in production."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from viihde.phone import mask


class SendFailed(Exception):
    """The backend could not hand the message over.

    ``code`` is the provider's error code, if any; ``transient`` says a later try may
    succeed (rate limit, provider error, no answer) rather than never (a bad number);
    ``opted_out``, that the recipient opted out of our messages with the provider.
    """

    def __init__(
        self,
        message: str,
        code: str | None = None,
        transient: bool = False,
        opted_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient
        self.opted_out = opted_out


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
