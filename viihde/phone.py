"""Mobile numbers: parse what people type, validate, format and mask.

The only module that knows ``phonenumbers``. Numbers are stored in E.164.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from enum import StrEnum

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType
from phonenumbers import ValidationResult as Possible

#: Longer input than this is not a phone number, whatever it contains.
MAX_INPUT_LENGTH = 32
#: Fewer digits than this (after the country code) cannot be a mobile number anywhere we serve.
MIN_NATIONAL_DIGITS = 7
_SEPARATORS = str.maketrans("", "", " \t-.()/\u00a0")

_MOBILE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
_SERVICE = {
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
    PhoneNumberType.PAGER,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.VOIP,
}


class Refusal(StrEnum):
    """Why a typed number cannot receive our SMS."""

    NOT_A_NUMBER = "not_a_number"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    LANDLINE = "landline"
    SERVICE_NUMBER = "service_number"
    REGION = "region"
    INVALID = "invalid"


class PhoneError(ValueError):
    """A typed number was refused; ``reason`` says why."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


def ascii_digits(text: str) -> str:
    """``text`` with each Unicode decimal digit (fullwidth, Arabic-Indic, ...) as its
    ASCII digit: a phone's keyboard may type any of them, and all mean the digit."""
    return "".join(str(unicodedata.decimal(ch, ch)) for ch in text)


def compact(raw: str | None) -> str:
    """What was typed without the separators people put in numbers, in ASCII digits
    ("040-123 4567" is "0401234567")."""
    return ascii_digits((raw or "").strip().translate(_SEPARATORS))


def parse_mobile(raw: str, allowed_regions: Sequence[str]) -> str:
    """Return the E.164 form of a mobile number of an allowed region, or raise PhoneError."""
    digits = compact(raw)
    if not digits or len((raw or "").strip()) > MAX_INPUT_LENGTH:
        raise PhoneError(Refusal.NOT_A_NUMBER if not digits else Refusal.TOO_LONG)
    if not digits.lstrip("+").isdigit() or digits.count("+") > 1 or "+" in digits[1:]:
        raise PhoneError(Refusal.NOT_A_NUMBER)
    default_region = allowed_regions[0] if allowed_regions else "FI"
    try:
        number = phonenumbers.parse(digits, default_region)
    except NumberParseException as error:
        raise PhoneError(_parse_refusal(error)) from None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in (Possible.TOO_SHORT, Possible.INVALID_LENGTH):
        raise PhoneError(Refusal.TOO_SHORT)
    if possible == Possible.TOO_LONG:
        raise PhoneError(Refusal.TOO_LONG)
    if possible == Possible.INVALID_COUNTRY_CODE:
        international = digits.startswith(("+", "00"))
        raise PhoneError(Refusal.REGION if international else Refusal.TOO_SHORT)
    if not phonenumbers.is_valid_number(number):
        short = len(phonenumbers.national_significant_number(number)) < MIN_NATIONAL_DIGITS
        raise PhoneError(Refusal.TOO_SHORT if short else Refusal.INVALID)
    if phonenumbers.region_code_for_number(number) not in allowed_regions:
        raise PhoneError(Refusal.REGION)
    kind = phonenumbers.number_type(number)
    if kind in _MOBILE:
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if kind == PhoneNumberType.FIXED_LINE:
        raise PhoneError(Refusal.LANDLINE)
    if kind in _SERVICE:
        raise PhoneError(Refusal.SERVICE_NUMBER)
    raise PhoneError(Refusal.INVALID)


def _parse_refusal(error: NumberParseException) -> Refusal:
    if error.error_type == NumberParseException.TOO_SHORT_NSN:
        return Refusal.TOO_SHORT
    if error.error_type == NumberParseException.TOO_LONG:
        return Refusal.TOO_LONG
    if error.error_type == NumberParseException.INVALID_COUNTRY_CODE:
        return Refusal.REGION
    return Refusal.NOT_A_NUMBER


def normalise_e164(raw: str | None) -> str | None:
    """A number as a provider reports it (``+358...``), in E.164; None if it is not one."""
    try:
        number = phonenumbers.parse(raw or "", None)
    except NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def format_display(e164: str) -> str:
    """Format a stored number for staff and the person themself: ``+358 40 1234567``."""
    return phonenumbers.format_number(phonenumbers.parse(e164), PhoneNumberFormat.INTERNATIONAL)


def mask(e164: str | None) -> str:
    """Mask a number for logs and link-reached pages: ``+358 40 *** **67``."""
    if not e164:
        return "-"
    try:
        number = phonenumbers.parse(e164)
    except NumberParseException:
        return "***"
    national = phonenumbers.national_significant_number(number)
    ndc = phonenumbers.length_of_national_destination_code(number)
    head, rest = national[:ndc], national[ndc:]
    if len(rest) < 4:  # too short to show anything of it safely
        head, rest = "", national
    hidden = "*" * (len(rest) - 2) + rest[-2:]
    grouped = f"{hidden[:-4]} {hidden[-4:]}".strip()
    return " ".join(part for part in (f"+{number.country_code}", head, grouped) if part)


def region_of(e164: str) -> str | None:
    """The ISO 3166 region of a stored number."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164))
