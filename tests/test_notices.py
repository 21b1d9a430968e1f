"""Every wording a consent is given under has its own version."""

from __future__ import annotations

import hashlib

from viihde.notices import CONSENT_TEXT, CONSENT_TEXT_VERSION

#: The fingerprint of the consent text's (English source) wording, per version. A new
#: wording gets a new version in viihde/notices.py and a new line here; old lines stay,
#: because consent events keep the version they were given under.
CONSENT_TEXT_FINGERPRINTS = {
    "1": "2b696e46688b2ed3",
}


def test_consent_text_wording_matches_its_version():
    """Changing the consent wording without bumping CONSENT_TEXT_VERSION fails here."""
    wording = CONSENT_TEXT._args[0]
    fingerprint = hashlib.sha256(wording.encode()).hexdigest()[:16]
    assert CONSENT_TEXT_FINGERPRINTS.get(CONSENT_TEXT_VERSION) == fingerprint, (
        "The consent text changed: bump CONSENT_TEXT_VERSION and record its fingerprint "
        f"{fingerprint!r} in CONSENT_TEXT_FINGERPRINTS."
    )
