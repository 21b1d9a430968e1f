"""Configuration: every setting from the environment, and no start with an unsafe key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from argon2 import profiles

import viihde
from viihde import config, create_app
from viihde.config import DEV_SECRET_KEY, ConfigError, database_url
from viihde.extensions import db
from viihde.register import accounts

LONG_RANDOM_KEY = "q3Jx9vT2mPzK8wYb4LhN6cRf1sDg7uEa5oVi0tXn"
HASH_KEY = "Hk7pLq2Zx9Rt4Vn8Bm3Cy6Wd1Fs5Gj0Ae"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SETTINGS = [
    "APP_ENV",
    "FLASK_DEBUG",
    "SECRET_KEY",
    "HASH_KEY",
    "SECRET_KEY_FALLBACKS",
    "DATABASE_URL",
    "ALLOWED_REGIONS",
    "SMS_BACKEND",
    "SMS_OUTBOX_PATH",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "PUBLIC_BASE_URL",
    "REDIS_URL",
    "PASSWORD_HASH_TIME_COST",
    "PASSWORD_HASH_MEMORY_KIB",
    "PASSWORD_HASH_PARALLELISM",
]


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """A clean environment whose register is an SQLite file under tmp_path."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///" + str(tmp_path / "register.sqlite3"))
    monkeypatch.setenv("HASH_KEY", HASH_KEY)  # production needs its own (tested below)
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://viihdepaketti.fi")  # and its address
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)  # and Twilio's credentials
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "f" * 32)
    return monkeypatch


def settings_from(environment, **variables) -> dict:
    """The configuration built from the given environment variables."""
    for name, value in variables.items():
        environment.setenv(name, value)
    return config.from_environment("/srv/viihde/instance")


# Refusing to start


@pytest.mark.parametrize(
    ("unset", "variables", "says"),
    [
        ("DATABASE_URL", {}, "DATABASE_URL must be set in production"),
        ("TWILIO_AUTH_TOKEN", {}, "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set"),
        ("TWILIO_ACCOUNT_SID", {}, "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set"),
        (None, {"SECRET_KEY_FALLBACKS": "short"}, "SECRET_KEY_FALLBACKS may hold only"),
        (None, {"SECRET_KEY_FALLBACKS": f"{LONG_RANDOM_KEY},{config.DEV_SECRET_KEY}"},
         "SECRET_KEY_FALLBACKS may hold only"),
    ],
)  # fmt: skip
def test_production_refuses_a_register_sms_or_fallback_key_that_cannot_work(
    environment, unset, variables, says
):
    """No DATABASE_URL (an empty SQLite file in the install's instance folder, a new one
    with each install), Twilio without its credentials (no SMS goes, every STOP reply is
    refused as unsigned), a fallback key that is short or the development key (it still
    signs sessions and links): production does not start."""
    if unset:
        environment.delenv(unset)
    settings = settings_from(environment, SECRET_KEY=LONG_RANDOM_KEY, **variables)
    with pytest.raises(config.ConfigError, match=says):
        config.check_production_safety(settings)
    environment.setenv("APP_ENV", "development")
    config.check_production_safety(config.from_environment("/srv/viihde/instance"))


@pytest.mark.parametrize("app_env", ["production", None])
def test_production_refuses_the_development_key(environment, app_env):
    """Without SECRET_KEY, anything but development and testing refuses to start."""
    if app_env:
        environment.setenv("APP_ENV", app_env)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()


def test_production_refuses_the_development_key_even_when_set_explicitly(environment):
    """Copying the development key into production is refused too."""
    environment.setenv("APP_ENV", "production")
    environment.setenv("SECRET_KEY", DEV_SECRET_KEY)
    with pytest.raises(ConfigError):
        create_app()


def test_production_refuses_a_key_shorter_than_32_characters(environment):
    """A short key is refused, however random it looks."""
    environment.setenv("APP_ENV", "production")
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY[:31])
    with pytest.raises(ConfigError):
        create_app()


def test_unset_app_env_means_production(environment):
    """A forgotten APP_ENV fails safe: it is production."""
    environment.setenv("SECRET_KEY", "too-short")
    with pytest.raises(ConfigError):
        create_app()


