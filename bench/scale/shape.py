"""The synthetic register's shape: numbers, campaigns, browsers, notices and personas."""

from __future__ import annotations

#: Finnish mobile prefixes (after +358), each with 7 more digits: 60 million numbers.
PREFIXES = ("40", "41", "44", "45", "46", "50")
SPAN = 10_000_000
PURPOSES = ("offers", "new_content", "competitions")
TEXT_VERSION = {p: f"{p}-1" for p in PURPOSES}  # the preference page's texts
SIGNUP_TEXT_VERSION = "signup-1"
#: Privacy notice versions over the years: (version, share of the period when it began).
NOTICES = (("2024-01-15", 0.0), ("2025-05-20", 0.45), ("2026-11-25.2", 0.95))
YEARS = 3  # sign-ups spread evenly over the last three years (the proof period)
SMS_LOG_DAYS = 365  # the SMS log keeps a year (RETENTION_SMS_LOG_DAYS)
CAMPAIGNS = (
    ("facebook", "paid_social", "talvi"),
    ("facebook", "paid_social", "joulu"),
    ("instagram", "paid_social", "kesa"),
    ("google", "cpc", "brand"),
    ("google", "cpc", "sarjat"),
    ("tiktok", "paid_social", "uutuudet"),
    ("newsletter", "email", "kevat"),
    (None, None, None),  # organic: no utm parameters
    (None, None, None),
)
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) FxiOS/126.0 Mobile/15E148 Safari/605.1.15",
)
#: Who people are, per 100 sign-ups: (how many, purposes granted at sign-up, what they did
#: since: (source, what)). 25 in 100 have withdrawn everything (STOP by SMS, or support
#: recorded it), so 75 % have a grant in force. Preference-page toggles (a switch turned
#: off and on again) bring the mean number of events up to --events-per-subscriber.
PERSONAS: tuple[tuple[int, tuple[str, ...], tuple[tuple[str, str], ...]], ...] = (
    (30, PURPOSES, ()),
    (15, ("offers",), ()),
    (10, ("offers", "new_content"), ()),
    (12, PURPOSES, (("preference_page", "withdraw_one"),)),
    (12, PURPOSES, (("sms_keyword", "withdraw_all"),)),
    (9, ("offers",), (("sms_keyword", "withdraw_all"),)),
    (4, ("offers", "new_content"), (("staff", "withdraw_all"),)),
    (8, ("offers",), (("preference_page", "grant_one"),)),
)
BLOCK = sum(weight for weight, _, _ in PERSONAS)  # 100


def events_of(signup: tuple[str, ...], since: tuple[tuple[str, str], ...]) -> int:
    """A persona's events: its sign-up grants, then one per change (all its grants for a
    withdraw_all)."""
    return len(signup) + sum(len(signup) if what == "withdraw_all" else 1 for _, what in since)


#: Events per block of 100 people before the toggles.
BASE_EVENTS = sum(weight * events_of(signup, since) for weight, signup, since in PERSONAS)


def phone_of(index: int) -> str:
    """The number at ``index`` of the 60 million (+35840..., +35841..., ...)."""
    return f"+358{PREFIXES[index // SPAN]}{index % SPAN:07d}"
