"""Translated explanations of the domain's refusals and outcomes, for every page."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from viihde.phone import Refusal as PhoneRefusal
from viihde.register.codes import CodeRefused, Refusal
from viihde.register.confirmation import CheckResult, Outcome

PHONE_REFUSALS = {
    PhoneRefusal.NOT_A_NUMBER: _l(
        "That does not look like a phone number. Type your mobile number, e.g. 040 123 4567."
    ),
    PhoneRefusal.TOO_SHORT: _l("The number is too short. Check that you typed every digit."),
    PhoneRefusal.TOO_LONG: _l("The number is too long. Check that you typed it right."),
    PhoneRefusal.LANDLINE: _l(
        "That is a landline number. We can only send text messages to a mobile."
    ),
    PhoneRefusal.SERVICE_NUMBER: _l(
        "That is a service or premium-rate number. Please type your own mobile number."
    ),
    PhoneRefusal.REGION: _l("We can only send text messages to Finnish mobile numbers."),
    PhoneRefusal.INVALID: _l("That number is not in use. Check that you typed it right."),
}


def code_refusal(refusal: CodeRefused) -> str:
    """Why no code was sent, and when one can be."""
    if refusal.reason == Refusal.TOO_SOON:
        return ngettext(
            "A code was sent a moment ago. You can ask for a new one in %(num)d second.",
            "A code was sent a moment ago. You can ask for a new one in %(num)d seconds.",
            refusal.retry_after,
        )
    if refusal.reason == Refusal.HOURLY_LIMIT:
        minutes = max(1, round(refusal.retry_after / 60))
        return ngettext(
            "Too many codes were asked for this number. Try again in %(num)d minute.",
            "Too many codes were asked for this number. Try again in %(num)d minutes.",
            minutes,
        )
    if refusal.reason == Refusal.PAUSED:
        return _("Sign-ups are paused for a while. Please try again later.")
    if refusal.reason == Refusal.HELD_BACK:
        minutes = max(1, round(refusal.retry_after / 60))
        return ngettext(
            "We cannot send a code to this number from here just now. "
            "Please try again in %(num)d minute.",
            "We cannot send a code to this number from here just now. "
            "Please try again in %(num)d minutes.",
            minutes,
        )
    if refusal.reason == Refusal.GUESSING:
        return _("Too many wrong codes were typed for this number. Please try again tomorrow.")
    if refusal.reason == Refusal.NUMBER_REFUSED:
        return _("This number cannot receive text messages, so no code was sent. Check the number.")
    return _("We could not send the code just now. Please try again in a moment.")


def code_refusal_headers(refusal: CodeRefused) -> dict[str, str]:
    """Retry-After, when the refusal is a 429 or 503 that knows when a code can go."""
    if code_refusal_status(refusal) != 400 and refusal.retry_after > 0:
        return {"Retry-After": str(refusal.retry_after)}
    return {}


def code_refusal_status(refusal: CodeRefused) -> int:
    """400 when the number cannot receive texts; 429 for a limit on this visitor or number;
    503 when sending itself is down or paused."""
    if refusal.reason == Refusal.NUMBER_REFUSED:
        return 400
    return 503 if refusal.reason in (Refusal.SEND_FAILED, Refusal.PAUSED) else 429


def code_outcome(result: CheckResult) -> str:
    """Why a typed code did not work."""
    if result.outcome == Outcome.WRONG:
        return ngettext(
            "That code is not right. You have %(num)d try left.",
            "That code is not right. You have %(num)d tries left.",
            result.attempts_left,
        )
    if result.outcome == Outcome.EXPIRED:
        return _("The code has expired. Ask for a new code below.")
    return _("Too many wrong tries, so this code no longer works. Ask for a new code below.")


def code_not_delivered(reason: Refusal) -> str:
    """The SMS with the code could not be delivered (known after the page was shown)."""
    if reason == Refusal.NUMBER_REFUSED:
        return _(
            "We could not deliver the code: this number cannot receive text messages. "
            "Check the number."
        )
    return _(
        "We could not deliver the code to your number. Check the number or ask for a new code."
    )