@pytest.mark.parametrize("app_env", ["production", None])
def test_production_starts_with_a_long_random_key(environment, app_env):
    """A key of 32 characters or more lets production start."""
    if app_env:
        environment.setenv("APP_ENV", app_env)
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY)
    app = create_app()
    assert (app.config["APP_ENV"], app.config["SECRET_KEY"]) == ("production", LONG_RANDOM_KEY)


def catalogues(root, languages) -> None:
    """A translations folder under ``root`` with compiled catalogues for ``languages``."""
    for language in languages:
        folder = root / "translations" / language / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "messages.mo").write_bytes(b"")


@pytest.mark.parametrize(("compiled", "missing"), [((), "fi, sv, en"), (("fi", "en"), "sv")])
def test_production_refuses_to_start_without_compiled_catalogues(
    environment, monkeypatch, tmp_path, compiled, missing
):
    """pip install -r requirements.txt and gunicorn from a checkout nobody ran make in: the
    pages would be English under lang="fi". One line says what to run instead."""
    catalogues(tmp_path, compiled)
    monkeypatch.setattr(viihde, "ROOT", tmp_path)
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY)
    with pytest.raises(ConfigError) as refused:
        create_app()
    message = str(refused.value)
    assert f"no compiled translation catalogue for {missing} in" in message
    assert "make translations" in message and "\n" not in message


def test_development_starts_without_compiled_catalogues(environment, monkeypatch, tmp_path):
    """make run compiles them itself; a laptop's first flask run is not refused."""
    monkeypatch.setattr(viihde, "ROOT", tmp_path)
    environment.setenv("APP_ENV", "development")
    assert create_app().config["APP_ENV"] == "development"


def test_a_key_of_exactly_32_characters_is_enough(environment):
    """The minimum length is inclusive."""
    environment.setenv("APP_ENV", "production")
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY[:32])
    assert create_app().config["SECRET_KEY"] == LONG_RANDOM_KEY[:32]


def test_production_sends_session_cookies_over_https_only(environment):
    """In production the session cookie is Secure."""
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY)
    assert create_app().config["SESSION_COOKIE_SECURE"] is True


def test_development_starts_with_the_default_key(environment):
    """`make run` works without setting a key."""
    environment.setenv("APP_ENV", "development")
    app = create_app()
    assert app.config["SECRET_KEY"] == DEV_SECRET_KEY
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_app_uses_the_database_url_from_the_environment(environment, tmp_path):
    """DATABASE_URL chooses the register the app opens."""
    environment.setenv("APP_ENV", "development")
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///" + str(
        tmp_path / "register.sqlite3"
    )


# database_url


def test_no_database_url_means_sqlite_under_the_instance_folder():
    """Without DATABASE_URL the register is a file in instance/."""
    assert (
        database_url(None, "/srv/viihde/instance")
        == "sqlite:////srv/viihde/instance/viihde.sqlite3"
    )


def test_empty_database_url_means_sqlite_under_the_instance_folder():
    """An empty variable counts as unset."""
    assert database_url("", "/srv/viihde/instance").startswith("sqlite:////srv/viihde/instance/")


@pytest.mark.parametrize("url", ["postgres://u@h/db", "postgresql://u@h/db"])
def test_postgres_urls_use_the_psycopg_driver(url):
    """Heroku-style and plain PostgreSQL URLs both get the psycopg 3 driver."""
    assert database_url(url, "/srv/viihde/instance") == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:p@h:5432/db",
        "sqlite:////var/lib/viihde/register.sqlite3",
        "mysql://u@h/db",
    ],
)
def test_other_database_urls_are_unchanged(url):
    """A URL that already names its driver is used as it is."""
    assert database_url(url, "/srv/viihde/instance") == url


def test_database_url_environment_variable_is_normalised(environment):
    """The variable goes through database_url."""
    settings = settings_from(environment, DATABASE_URL="postgres://u@h/db")
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


# Settings read from the environment


