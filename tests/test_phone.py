"""Mobile numbers: what people type, why a number is refused, and how it is shown."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viihde import phone
from viihde.phone import PhoneError, Refusal

FINLAND = ["FI"]
E164 = re.compile(r"^\+\d{8,15}$")


def refusal(raw: str, allowed_regions: list[str] = FINLAND) -> Refusal:
    """The reason parse_mobile gives for refusing ``raw``."""
    with pytest.raises(PhoneError) as refused:
        phone.parse_mobile(raw, allowed_regions)
    return refused.value.reason


@pytest.mark.parametrize(
    "typed",
    [
        "040 123 4567",
        "0401234567",
        "+358 40 123 4567",
        "00358401234567",
        "+358401234567",
        "040-123 45 67",
        "(040) 123.4567",
    ],
)
def test_what_people_type_is_stored_in_e164(typed):
    """Spaces, dashes, brackets, dots and both international prefixes give one E.164 form."""
    assert phone.parse_mobile(typed, FINLAND) == "+358401234567"


def test_surrounding_whitespace_is_ignored():
    """A number pasted with spaces or a newline around it is still the number."""
    assert phone.parse_mobile("  040 123 4567\n", FINLAND) == "+358401234567"


@pytest.mark.parametrize("typed", ["abc", "", "   ", "040 123 456x", "+358+40 123 4567"])
def test_text_that_is_not_a_number_is_refused_as_not_a_number(typed):
    """Letters, nothing at all, or a stray plus sign are not a number."""
    assert refusal(typed) is Refusal.NOT_A_NUMBER


def test_none_is_refused_as_not_a_number():
    """A missing form field is refused, not crashed on."""
    assert refusal(None) is Refusal.NOT_A_NUMBER


@pytest.mark.parametrize("typed", ["040 12", "040", "+358 40"])
def test_short_number_is_refused_as_too_short(typed):
    """A Finnish mobile prefix with too few digits after it is too short."""
    assert refusal(typed) is Refusal.TOO_SHORT


@pytest.mark.parametrize("typed", ["0401234567890123", "+358 40 123456789012", "1" * 33])
def test_long_digit_string_is_refused_as_too_long(typed):
    """More digits than any number has is too long."""
    assert refusal(typed) is Refusal.TOO_LONG


def test_helsinki_landline_is_refused_as_landline():
    """A fixed line cannot receive SMS."""
    assert refusal("09 1234 567") is Refusal.LANDLINE


@pytest.mark.parametrize("typed", ["0600 12345", "0800 123456", "0100 1234", "020 1234567"])
def test_premium_and_toll_free_numbers_are_refused_as_service_numbers(typed):
    """Premium-rate, toll-free and shared-cost numbers are not people."""
    assert refusal(typed) is Refusal.SERVICE_NUMBER


def test_swedish_mobile_is_refused_when_only_finland_is_served():
    """A valid mobile of a region we do not serve is refused for its region."""
    assert refusal("+46 70 123 45 67") is Refusal.REGION


def test_swedish_mobile_is_accepted_when_sweden_is_served():
    """Adding SE to the allowed regions lets Swedish mobiles in."""
    assert phone.parse_mobile("+46 70 123 45 67", ["FI", "SE"]) == "+46701234567"


def test_aland_number_is_refused_when_only_finland_is_served():
    """Åland has its own region code (AX) and is refused unless allowed."""
    assert refusal("+358 18 12345") is Refusal.REGION


def test_us_toll_free_number_is_refused_for_its_region():
    """The region check comes before the kind of number."""
    assert refusal("+1 800 555 0100") is Refusal.REGION


def test_number_in_an_unused_finnish_range_is_refused_as_invalid():
    """A Finnish-looking number of the right length in no allocated range is invalid."""
    assert refusal("+358 75 1234567") is Refusal.INVALID


def test_refusal_is_a_value_error_named_by_its_reason():
    """Callers can catch ValueError and show a message keyed by the reason."""
    with pytest.raises(ValueError, match=r"^landline$"):
        phone.parse_mobile("09 1234 567", FINLAND)


def test_mask_hides_the_subscriber_part_but_the_last_two_digits():
    """The masked form shows country code, operator prefix and the last two digits."""
    assert phone.mask("+358401234567") == "+358 40 *** **67"


def test_mask_of_no_number_is_a_dash():
    """A row without a number is shown as a dash."""
    assert phone.mask(None) == "-"


def test_mask_of_garbage_shows_nothing_of_it():
    """Something that does not parse is fully hidden."""
    assert phone.mask("not a number") == "***"


def test_format_display_groups_country_and_operator():
    """Staff and the person themself see the international format."""
    assert phone.format_display("+358401234567") == "+358 40 1234567"


def test_region_of_a_stored_number():
    """A stored number knows its region."""
    assert phone.region_of("+46701234567") == "SE"


def assert_mask_shows_at_most_two_subscriber_digits(e164: str) -> None:
    """Everything from the first '*' on shows at most the last two digits of the number."""
    masked = phone.mask(e164)
    digits = re.sub(r"\D", "", e164)
    hidden_part = masked[masked.index("*") :]
    visible_prefix = re.sub(r"\D", "", masked[: masked.index("*")])
    assert re.sub(r"\D", "", hidden_part) == digits[-2:]
    assert digits.startswith(visible_prefix)
    assert len(visible_prefix) + masked.count("*") + 2 == len(digits)


@pytest.mark.parametrize(
    "e164", ["+358401234567", "+358401234", "+3584571234567", "+46701234567", "+4917612345678"]
)
def test_masked_number_never_shows_more_than_the_last_two_digits(e164):
    """Short and long subscriber parts alike are hidden but their last two digits."""
    assert_mask_shows_at_most_two_subscriber_digits(e164)


NUMBERISH = st.one_of(
    st.from_regex(r"\A[0-9 +\-().]{0,40}\Z"),
    st.from_regex(r"\A(\+|00)?358 ?[0-9 ]{0,16}\Z"),
    st.from_regex(r"\A0[0-9 ]{0,14}\Z"),
)
MOBILE_LIKE = st.one_of(
    st.from_regex(r"\A0(40|41|44|45|46|50)[0-9]{4,8}\Z"),
    st.from_regex(r"\A\+3584[0-9]{5,10}\Z"),
    st.from_regex(r"\A\+467[02369][0-9]{7}\Z"),
)
ANY_TEXT = st.one_of(
    st.text(),
    NUMBERISH,
    st.text(alphabet="0123456789 +", min_size=33, max_size=2000),
    st.text(min_size=1000, max_size=5000),
)


@settings(max_examples=500)
@given(typed=ANY_TEXT)
def test_parse_mobile_returns_e164_or_refuses_for_any_text(typed):
    """Whatever is typed, the answer is an E.164 number or a PhoneError, nothing else."""
    try:
        stored = phone.parse_mobile(typed, ["FI", "SE"])
    except PhoneError as refused:
        assert isinstance(refused.reason, Refusal)
    else:
        assert E164.fullmatch(stored)


@settings(max_examples=500)
@given(typed=st.one_of(MOBILE_LIKE, NUMBERISH))
def test_mask_never_raises_for_an_accepted_number(typed):
    """Every number parse_mobile accepts can be masked, keeping only two subscriber digits."""
    try:
        stored = phone.parse_mobile(typed, ["FI", "SE"])
    except PhoneError:
        return
    assert_mask_shows_at_most_two_subscriber_digits(stored)
