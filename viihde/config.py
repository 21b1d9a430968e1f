"""Every setting, its default and the environment variable that sets it.

The rest of the code reads ``current_app.config`` (or receives values as
arguments); nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
from datetime import time
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

#: The development key: good enough on a laptop, refused anywhere else.
# Not a secret: the app refuses this key outside development.
DEV_SECRET_KEY = "dev-only-insecure-key-change-me"  # noqa: S105  # nosec B105
MIN_SECRET_KEY_LENGTH = 32
#: Where `make run` serves; production must name its own address.
DEV_PUBLIC_BASE_URL = "http://127.0.0.1:5000"
#: The values of APP_ENV; any other refuses to start.
ENVIRONMENTS = ("development", "testing", "production")
#: A PUBLIC_BASE_URL on these may be plain HTTP in production: no phone reaches it (the
#: benchmarks run the production settings there).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: OWASP's minimum for argon2id (19 MiB of memory, 2 passes): below it only in development
#: and in the tests, which hash at the cheapest cost.
MIN_PASSWORD_HASH_MEMORY_KIB = 19 * 1024
MIN_PASSWORD_HASH_TIME_COST = 2


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in (_env(name, default) or "").split(",") if item.strip()]


#: The register's file when DATABASE_URL is unset (make run): never production's.
DEFAULT_SQLITE_FILE = "viihde.sqlite3"


def database_url(url: str | None, instance_path: str) -> str:
    """Normalise ``DATABASE_URL``; default to an SQLite register under ``instance/``."""
    if not url:
        return "sqlite:///" + str(Path(instance_path) / DEFAULT_SQLITE_FILE)
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class ConfigError(RuntimeError):
    """The configuration is unsafe for the environment it runs in."""


def from_environment(instance_path: str) -> dict:
    """Build the configuration mapping from environment variables."""
    app_env = _env("APP_ENV", "production")
    production = app_env == "production"
    return {
        # "development" (make run), "testing" (the suite) or "production" (the default,
        # so that a forgotten variable fails safe).
        "APP_ENV": app_env,
        # Signs sessions, CSRF tokens and preference links. Required outside development.
        "SECRET_KEY": _env("SECRET_KEY", DEV_SECRET_KEY),
        # Previous keys, comma-separated, still accepted while links signed with them age out.
        "SECRET_KEY_FALLBACKS": _env_list("SECRET_KEY_FALLBACKS", ""),
        # Keys the hashes of codes and erased numbers. Set it once and never rotate it,
        # or tombstones stop matching. Required in production; SECRET_KEY elsewhere.
        "HASH_KEY": _env("HASH_KEY"),
        # The register: SQLite under instance/ by default, PostgreSQL in production.
        "SQLALCHEMY_DATABASE_URI": database_url(_env("DATABASE_URL"), instance_path),
        # No ping before each connection is lent (a round trip on every request): the pool
        # replaces connections after half an hour, one the server dropped is thrown away
        # on first use (SQLAlchemy invalidates it), and a read retries once on a new one
        # (models/statements.py, read_once).
        # hide_parameters: a database error's text (logged with its traceback) does not
        # list the statement's values, numbers among them.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 1800, "hide_parameters": True},
        # How long a migration waits for a table's lock before it fails (PostgreSQL's
        # lock_timeout; run it again later): meanwhile every request behind it waits too.
        "MIGRATION_LOCK_TIMEOUT": _env("MIGRATION_LOCK_TIMEOUT", "10s"),
        # How many reverse proxies stand in front of the app (0: none). Each one's
        # X-Forwarded-For/-Proto is then trusted (werkzeug ProxyFix), never more.
        "PROXY_COUNT": int(_env("PROXY_COUNT", "0")),
        # Where people reach the app; links in SMS, the WebOTP line and the URL Twilio
        # signs its webhooks for are all built from it (never from the Host header).
        "PUBLIC_BASE_URL": (_env("PUBLIC_BASE_URL", DEV_PUBLIC_BASE_URL) or "").rstrip("/"),
        # console | file | twilio (the default in production; console elsewhere)
        "SMS_BACKEND": _env("SMS_BACKEND", "twilio" if production else "console"),
        # The file backend appends one JSON object per message here.
        "SMS_OUTBOX_PATH": _env("SMS_OUTBOX_PATH", str(Path(instance_path) / "sms-outbox.jsonl")),
        # The sender shown on the phone: an authorised alphanumeric ID (at most 11
        # characters, cannot take replies) or a number in E.164 (can take STOP replies).
        "TWILIO_FROM": _env("TWILIO_FROM", "Viihde"),
        "TWILIO_ACCOUNT_SID": _env("TWILIO_ACCOUNT_SID"),
        "TWILIO_AUTH_TOKEN": _env("TWILIO_AUTH_TOKEN"),
        "TWILIO_MESSAGING_SERVICE_SID": _env("TWILIO_MESSAGING_SERVICE_SID"),
        # Keep message data in Twilio's EU region (Ireland): TWILIO_REGION=ie1, TWILIO_EDGE=dublin.
        "TWILIO_REGION": _env("TWILIO_REGION"),
        "TWILIO_EDGE": _env("TWILIO_EDGE"),
        # Unset in production: points the SDK at a stand-in of the Twilio REST API.
        "TWILIO_API_BASE_URL": _env("TWILIO_API_BASE_URL"),
        # How long to wait for Twilio's answer before counting the send as failed (seconds).
        "TWILIO_TIMEOUT_SECONDS": float(_env("TWILIO_TIMEOUT_SECONDS", "10")),
        # How often each worker sweeps the outbox for SMS whose job was lost (0: never).
        "SMS_SWEEP_SECONDS": float(_env("SMS_SWEEP_SECONDS", "60")),
        # Seconds between the retries of a send that failed for a passing reason.
        "SMS_RETRY_INTERVALS": [int(s) for s in _env_list("SMS_RETRY_INTERVALS", "10,30,120,300")],
        # The SMS budget: all code sending pauses when this many SMS went out in the last
        # hour or day (the only thing that pauses everyone).
        "SMS_HOURLY_LIMIT": int(_env("SMS_HOURLY_LIMIT", "500")),
        # Answers to STOP, START and HELP one number gets in an hour (then: acted on, unanswered).
        "SMS_REPLIES_PER_NUMBER_PER_HOUR": int(_env("SMS_REPLIES_PER_NUMBER_PER_HOUR", "3")),
        "SMS_DAILY_LIMIT": int(_env("SMS_DAILY_LIMIT", "3000")),
        # The sign-up breaker (``budget``): a client network or number range whose latest
        # sign-up codes of the last hour (at most SAMPLE of them) are at least MIN_SAMPLE,
        # fewer than FLOOR of them confirmed, gets one sign-up code per TIGHTENED_INTERVAL
        # until that changes.
        "CONFIRMATION_RATE_FLOOR": float(_env("CONFIRMATION_RATE_FLOOR", "0.2")),
        "CONFIRMATION_RATE_MIN_SAMPLE": int(_env("CONFIRMATION_RATE_MIN_SAMPLE", "30")),
        "CONFIRMATION_RATE_SAMPLE": int(_env("CONFIRMATION_RATE_SAMPLE", "200")),
        "SMS_TIGHTENED_INTERVAL_SECONDS": int(_env("SMS_TIGHTENED_INTERVAL_SECONDS", "600")),
        # Wrong codes for one number in 24 hours before its sign-up pauses for a day.
        "CODE_MAX_WRONG_PER_DAY": int(_env("CODE_MAX_WRONG_PER_DAY", "10")),
        # Rate limits on sending codes (the `limits` notation), per visitor address, per
        # number, per number block (all but the last 3 digits), per country, and overall.
        "SMS_LIMIT_PER_IP": _env("SMS_LIMIT_PER_IP", "5 per hour;20 per day"),
        "SMS_LIMIT_PER_NUMBER": _env("SMS_LIMIT_PER_NUMBER", "3 per hour;6 per day"),
        "SMS_LIMIT_PER_BLOCK": _env("SMS_LIMIT_PER_BLOCK", "10 per hour"),
        "SMS_LIMIT_PER_COUNTRY": _env("SMS_LIMIT_PER_COUNTRY", "300 per hour"),
        "SMS_LIMIT_GLOBAL": _env("SMS_LIMIT_GLOBAL", "600 per hour"),
        # The consent purposes offered, from viihde/purposes.py's catalogue, in page order.
        "CONSENT_PURPOSES": _env_list("CONSENT_PURPOSES", "offers,new_content,competitions"),
        # How long the register keeps things (shown on the privacy notice page).
        "RETENTION_PENDING_HOURS": int(_env("RETENTION_PENDING_HOURS", "24")),
        "RETENTION_SMS_LOG_DAYS": int(_env("RETENTION_SMS_LOG_DAYS", "365")),
        "RETENTION_PROOF_MONTHS": int(_env("RETENTION_PROOF_MONTHS", "36")),
        # Campaigns: no marketing SMS in these hours (Europe/Helsinki, "HH:MM-HH:MM"; an
        # empty value turns them off), at most this many messages a second, and the
        # price of one SMS segment for the cost estimate (euros).
        "CAMPAIGN_QUIET_HOURS": _env("CAMPAIGN_QUIET_HOURS", "21:00-09:00"),
        "CAMPAIGN_MESSAGES_PER_SECOND": float(_env("CAMPAIGN_MESSAGES_PER_SECOND", "10")),
        "SMS_SEGMENT_PRICE_EUR": _env("SMS_SEGMENT_PRICE_EUR", "0.08"),
        # Test messages an admin may send to their own phone (the `limits` notation).
        "CAMPAIGN_TEST_SEND_LIMIT": _env("CAMPAIGN_TEST_SEND_LIMIT", "10 per hour"),
        # Customers (the customer-relationship basis): which purposes count as the
        # company's own similar products, and how long after a purchase it lasts.
        "CUSTOMER_PURPOSES": _env_list("CUSTOMER_PURPOSES", "offers,new_content"),
        "CUSTOMER_RELATIONSHIP_MONTHS": int(_env("CUSTOMER_RELATIONSHIP_MONTHS", "24")),
        # The processor that delivers SMS, named on the privacy notice page.
        "SMS_PROVIDER_NAME": _env("SMS_PROVIDER_NAME", "Twilio Ireland Limited"),
        # A step-up (a fresh code, or a sign-up in this browser) lasts this long.
        "STEP_UP_SECONDS": int(_env("STEP_UP_SECONDS", "600")),
        # Country codes (ISO 3166) whose mobile numbers we serve.
        "ALLOWED_REGIONS": [r.upper() for r in _env_list("ALLOWED_REGIONS", "FI")],
        # Rate limits and the SMS queue in production; unset means in-process.
        "REDIS_URL": _env("REDIS_URL"),
        # One-time codes. Their length is fixed (the limits on tries below are weighed
        # against a million codes); the forms, pages and texts read it, and the lifetime,
        # from here. Then seconds and counts.
        "CODE_DIGITS": 6,
        "CODE_TTL_SECONDS": int(_env("CODE_TTL_SECONDS", "600")),
        "CODE_MAX_ATTEMPTS": int(_env("CODE_MAX_ATTEMPTS", "5")),
        "CODE_RESEND_INTERVAL_SECONDS": int(_env("CODE_RESEND_INTERVAL_SECONDS", "60")),
        "CODE_MAX_PER_HOUR": int(_env("CODE_MAX_PER_HOUR", "3")),
        # The controller named on the privacy notice page.
        "CONTROLLER_NAME": _env("CONTROLLER_NAME", "Lucentia Group Oy"),
        "CONTROLLER_SERVICE": _env("CONTROLLER_SERVICE", "Viihdepaketti.fi"),
        "CONTROLLER_ADDRESS": _env("CONTROLLER_ADDRESS", "PL 32, 00711 Helsinki"),
        "CONTROLLER_EMAIL": _env("CONTROLLER_EMAIL"),
        "CONTROLLER_BUSINESS_ID": _env("CONTROLLER_BUSINESS_ID"),
        # Languages, Finnish first.
        "LANGUAGES": ["fi", "sv", "en"],
        "BABEL_DEFAULT_LOCALE": "fi",
        "BABEL_DEFAULT_TIMEZONE": "Europe/Helsinki",
        # Requests are small forms; anything bigger is refused with 413.
        "MAX_CONTENT_LENGTH": 16 * 1024,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        # Host names the app answers to (a wrong Host header gets 400); in production,
        # the host of PUBLIC_BASE_URL unless set.
        "TRUSTED_HOSTS": _env_list("TRUSTED_HOSTS", "") or None,
        "WTF_CSRF_TIME_LIMIT": 3600,
        # /metrics answers only with "Authorization: Bearer <this>" (unset: 404), and only
        # with it does /readyz say why it is not ready.
        "METRICS_TOKEN": _env("METRICS_TOKEN"),
        # "json" for one JSON object per log line (production), else plain text.
        "LOG_FORMAT": _env("LOG_FORMAT", "text"),
        # Staff sessions: out after 30 idle minutes, and 12 hours after login at the latest.
        "STAFF_IDLE_MINUTES": int(_env("STAFF_IDLE_MINUTES", "30")),
        "PERMANENT_SESSION_LIFETIME": 12 * 3600,
        # Guessing staff passwords and TOTP codes (failed tries only): wrong passwords for
        # one account from one client (an IPv4 address or IPv6 /64), and from one client
        # for any accounts; wrong passwords for one account from everywhere, after which
        # a password alone no longer signs in (a password and a TOTP code still do); and
        # wrong second-factor codes for one account.
        "STAFF_LOGIN_LIMIT_PER_CLIENT": _env("STAFF_LOGIN_LIMIT_PER_CLIENT", "5 per 15 minutes"),
        "STAFF_LOGIN_LIMIT_PER_IP": _env("STAFF_LOGIN_LIMIT_PER_IP", "20 per 15 minutes"),
        "STAFF_LOGIN_LIMIT_PER_ACCOUNT": _env("STAFF_LOGIN_LIMIT_PER_ACCOUNT", "20 per 15 minutes"),
        "STAFF_TOTP_LIMIT_PER_ACCOUNT": _env("STAFF_TOTP_LIMIT_PER_ACCOUNT", "5 per 15 minutes"),
        # Look-ups a staff member may make (a number, or its last digits).
        "STAFF_SEARCH_LIMIT": _env("STAFF_SEARCH_LIMIT", "200 per hour;1000 per day"),
        # The cost of hashing a staff password (argon2id): passes, memory (KiB) and lanes.
        # The defaults are argon2's own (RFC 9106's low-memory profile, 64 MiB), about a
        # tenth of a second; outside development and testing, less than OWASP's minimum
        # (19 MiB, 2 passes) is refused. Hashes made at another cost are redone at sign-in.
        "PASSWORD_HASH_TIME_COST": int(_env("PASSWORD_HASH_TIME_COST", "3")),
        "PASSWORD_HASH_MEMORY_KIB": int(_env("PASSWORD_HASH_MEMORY_KIB", "65536")),
        "PASSWORD_HASH_PARALLELISM": int(_env("PASSWORD_HASH_PARALLELISM", "4")),
        # Rate limit counters; unset: REDIS_URL when set, else this process's memory.
        # If Redis fails, each process counts in its memory: never fail open.
        "RATELIMIT_STORAGE_URI": _env("RATELIMIT_STORAGE_URI"),
        # Each process keeps the rendered fixed texts of its pages (per language) and
        # the landing page's "sign-ups are paused" hint; nothing personal is cached.
        "CACHE_TYPE": "viihde.extensions.ProcessCache",
        "CACHE_DEFAULT_TIMEOUT": 3600,
        # How stale the landing page's pause hint may be (the check before each code
        # is sent is never cached).
        "BUDGET_HINT_SECONDS": int(_env("BUDGET_HINT_SECONDS", "10")),
    }


def rate_limit_storage(config: dict) -> str:
    """Where the rate limits count: RATELIMIT_STORAGE_URI, else Redis, else process memory."""
    return config.get("RATELIMIT_STORAGE_URI") or config.get("REDIS_URL") or "memory://"


def check_purposes(config: dict, known: set[str]) -> None:
    """Refuse a CONSENT_PURPOSES or CUSTOMER_PURPOSES entry that the catalogue does not
    know (a typo would quietly offer, or grant buyers, nothing)."""
    unknown = [key for key in config["CONSENT_PURPOSES"] if key not in known]
    if unknown or not config["CONSENT_PURPOSES"]:
        raise ConfigError(f"CONSENT_PURPOSES must name purposes from {sorted(known)}: {unknown}")
    unknown = [key for key in config.get("CUSTOMER_PURPOSES", ()) if key not in known]
    if unknown:
        raise ConfigError(f"CUSTOMER_PURPOSES must name purposes from {sorted(known)}: {unknown}")


def check_breaker(config: dict) -> None:
    """Refuse a sign-up breaker that could never trip: its sample of a network's latest
    codes must hold at least the codes it needs before it judges (MIN_SAMPLE)."""
    sample, needed = config["CONFIRMATION_RATE_SAMPLE"], config["CONFIRMATION_RATE_MIN_SAMPLE"]
    if not 1 <= needed <= sample:
        raise ConfigError(
            "CONFIRMATION_RATE_SAMPLE must be at least CONFIRMATION_RATE_MIN_SAMPLE, which "
            f"must be at least 1 (they are {sample} and {needed})"
        )


def quiet_hours_window(setting: str | None) -> tuple[time, time] | None:
    """CAMPAIGN_QUIET_HOURS ("21:00-09:00") as its start and end; None when off."""
    if not (setting or "").strip():
        return None
    first, _, last = setting.partition("-")
    try:
        start, end = time.fromisoformat(first.strip()), time.fromisoformat(last.strip())
    except ValueError:
        raise ConfigError(
            f"CAMPAIGN_QUIET_HOURS must be HH:MM-HH:MM (or empty for none), not {setting!r}"
        ) from None
    return None if start == end else (start, end)


def check_catalogues(config: dict, directory: Path) -> None:
    """Refuse to start outside development when a language has no compiled catalogue:
    its pages would come out in English under its own language tag."""
    if config["APP_ENV"] in ("development", "testing"):
        return
    missing = [
        language
        for language in config["LANGUAGES"]
        if not (directory / language / "LC_MESSAGES" / "messages.mo").is_file()
    ]
    if missing:
        raise ConfigError(
            f"no compiled translation catalogue for {', '.join(missing)} in {directory}: "
            "run `make translations` (pybabel compile -d translations) in a checkout, or "
            "install the wheel built from it (`pip wheel .`), which carries them"
        )


def _url(config: dict, name: str) -> SplitResult:
    """A setting's URL, taken apart (ConfigError when it cannot be)."""
    try:
        parts = urlsplit(config.get(name) or "")
        parts.hostname, parts.port  # noqa: B018  # each raises on a malformed address
    except ValueError as error:
        raise ConfigError(f"{name} is not a URL: {error}") from None
    return parts