def test_allowed_regions_are_a_list_of_upper_case_codes(environment):
    """ "fi, se" serves Finland and Sweden."""
    assert settings_from(environment, ALLOWED_REGIONS="fi, se")["ALLOWED_REGIONS"] == ["FI", "SE"]


def test_allowed_regions_default_to_finland(environment):
    """Without the variable only Finnish numbers are served."""
    assert settings_from(environment)["ALLOWED_REGIONS"] == ["FI"]


def test_sms_backend_is_read_from_the_environment(environment):
    """SMS_BACKEND picks the backend; Twilio is production's default, the console the
    others'."""
    assert settings_from(environment)["SMS_BACKEND"] == "twilio"
    assert settings_from(environment, SMS_BACKEND="file")["SMS_BACKEND"] == "file"
    environment.delenv("SMS_BACKEND")
    assert settings_from(environment, APP_ENV="development")["SMS_BACKEND"] == "console"


def test_sms_outbox_path_is_read_from_the_environment(environment, tmp_path):
    """The file backend writes where SMS_OUTBOX_PATH says."""
    path = str(tmp_path / "outbox.jsonl")
    assert settings_from(environment, SMS_OUTBOX_PATH=path)["SMS_OUTBOX_PATH"] == path


def test_sms_outbox_defaults_to_the_instance_folder(environment):
    """Without the variable the outbox sits next to the register."""
    settings = settings_from(environment)
    assert settings["SMS_OUTBOX_PATH"] == "/srv/viihde/instance/sms-outbox.jsonl"


def test_public_base_url_loses_its_trailing_slash(environment):
    """Links are built as base + "/" + token, so a trailing slash would double."""
    settings = settings_from(environment, PUBLIC_BASE_URL="https://viihdepaketti.fi/")
    assert settings["PUBLIC_BASE_URL"] == "https://viihdepaketti.fi"


def test_redis_url_is_read_from_the_environment(environment):
    """REDIS_URL is passed on as it is, and is None when unset."""
    assert settings_from(environment)["REDIS_URL"] is None
    redis_url = "redis://cache.internal:6379/0"
    assert settings_from(environment, REDIS_URL=redis_url)["REDIS_URL"] == redis_url


def test_secret_key_fallbacks_are_a_comma_separated_list(environment):
    """Old keys stay accepted for links signed before a rotation."""
    settings = settings_from(environment, SECRET_KEY_FALLBACKS="first-old-key, second-old-key")
    assert settings["SECRET_KEY_FALLBACKS"] == ["first-old-key", "second-old-key"]


def test_empty_variable_counts_as_unset(environment):
    """SMS_BACKEND= in an env file does not select a nameless backend."""
    assert settings_from(environment, SMS_BACKEND="")["SMS_BACKEND"] == "twilio"  # production's


def test_gunicorn_settings_recycle_workers_unless_told_not_to(monkeypatch):
    """Production recycles workers now and then; the benchmark turns it off."""
    import runpy
    from pathlib import Path

    path = str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py")
    monkeypatch.delenv("GUNICORN_MAX_REQUESTS", raising=False)
    assert runpy.run_path(path)["max_requests"] == 5000
    monkeypatch.setenv("GUNICORN_MAX_REQUESTS", "0")
    settings = runpy.run_path(path)
    assert settings["max_requests"] == 0 and settings["max_requests_jitter"] == 0


def test_gunicorn_workers_keep_the_loaded_app_out_of_full_collections():
    """A worker freezes what loading the app made (gc.freeze): full collections walk only
    what requests leave behind, not the 150,000 objects of the loaded app."""
    import gc
    import runpy
    from pathlib import Path

    path = str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py")
    gc.unfreeze()
    try:
        runpy.run_path(path)["post_worker_init"](None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_gunicorn_forgets_a_gone_workers_live_gauges(monkeypatch, tmp_path):
    """A recycled worker's "sending paused" gauge must not count in /metrics any more."""
    import runpy
    from pathlib import Path
    from types import SimpleNamespace

    path = str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "gauge_livemostrecent_4242.db").write_bytes(b"")
    (tmp_path / "counter_4242.db").write_bytes(b"")
    runpy.run_path(path)["child_exit"](None, SimpleNamespace(pid=4242))
    assert [p.name for p in tmp_path.iterdir()] == ["counter_4242.db"]


