"""Plain-language names for the register's codes, for the person and for staff: each
member of the enums people read (``ConsentSource``, ``LawfulBasis``, ``SmsKind``) has one."""

from __future__ import annotations

from datetime import date, datetime

from babel import Locale
from flask import Flask
from flask_babel import format_date, format_datetime, get_locale
from flask_babel import lazy_gettext as _l

from viihde.models import ConsentSource, LawfulBasis, SmsKind
from viihde.phone import format_display
from viihde.register import consent, purposes
from viihde.register.notices import consent_text

SOURCES = {
    ConsentSource.SIGNUP: _l("Sign-up form"),
    ConsentSource.PREFERENCE_PAGE: _l("Preference page"),
    ConsentSource.SMS_KEYWORD: _l("Reply by SMS"),
    ConsentSource.STAFF: _l("Customer service"),
    ConsentSource.CLI: _l("Customer service"),
    ConsentSource.REGISTER_UPDATE: _l("Register update"),
    ConsentSource.CUSTOMER_IMPORT: _l("Customer register"),
    ConsentSource.CUSTOMER_RELATIONSHIP_ENDED: _l("Customer relationship ended"),
}
#: The lawful basis of a consent event (see ``ConsentEvent.basis``).
BASES = {
    LawfulBasis.CONSENT: _l("Consent"),
    LawfulBasis.CUSTOMER: _l("Customer relationship"),
}
ACTIONS = {"grant": _l("Consent given"), "withdraw": _l("Consent withdrawn")}
#: The same, when the basis is a customer relationship: no consent was asked.
CUSTOMER_ACTIONS = {
    "grant": _l("Customer marketing started"),
    "withdraw": _l("Customer marketing refused"),
}
#: A customer grant the system withdrew (the purchase is too long ago, or the number
#: passed to a new holder): nobody refused it.
CUSTOMER_ENDED = _l("Customer marketing ended")
#: A campaign's status (``models.CAMPAIGN_STATUSES``).
CAMPAIGN_STATUSES = {
    "draft": _l("Draft"),
    "sending": _l("Sending"),
    "paused": _l("Paused"),
    "finished": _l("Finished"),
    "cancelled": _l("Cancelled"),
}
SMS_KINDS = {
    SmsKind.CODE: _l("Confirmation code"),
    SmsKind.WELCOME: _l("Welcome message"),
    SmsKind.LINK: _l("New preference link"),
    SmsKind.REPLY: _l("Answer to your text message"),
    SmsKind.TEST: _l("Test message"),
    SmsKind.CAMPAIGN: _l("Marketing message"),
    SmsKind.CAMPAIGN_TEST: _l("Campaign test message"),
}
SMS_STATUSES = {
    "queued": _l("Waiting to be sent"),
    "sending": _l("Being sent"),
    "sent": _l("Sent"),
    "delivered": _l("Delivered"),
    "undelivered": _l("Not delivered"),
    "failed": _l("Sending failed"),
}


def label(table: dict, key: str | None) -> str:
    """The label of ``key`` in ``table``, or the key itself if it has none."""
    return str(table.get(key or "", key or ""))


def purpose_name(key: str) -> str:
    """A purpose's translated name."""
    return purposes.name(key)


def local_time(value: datetime | str | None) -> str:
    """A stored UTC time (or its ISO string) in Helsinki time, in the page's language."""
    if not value:
        return "–"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return format_datetime(moment, "short")


def local_date(value: date | str | None) -> str:
    """A day (or its ISO string) in the page's language."""
    if not value:
        return "–"
    return format_date(date.fromisoformat(value) if isinstance(value, str) else value, "short")


def language_name(code: str | None) -> str:
    """A language code as its name in the page's language (``fi`` -> "suomi")."""
    if not code:
        return "–"
    return Locale.parse(code).get_display_name(get_locale()) or code


def action_label(key: str | None, basis: str | None = None, source: str | None = None) -> str:
    """What an event did, in the words of its basis (and of its source, when the system
    ended a customer grant)."""
    ended_by_the_system = source in consent.ENDED_BY_THE_SYSTEM
    if key == consent.WITHDRAW and basis == LawfulBasis.CUSTOMER and ended_by_the_system:
        return str(CUSTOMER_ENDED)
    return label(CUSTOMER_ACTIONS if basis == LawfulBasis.CUSTOMER else ACTIONS, key)


def register_filters(app: Flask) -> None:
    """Make the labels available to templates as filters (and the bases, to compare)."""
    app.jinja_env.globals["LawfulBasis"] = LawfulBasis
    app.jinja_env.filters.update(
        action_label=action_label,
        source_label=lambda key: label(SOURCES, key),
        basis_label=lambda key: label(BASES, key),
        sms_kind_label=lambda key: label(SMS_KINDS, key),
        campaign_status=lambda key: label(CAMPAIGN_STATUSES, key),
        sms_status_label=lambda key: label(SMS_STATUSES, key),
        purpose_name=purpose_name,
        outdated_text=purposes.is_outdated_text,
        consent_text=consent_text,
        local_time=local_time,
        local_date=local_date,
        language_name=language_name,
        phone=format_display,
    )
