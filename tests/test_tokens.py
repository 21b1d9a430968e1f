"""Signed preference links: they name one subscriber, fit an SMS and reveal nothing."""

from __future__ import annotations

import random
import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viihde import tokens
from viihde.tokens import preference_token, read_preference_token

OLD_KEY = "old-secret-key-that-is-long-enough-0123456789"
NEW_KEY = "new-secret-key-that-is-long-enough-0123456789"
RETIRED_KEY = "retired-secret-key-that-is-long-enough-012345"
LINK_KEY = "k3y0fth3subscr1b3r"
BASE = "https://viihdepaketti.fi/"
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_."


def link_key_is(link_key: str):
    """A register where every subscriber's current link key is ``link_key``."""
    return lambda subscriber_id: link_key


def test_token_reads_back_as_the_subscriber_it_names():
    """A freshly minted token names its subscriber."""
    token = preference_token(42, LINK_KEY, [NEW_KEY])
    assert read_preference_token(token, [NEW_KEY], link_key_is(LINK_KEY)) == 42


def test_rotating_the_link_key_revokes_the_token():
    """A token signed with the subscriber's previous link key no longer reads."""
    token = preference_token(42, LINK_KEY, [NEW_KEY])
    assert read_preference_token(token, [NEW_KEY], link_key_is("rotated-link-key")) is None


def test_token_of_an_unknown_subscriber_reads_as_none():
    """When the register has no such subscriber (erased), the link is dead."""
    token = preference_token(42, LINK_KEY, [NEW_KEY])
    assert read_preference_token(token, [NEW_KEY], lambda subscriber_id: None) is None


def test_register_is_asked_about_the_subscriber_the_token_names():
    """The link key is looked up for the id inside the token."""
    asked = []
    token = preference_token(401234567, LINK_KEY, [NEW_KEY])
    read_preference_token(token, [NEW_KEY], lambda subscriber_id: asked.append(subscriber_id))
    assert asked == [401234567]


def single_character_changes(token: str):
    """Every token that differs from ``token`` in exactly one character."""
    for position, original in enumerate(token):
        for replacement in TOKEN_ALPHABET:
            if replacement != original:
                yield token[:position] + replacement + token[position + 1 :]


def test_every_single_character_change_makes_the_token_unreadable():
    """No one-character edit of a valid token names anybody."""
    token = preference_token(401234567, LINK_KEY, [NEW_KEY])
    readable = [
        tampered
        for tampered in single_character_changes(token)
        if read_preference_token(tampered, [NEW_KEY], link_key_is(LINK_KEY)) is not None
    ]
    assert readable == []


def test_every_truncation_at_the_end_makes_the_token_unreadable():
    """A link cut short anywhere names nobody."""
    token = preference_token(401234567, LINK_KEY, [NEW_KEY])
    cut = [token[:end] for end in range(len(token))]
    assert all(
        read_preference_token(part, [NEW_KEY], link_key_is(LINK_KEY)) is None for part in cut
    )


def test_every_truncation_at_the_start_makes_the_token_unreadable():
    """A link that lost its leading characters names nobody, and reading it never raises."""
    token = preference_token(401234567, LINK_KEY, [NEW_KEY])
    cut = [token[start:] for start in range(1, len(token))]
    assert all(
        read_preference_token(part, [NEW_KEY], link_key_is(LINK_KEY)) is None for part in cut
    )


def test_token_with_extra_characters_is_unreadable():
    """Trailing junk after a pasted link is not accepted."""
    token = preference_token(42, LINK_KEY, [NEW_KEY])
    assert read_preference_token(token + "A", [NEW_KEY], link_key_is(LINK_KEY)) is None


def test_token_signed_with_a_fallback_key_still_reads():
    """After rotating SECRET_KEY, links signed with the old key keep working."""
    token = preference_token(42, LINK_KEY, [OLD_KEY])
    assert read_preference_token(token, [OLD_KEY, NEW_KEY], link_key_is(LINK_KEY)) == 42


def test_token_signed_with_a_key_no_longer_listed_does_not_read():
    """Dropping a key from the fallbacks retires every link it signed."""
    token = preference_token(42, LINK_KEY, [RETIRED_KEY])
    assert read_preference_token(token, [OLD_KEY, NEW_KEY], link_key_is(LINK_KEY)) is None


def test_token_minted_with_the_new_key_reads_while_old_keys_are_listed():
    """New links work during the rotation window too."""
    token = preference_token(42, LINK_KEY, [NEW_KEY])
    assert read_preference_token(token, [OLD_KEY, NEW_KEY], link_key_is(LINK_KEY)) == 42


def test_tokens_are_signed_with_the_newest_key():
    """With [old, new], a token is the same as one minted with the new key alone."""
    assert preference_token(42, LINK_KEY, [OLD_KEY, NEW_KEY]) == preference_token(
        42, LINK_KEY, [NEW_KEY]
    )


def test_token_signed_with_a_secret_key_reads_only_with_that_key():
    """A token from another deployment's key does not read here."""
    token = preference_token(42, LINK_KEY, [OLD_KEY])
    assert read_preference_token(token, [NEW_KEY], link_key_is(LINK_KEY)) is None