@pytest.mark.parametrize("setting", ["25:00-09:00", "21:00", "9pm-9am"])
def test_malformed_quiet_hours_refuse_to_start(environment, setting):
    """A typo in CAMPAIGN_QUIET_HOURS stops the app at once, not the first campaign."""
    environment.setenv("APP_ENV", "development")
    environment.setenv("CAMPAIGN_QUIET_HOURS", setting)
    with pytest.raises(ConfigError, match="CAMPAIGN_QUIET_HOURS"):
        create_app()


def test_a_misspelt_customer_purpose_refuses_to_start(environment):
    """CUSTOMER_PURPOSES=offer would grant buyers nothing, silently: the app stops."""
    environment.setenv("APP_ENV", "development")
    environment.setenv("CUSTOMER_PURPOSES", "offer,new_content")
    with pytest.raises(ConfigError, match="CUSTOMER_PURPOSES"):
        create_app()


# Staff passwords: production hashes at argon2's own cost; only the tests hash cheaply


def test_production_hashes_staff_passwords_at_argon2s_own_cost(environment):
    """Unset, the cost is RFC 9106's low-memory profile (t=3, 64 MiB, p=4), argon2-cffi's
    default: what a production hash says it was made with."""
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY)
    app = create_app()
    with app.app_context():
        hashed = accounts.password_hasher().hash("kesa-aamu-sataa-lunta-77")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    profile = profiles.RFC_9106_LOW_MEMORY
    assert (profile.time_cost, profile.memory_cost, profile.parallelism) == (3, 65536, 4)


@pytest.mark.parametrize(
    "variables",
    [
        {"PASSWORD_HASH_MEMORY_KIB": "8", "PASSWORD_HASH_TIME_COST": "1"},
        {"PASSWORD_HASH_MEMORY_KIB": "19455"},
        {"PASSWORD_HASH_TIME_COST": "1"},
    ],
)
def test_production_refuses_a_password_hash_below_owasps_minimum(environment, variables):
    """The tests' cheap hashing set in production by mistake stops the app at once."""
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY)
    for name, value in variables.items():
        environment.setenv(name, value)
    with pytest.raises(ConfigError, match="PASSWORD_HASH_"):
        create_app()


def test_owasps_minimum_password_hash_is_allowed_in_production(environment):
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY)
    environment.setenv("PASSWORD_HASH_MEMORY_KIB", "19456")
    environment.setenv("PASSWORD_HASH_TIME_COST", "2")
    environment.setenv("PASSWORD_HASH_PARALLELISM", "1")
    assert create_app().config["PASSWORD_HASH_MEMORY_KIB"] == 19456


def test_a_cheaply_hashed_password_is_rehashed_at_the_cost_in_force_at_sign_in(app):
    """An account made under the tests' cheap setting signs in where production's cost is
    in force: the password works, and its hash is made again at that cost."""
    with app.app_context():
        accounts.create_staff("tuki@viihdepaketti.fi", "support", "kesa-aamu-sataa-lunta-77", NOW)
        db.session.commit()
        assert "$m=8,t=1,p=1$" in accounts.find("tuki@viihdepaketti.fi").password_hash
    app.config.update(
        PASSWORD_HASH_TIME_COST=3, PASSWORD_HASH_MEMORY_KIB=65536, PASSWORD_HASH_PARALLELISM=4
    )
    with app.app_context():
        assert accounts.authenticate("tuki@viihdepaketti.fi", "kesa-aamu-sataa-lunta-77")
        db.session.commit()
        assert "$m=65536,t=3,p=4$" in accounts.find("tuki@viihdepaketti.fi").password_hash


def test_the_redis_client_parses_and_packs_with_hiredis():
    """redis-py uses hiredis's C parser and command packer when it is installed
    (requirements.txt): 40 % fewer instructions for a submission's three Redis round trips
    (docs/performance.md). A missing wheel would slow every write silently."""
    from redis.connection import DefaultParser
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE
    assert "Hiredis" in DefaultParser.__name__


