"""The test app's settings: the register the session migrated, SMS written to a file, no
Redis (tests that want the queue turn it on), and the cheapest password hashing."""

from __future__ import annotations

SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"
PUBLIC_BASE_URL = "https://viihdepaketti.fi"

#: argon2id at its cheapest: one pass over 8 KiB, microseconds instead of production's
#: tenth of a second a hash (tests/test_config.py checks that production keeps its cost).
CHEAP_PASSWORD_HASH = {
    "PASSWORD_HASH_TIME_COST": 1,
    "PASSWORD_HASH_MEMORY_KIB": 8,
    "PASSWORD_HASH_PARALLELISM": 1,
}


def app_settings(database_uri: str, **overrides) -> dict:
    """What ``create_app`` gets in the tests, with a test's own ``overrides`` on top."""
    return {
        "APP_ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": database_uri,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "SMS_BACKEND": "file",
        # Messages go out inline; the queue tests turn Redis on themselves.
        "REDIS_URL": None,
        **CHEAP_PASSWORD_HASH,
        **overrides,
    }