def spread_subscriber_ids() -> list[int]:
    """10,000 ids over 1..2**32-1, boundaries and byte-length edges included."""
    edges = [1, 2, 255, 256, 2**16 - 1, 2**16, 2**24 - 1, 2**24, 2**31 - 1, 2**31, 2**32 - 1]
    generator = random.Random(20261125)  # noqa: S311 (a reproducible spread, not a secret)
    spread = generator.sample(range(1, 2**32), 10_000 - len(edges))
    return edges + spread


def test_whole_link_fits_48_characters_for_every_32_bit_subscriber_id():
    """The link stays within 48 characters, so the SMS stays one segment."""
    too_long = [
        subscriber_id
        for subscriber_id in spread_subscriber_ids()
        if len(BASE + preference_token(subscriber_id, LINK_KEY, [NEW_KEY])) > 48
    ]
    assert too_long == []


@pytest.mark.parametrize("subscriber_id", [1, 2**31 - 1])
def test_boundary_subscriber_ids_read_back(subscriber_id):
    """The smallest and largest database ids survive the round trip."""
    token = preference_token(subscriber_id, LINK_KEY, [NEW_KEY])
    assert read_preference_token(token, [NEW_KEY], link_key_is(LINK_KEY)) == subscriber_id


def test_token_does_not_contain_the_subscriber_id_in_digits():
    """An id that looks like a phone number does not show in the link."""
    assert "401234567" not in preference_token(401234567, LINK_KEY, [NEW_KEY])


def test_signature_is_sixteen_base64url_characters():
    """The signature is 96 bits: 16 base64url characters."""
    signature = preference_token(401234567, LINK_KEY, [NEW_KEY]).split(".", 1)[1]
    assert len(signature) == 16
    assert set(signature) <= set(string.ascii_letters + string.digits + "-_")


def test_token_holds_only_the_id_and_the_signature():
    """A token is ``<id>.<signature>`` and nothing else: no number, no name, no date."""
    token = preference_token(401234567, LINK_KEY, [NEW_KEY])
    payload, _signature = token.split(".")
    assert len(payload) <= 8
    assert len(token) == len(payload) + 1 + 16


def test_token_looks_like_the_token_pattern():
    """The URL converter matches every token minted, so no link 404s."""
    pattern = re.compile(tokens.TOKEN_PATTERN)
    assert all(
        pattern.fullmatch(preference_token(subscriber_id, LINK_KEY, [NEW_KEY]))
        for subscriber_id in [1, 255, 256, 2**24, 2**32 - 1]
    )


def test_token_with_undecodable_payload_reads_as_none():
    """A token-shaped path whose id part is not valid base64 names nobody."""
    assert read_preference_token("AAAAA.AAAAAAAAAAAAAAAA", [NEW_KEY], link_key_is(LINK_KEY)) is None


ARBITRARY_TEXT = st.one_of(
    st.text(),
    st.binary().map(lambda raw: raw.decode("latin-1")),
)


@settings(max_examples=500)
@given(text=ARBITRARY_TEXT)
def test_arbitrary_text_reads_as_none(text):
    """Whatever is pasted into the URL, reading never raises and names nobody."""
    assert read_preference_token(text, [NEW_KEY], link_key_is(LINK_KEY)) is None


@settings(max_examples=500)
@given(text=st.from_regex(tokens.TOKEN_PATTERN, fullmatch=True))
def test_arbitrary_token_shaped_text_reads_as_none(text):
    """Text that matches the token pattern but was never signed never raises and names nobody."""
    assert read_preference_token(text, [NEW_KEY], link_key_is(LINK_KEY)) is None


def test_preference_url_is_the_public_base_url_and_a_token(app_context):
    """The link in every SMS starts with PUBLIC_BASE_URL and fits 48 characters."""
    url = tokens.preference_url(2**32 - 1, LINK_KEY)
    assert url.startswith("https://viihdepaketti.fi/")
    assert len(url) <= 48


def test_preference_url_reads_back_with_the_app_keys(app_context):
    """The app's own keys read the token in the URL it built."""
    url = tokens.preference_url(42, LINK_KEY)
    token = url.removeprefix("https://viihdepaketti.fi/")
    assert read_preference_token(token, tokens.secret_keys(), link_key_is(LINK_KEY)) == 42


@pytest.mark.parametrize("subscriber_id", [2**31, 2**32 - 1, 2**40])
def test_ids_beyond_the_database_integer_read_as_none(subscriber_id):
    """A genuine-looking token for an id no row can have is refused before any look-up."""
    token = preference_token(subscriber_id, LINK_KEY, [NEW_KEY])

    def never_called(_id):
        raise AssertionError("looked up an impossible id")

    assert read_preference_token(token, [NEW_KEY], never_called) is None


@settings(max_examples=200)
@given(
    subscriber_id=st.integers(1, tokens.MAX_SUBSCRIBER_ID),
    link_key=st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1),
    keys=st.sampled_from([[NEW_KEY], [OLD_KEY, NEW_KEY], ["ä-unicode-key-0123456789"]]),
)
def test_the_precomputed_signing_makes_itsdangerous_own_token(subscriber_id, link_key, keys):
    """Tokens are signed without a Signer per token (the HMAC of the key worked out once),
    and each is exactly what itsdangerous' Signer makes and reads back."""
    payload = tokens.base64_encode(tokens.int_to_bytes(subscriber_id))
    expected = tokens._signer(keys, link_key).sign(payload).decode()
    assert preference_token(subscriber_id, link_key, keys) == expected
    assert read_preference_token(expected, keys, link_key_is(link_key)) == subscriber_id