@pytest.mark.parametrize("app_env", ["staging", "Production", "prod"])
def test_an_unknown_environment_refuses_to_start(environment, app_env):
    """APP_ENV=staging would have started with production's key checks and development's cookies
    (not Secure, no __Host- prefix, no HSTS): any APP_ENV but the three is refused."""
    environment.setenv("APP_ENV", app_env)
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY)
    with pytest.raises(ConfigError, match="APP_ENV must be one of"):
        create_app()


@pytest.mark.parametrize(
    ("variables", "refused"),
    [
        ({"HASH_KEY": None}, "HASH_KEY"),
        ({"HASH_KEY": LONG_RANDOM_KEY[:31]}, "HASH_KEY"),
        ({"HASH_KEY": DEV_SECRET_KEY}, "HASH_KEY"),
        ({"FLASK_DEBUG": "1"}, "FLASK_DEBUG"),
        ({"PUBLIC_BASE_URL": "http://viihdepaketti.fi"}, "PUBLIC_BASE_URL"),
        ({"SMS_BACKEND": "console"}, "SMS_BACKEND=console"),
        ({"REDIS_URL": "redis://redis.internal:6379/0"}, "REDIS_URL must carry a password"),
        ({"REDIS_URL": "redis://[::1"}, "REDIS_URL is not a URL"),
        ({"PUBLIC_BASE_URL": None}, "PUBLIC_BASE_URL must be set"),
        ({"PUBLIC_BASE_URL": "https://"}, "PUBLIC_BASE_URL must be set"),
        ({"PUBLIC_BASE_URL": "https:viihdepaketti.fi"}, "PUBLIC_BASE_URL must be set"),
    ],
    ids=["no hash key", "short hash key", "development hash key", "debugger", "plain http",
         "codes to the log", "redis without a password", "redis malformed", "no address",
         "no host", "no host either"],
)  # fmt: skip
def test_production_refuses_unsafe_settings(environment, variables, refused):
    """Production does not start with a hash key that follows SECRET_KEY (rotating that
    would stop every erased number's tombstone matching), the debugger, SMS links over
    plain HTTP, or codes and links printed to the log."""
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY)
    environment.setenv("PUBLIC_BASE_URL", "https://viihdepaketti.fi")
    for name, value in variables.items():
        if value is None:
            environment.delenv(name, raising=False)
        else:
            environment.setenv(name, value)
    with pytest.raises(ConfigError, match=refused):
        create_app()


@pytest.mark.parametrize(
    "variables",
    [
        {"PUBLIC_BASE_URL": "https://viihdepaketti.fi", "SMS_BACKEND": "twilio"},
        {"PUBLIC_BASE_URL": "http://127.0.0.1:8101", "SMS_BACKEND": "file"},  # the benchmarks
        {"PUBLIC_BASE_URL": "https://127.0.0.1:8443", "SMS_BACKEND": "file"},  # prod-up
        {"PUBLIC_BASE_URL": "https://viihdepaketti.fi", "REDIS_URL": "redis://127.0.0.1:6379/9"},
        {
            "PUBLIC_BASE_URL": "https://viihdepaketti.fi",
            "REDIS_URL": "rediss://viihde:secret@redis.internal:6380/0",
        },
        {
            "PUBLIC_BASE_URL": "https://viihdepaketti.fi",
            "REDIS_URL": "redis://redis.internal:6379/0?password=secret",
        },
        {"PUBLIC_BASE_URL": "https://viihdepaketti.fi", "REDIS_URL": "unix:///run/redis.sock"},
    ],
)
def test_production_starts_with_safe_settings(environment, variables):
    """Its own hash key, HTTPS (or loopback, which no phone reaches), a real backend, Redis
    on this machine or with a password."""
    environment.setenv("SECRET_KEY", LONG_RANDOM_KEY)
    for name, value in variables.items():
        environment.setenv(name, value)
    app = create_app()
    assert (app.config["APP_ENV"], app.config["HASH_KEY"]) == ("production", HASH_KEY)
