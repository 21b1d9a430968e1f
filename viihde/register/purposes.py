"""The purposes a person can consent to: keys, translated names, and their consent texts.

``CATALOGUE`` lists every purpose the product knows; ``CONSENT_PURPOSES`` in the
configuration picks the ones offered (all of them by default).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from viihde.register.notices import (
    CONSENT_TEXTS,
    CUSTOMER_TEXT_VERSION,
    SIGNUP_TEXT_VERSION,
    SMS_START_TEXT_VERSION,
)


@dataclass(frozen=True)
class Purpose:
    """One kind of marketing message a person can switch on or off."""

    key: str
    name: LazyString
    #: The consent text a grant from the preference page is given under.
    text_version: str

    @property
    def text(self) -> LazyString:
        """The current consent wording for this purpose."""
        return CONSENT_TEXTS[self.text_version]


CATALOGUE: dict[str, Purpose] = {
    purpose.key: purpose
    for purpose in (
        Purpose("offers", _l("Offers"), "offers-1"),
        Purpose("new_content", _l("New content"), "new_content-1"),
        Purpose("competitions", _l("Competitions"), "competitions-1"),
    )
}


def configured() -> tuple[Purpose, ...]:
    """The purposes this installation offers, in the configured order."""
    return tuple(CATALOGUE[key] for key in current_app.config["CONSENT_PURPOSES"])


def configured_keys() -> tuple[str, ...]:
    """The keys of the configured purposes."""
    return tuple(current_app.config["CONSENT_PURPOSES"])


def customer_keys() -> tuple[str, ...]:
    """The configured purposes a customer relationship covers (``CUSTOMER_PURPOSES``: the
    company's own products similar to what was bought), in the configured order."""
    covered = set(current_app.config["CUSTOMER_PURPOSES"])
    return tuple(key for key in configured_keys() if key in covered)


def name(key: str) -> str:
    """A purpose's translated name; an unknown key (a retired purpose) as it is."""
    purpose = CATALOGUE.get(key)
    return str(purpose.name) if purpose else key


def is_outdated_text(version: str | None) -> bool:
    """Was this consent given under a wording that has since been replaced?"""
    current = {SIGNUP_TEXT_VERSION, SMS_START_TEXT_VERSION, CUSTOMER_TEXT_VERSION} | {
        p.text_version for p in CATALOGUE.values()
    }
    return version is not None and version not in current
