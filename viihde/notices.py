"""The texts a consent is given under, and their versions.

Every consent event records the versions in force when it was given. Change a
wording here, bump its version in the same commit: ``tests/test_notices.py``
holds the fingerprint of each version's wording and fails until you do.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

#: The privacy notice page (templates/pages/privacy.html) in force.
PRIVACY_NOTICE_VERSION = "2026-11-25"

#: The consent text beside the sign-up checkbox, and its version.
CONSENT_TEXT_VERSION = "1"
CONSENT_TEXT = _l(
    "Yes, send me Viihdepaketti.fi's own marketing by SMS to this number. "
    "I can withdraw my consent at any time, free of charge, with the link in every message."
)
