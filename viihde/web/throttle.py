"""Rate limits on everything that sends a code by SMS (``viihde.web.ratelimits``), shared
by the landing form, the resend button and the step-up page.

Counted per client (an IPv4 address or an IPv6 /64), per number, per number block
(all but the last three digits: pumping walks through neighbouring numbers), per
country, and overall. Numbers reach the counters only as keyed hashes. Only
requests that sent a code count (the view says so with ``count_sent_code``); one over a
limit gets 429 before anything is sent. A request that names no valid number is not
counted against any number, block or country: it cannot send to one. All of a request's
limits are tested and counted in one Redis round trip, and given back in one more when no
code went.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, g, request

from viihde.hashing import keyed_hash
from viihde.phone import PhoneError, region_of
from viihde.register.codes import pending_verification
from viihde.register.lookup import subscriber_by_id
from viihde.web import browser
from viihde.web.ratelimits import Rule, limited
from viihde.web.request import client_key, typed_number

#: Where ``target_number`` keeps its answer for the request it worked it out for.
_TARGET_NUMBER = "viihde_target_number"
#: Where a view notes that it sent a code (with the request it belongs to).
_SENT = "viihde_code_sent"


def target_number() -> str | None:
    """The number this request would send a code to, if it can be told.

    Worked out once per request: every limit asks for it, before the view and after it.
    Kept on ``g`` with the request it belongs to, since requests made inside one app
    context (a test's) share ``g``.
    """
    current = request._get_current_object()
    kept = g.get(_TARGET_NUMBER)
    if kept is not None and kept[0] is current:
        return kept[1]
    number = _target_number()
    setattr(g, _TARGET_NUMBER, (current, number))
    return number


def _target_number() -> str | None:
    if request.endpoint == "signup.submit":
        try:
            return typed_number(request.form.get("phone", ""))
        except PhoneError:
            return None
    if request.endpoint == "preferences.send_code":
        held = browser.linked()
        subscriber = subscriber_by_id(held[0]) if held else None
        return subscriber.phone_e164 if subscriber else None
    verification = pending_verification(browser.pending_id())
    return verification.phone_e164 if verification else None


def _ip() -> str:
    return "ip:" + client_key()


def _number() -> str:
    return "number:" + keyed_hash("limit", target_number())


def _block() -> str:
    return "block:" + keyed_hash("limit", target_number()[:-3])


def _country() -> str:
    return "country:" + region_of(target_number())


def _everyone() -> str:
    return "all"


def _no_number() -> bool:
    """No valid number: no number's, block's or country's limit applies (nothing is sent)."""
    return target_number() is None


def count_sent_code() -> None:
    """The view sent a code in this request: it counts against every limit."""
    setattr(g, _SENT, request._get_current_object())


def _sent_a_code(response) -> bool:
    return g.get(_SENT) is request._get_current_object()


def _limit(setting: str) -> Callable[[], str]:
    return lambda: current_app.config[setting]


#: The limits every code-sending view carries, by setting.
CODE_SENDING = (
    Rule(_limit("SMS_LIMIT_PER_IP"), "sms-ip", _ip),
    Rule(_limit("SMS_LIMIT_PER_NUMBER"), "sms-number", _number, _no_number),
    Rule(_limit("SMS_LIMIT_PER_BLOCK"), "sms-block", _block, _no_number),
    Rule(_limit("SMS_LIMIT_PER_COUNTRY"), "sms-country", _country, _no_number),
    Rule(_limit("SMS_LIMIT_GLOBAL"), "sms-all", _everyone),
)


def code_sending(view):
    """Apply every SMS limit to a view that sends a code (it calls ``count_sent_code``)."""
    return limited(*CODE_SENDING, counts=_sent_a_code)(view)
