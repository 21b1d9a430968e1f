"""Every wording a consent is given under has its own version, kept for good."""

from __future__ import annotations

import hashlib

from viihde.register import purposes
from viihde.register.notices import (
    CONSENT_TEXTS,
    CUSTOMER_TEXT_VERSION,
    SIGNUP_TEXT_VERSION,
    SMS_START_TEXT_VERSION,
)

#: The fingerprint of each consent text version's (English source) wording. A new
#: wording is a new version in viihde/notices.py and a new line here; old lines stay,
#: because consent events and receipts keep the version they were given under.
FINGERPRINTS = {
    "signup-1": "2b696e46688b2ed3",
    "offers-1": "ab0ff1ccc38cc191",
    "new_content-1": "6205dcf5c8622ded",
    "competitions-1": "a887075dea17526e",
    "sms-start-1": "82edb6e3820baa69",
    "customer-1": "90062834b62d4d65",
}


def fingerprint(version: str) -> str:
    return hashlib.sha256(CONSENT_TEXTS[version]._args[0].encode()).hexdigest()[:16]


def test_no_consent_wording_is_edited_in_place():
    """Changing a wording without a new version fails here."""
    changed = [v for v, expected in FINGERPRINTS.items() if fingerprint(v) != expected]
    assert changed == [], "add a new version instead of editing these: " + ", ".join(changed)


def test_old_versions_are_never_removed():
    """Events and receipts refer to every version ever in force."""
    assert set(FINGERPRINTS) <= set(CONSENT_TEXTS)


def test_every_version_in_force_has_a_fingerprint():
    """A new version is recorded here, so it cannot later change silently."""
    in_force = {SIGNUP_TEXT_VERSION, SMS_START_TEXT_VERSION, CUSTOMER_TEXT_VERSION} | {
        p.text_version for p in purposes.CATALOGUE.values()
    }
    assert in_force <= set(FINGERPRINTS)