def _weak_key(key: str | None) -> bool:
    """Unset, the development key, or too short to be a random one."""
    return not key or key == DEV_SECRET_KEY or len(key) < MIN_SECRET_KEY_LENGTH


def check_production_safety(config: dict) -> None:
    """Refuse to start with an unknown APP_ENV, and in production with: a default or short
    secret key, fallback key or hash key, staff passwords hashed more cheaply than OWASP's
    minimum for argon2id, the debugger on, links in SMS over plain HTTP, Redis off this
    machine without a password, no DATABASE_URL, Twilio without its credentials, or codes
    printed to the log."""
    if config["APP_ENV"] not in ENVIRONMENTS:
        # "staging" would have started with production's keys and development's cookies.
        raise ConfigError(
            f"APP_ENV must be one of {', '.join(ENVIRONMENTS)} (unset: production), "
            f"not {config['APP_ENV']!r}"
        )
    if config["APP_ENV"] in ("development", "testing"):
        return
    if _weak_key(config.get("SECRET_KEY")):
        raise ConfigError(
            f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_KEY_LENGTH} "
            f"characters when APP_ENV={config['APP_ENV']} (try: python -c "
            "'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if any(_weak_key(key) for key in config.get("SECRET_KEY_FALLBACKS") or ()):
        # A fallback still signs and reads sessions (staff ones too) and links.
        raise ConfigError(
            "SECRET_KEY_FALLBACKS may hold only former keys of at least "
            f"{MIN_SECRET_KEY_LENGTH} random characters, never the development key"
        )
    if _weak_key(config.get("HASH_KEY")):
        # Unset, it is SECRET_KEY, and rotating that would stop every tombstone matching.
        raise ConfigError(
            f"HASH_KEY must be set to a random value of at least {MIN_SECRET_KEY_LENGTH} "
            "characters in production, once and for good (a register that ran without one "
            "has used its SECRET_KEY: set HASH_KEY to that value)"
        )
    if config.get("DEBUG"):
        raise ConfigError("FLASK_DEBUG must be off in production: the debugger runs code")
    base = _url(config, "PUBLIC_BASE_URL")
    if config["PUBLIC_BASE_URL"] == DEV_PUBLIC_BASE_URL or not base.hostname:
        raise ConfigError(
            "PUBLIC_BASE_URL must be set in production to the address people reach, "
            "https://<host>: every SMS carries a link to it"
        )
    if base.scheme != "https" and base.hostname not in LOOPBACK_HOSTS:
        raise ConfigError(
            "PUBLIC_BASE_URL must be https:// in production: every SMS carries a link to it"
        )
    redis = _url(config, "REDIS_URL")
    remote = redis.hostname and redis.hostname not in LOOPBACK_HOSTS
    if remote and not (redis.password or "password=" in redis.query):
        # RQ unpickles each job's data: whoever can write to Redis can make a worker run
        # code, and read the queued messages (codes, live links).
        raise ConfigError(
            "REDIS_URL must carry a password (redis://:PASSWORD@host, an ACL user, or "
            "?password=) when Redis is on another machine: whoever reaches it runs code "
            "in the SMS workers"
        )
    uri = config.get("SQLALCHEMY_DATABASE_URI") or ""
    if uri.startswith("sqlite") and uri.endswith("/" + DEFAULT_SQLITE_FILE):
        raise ConfigError(
            "DATABASE_URL must be set in production (postgresql://user@host/db): unset, the "
            "register is an SQLite file in the app's instance folder, a new empty one with "
            "each install and each machine"
        )
    if config["SMS_BACKEND"] == "twilio" and not (
        config.get("TWILIO_ACCOUNT_SID") and config.get("TWILIO_AUTH_TOKEN")
    ):
        raise ConfigError(
            "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set with SMS_BACKEND=twilio: "
            "without them no SMS goes and every STOP reply is refused as unsigned"
        )
    if config["SMS_BACKEND"] == "console":
        raise ConfigError(
            "SMS_BACKEND=console prints every code and link to the log: use twilio in "
            "production (file for a stand-in)"
        )
    if (
        config["PASSWORD_HASH_MEMORY_KIB"] < MIN_PASSWORD_HASH_MEMORY_KIB
        or config["PASSWORD_HASH_TIME_COST"] < MIN_PASSWORD_HASH_TIME_COST
    ):
        raise ConfigError(
            f"PASSWORD_HASH_MEMORY_KIB must be at least {MIN_PASSWORD_HASH_MEMORY_KIB} and "
            f"PASSWORD_HASH_TIME_COST at least {MIN_PASSWORD_HASH_TIME_COST} when "
            f"APP_ENV={config['APP_ENV']} (unset, they are 65536 and 3)"
        )
