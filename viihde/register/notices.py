"""The texts a consent is given under, and their versions.

Every consent event records the versions in force when it was given, and the
receipt shows the wording of that version, so old versions stay here for good.
Change a wording by adding a new version; ``tests/test_notices.py`` holds the
fingerprint of every version's wording and fails when one is edited in place.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

#: The privacy notice page (templates/pages/privacy.html) in force.
PRIVACY_NOTICE_VERSION = "2026-11-25.2"

#: The sign-up checkbox: one consent to all the configured purposes.
SIGNUP_TEXT_VERSION = "signup-1"
#: Replying START to our STOP confirmation: consent again to what that STOP withdrew.
SMS_START_TEXT_VERSION = "sms-start-1"
#: Not a consent: what a customer imported from the buyer register is marketed under.
CUSTOMER_TEXT_VERSION = "customer-1"

#: Every consent text ever in force, by version.
CONSENT_TEXTS: dict[str, LazyString] = {
    "signup-1": _l(
        "Yes, send me Viihdepaketti.fi's own marketing by SMS to this number. "
        "I can withdraw my consent at any time, free of charge, with the link in every message."
    ),
    "offers-1": _l("Send me offers and discounts on Viihdepaketti.fi's entertainment by SMS."),
    "new_content-1": _l(
        "Tell me by SMS about new films, series, games and other content on Viihdepaketti.fi."
    ),
    "competitions-1": _l(
        "Invite me by SMS to Viihdepaketti.fi's own competitions and prize draws."
    ),
    # The STOP confirmation a START answers (viihde/sms/texts.py stop_reply).
    "sms-start-1": _l(
        "You will get no more marketing messages from Viihdepaketti.fi. "
        "To get them again, reply START."
    ),
    # The customer-relationship basis (viihde/customers.py): no consent is asked.
    "customer-1": _l(
        "As our customer, you get SMS marketing about Viihdepaketti.fi's own products "
        "similar to what you bought, until you refuse. You can refuse at any time, free of "
        "charge, with the link in every message."
    ),
}


def consent_text(version: str | None) -> LazyString | None:
    """The wording of a consent text version, in the current language (None if unknown)."""
    return CONSENT_TEXTS.get(version or "")


#: The wording people see beside the sign-up checkbox.
SIGNUP_TEXT = CONSENT_TEXTS[SIGNUP_TEXT_VERSION]
