"""The end of a request that sent a code: commit, send the staged SMS, settle the code."""

from __future__ import annotations

from viihde.clock import utcnow
from viihde.models import Verification
from viihde.register import codes
from viihde.sms import commit_then_send


def commit_and_send_code(verification: Verification) -> None:
    """Commit the request's work, send the code it staged, and settle it: a code that
    could not go raises CodeRefused with its removal staged (the caller commits that)."""
    message_id = verification.sms_message_id
    statuses = commit_then_send(utcnow())
    codes.after_sending(verification, statuses.get(message_id))
