"""viihde: the SMS opt-in and marketing-consent register of Viihdepaketti.fi."""

from __future__ import annotations

import functools
import select
from pathlib import Path
from typing import NamedTuple

from babel import Locale
from flask import Flask, Response, current_app, g, request
from flask_babel import get_locale
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header
from werkzeug.middleware.proxy_fix import ProxyFix

from viihde import cli, config
from viihde.clock import utcnow
from viihde.extensions import babel, cache, csrf, db, login_manager, migrate, static_digest
from viihde.ops import logs, metrics
from viihde.register import purposes
from viihde.sms import outbox
from viihde.sms import queue as sms_queue
from viihde.web import browser, errors, labels, ratelimits, security
from viihde.web.forms import CSRF_CHECKED_BEFORE_VIEWS
from viihde.web.health import routes as health
from viihde.web.pages import routes as pages

PACKAGE = Path(__file__).resolve().parent
#: Templates, static files, catalogues and migrations: inside the package when it was
#: installed from its wheel (hatch_build.py puts them there), at the top of a checkout.
ROOT = PACKAGE if (PACKAGE / "templates").is_dir() else PACKAGE.parent
#: What ``select_locale`` chooses a language by: a cache must keep one copy of a response
#: in a language for each value of these (a CDN that kept the first landing page served
#: its Swedish to everyone).
LANGUAGE_CHOSEN_BY = ("Accept-Language", "Cookie")
#: Where ``select_locale`` leaves the language it chose for the request.
_CHOSEN = "viihde_language"


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, error pages and CLI.

    The instance folder is Flask's own choice: ``instance/`` in a checkout,
    ``<venv>/var/viihde-instance`` for an installed wheel.
    """
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.from_mapping(config.from_environment(app.instance_path))
    if test_config:
        app.config.update(test_config)
    config.check_production_safety(app.config)
    config.check_catalogues(app.config, ROOT / "translations")
    app.config["RATELIMIT_STORAGE_URI"] = config.rate_limit_storage(app.config)
    config.check_purposes(app.config, set(purposes.CATALOGUE))
    config.check_breaker(app.config)
    config.quiet_hours_window(app.config["CAMPAIGN_QUIET_HOURS"])  # ConfigError if malformed
    if app.config["PROXY_COUNT"]:
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)
    app.session_interface = browser.SessionCookie()
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    logs.install()
    register_extensions(app)
    register_blueprints(app)
    register_jobs()
    errors.register(app)
    labels.register_filters(app)
    cli.register(app)
    app.context_processor(template_globals)
    return app


def select_locale() -> Locale:
    """The visitor's own choice, else the browser's preference among ours, else Finnish.
    The response will say which (``_language_headers``)."""
    language = _language_for(
        tuple(current_app.config["LANGUAGES"]),
        pages.chosen_language(),
        request.headers.get("Accept-Language"),
    )
    setattr(g, _CHOSEN, language)
    return language.locale


class Language(NamedTuple):
    """A language chosen for a request: for Flask-Babel, and as the response says it."""

    locale: Locale
    tag: str
    headers: tuple[tuple[str, str], ...]  # Content-Language and Vary


@functools.lru_cache(maxsize=256)
def _language_for(languages: tuple[str, ...], chosen: str | None, accept: str | None) -> Language:
    """The language for a choice and an Accept-Language header, worked out once per process
    for each (most phones send one of a handful of headers): Flask-Babel parses what the
    selector gives on every request unless it is a Locale already, and werkzeug parses the
    header (together 17 us of a 170 us landing page)."""
    if chosen is None:
        offered = parse_accept_header(accept, LanguageAccept)
        chosen = offered.best_match(languages, default=languages[0])
    locale = Locale.parse(chosen)
    tag = str(locale)
    return Language(
        locale, tag, (("Content-Language", tag), ("Vary", ", ".join(LANGUAGE_CHOSEN_BY)))
    )


def _language_headers(response: Response) -> Response:
    """A response in the language chosen for its request (one that asked for it: a page's
    text, a translated message) says which, and what chose it. Added as they are, not
    parsed and rebuilt, unless the view set a Vary of its own; a response that used no
    language (the bare floor, a health check) pays a lookup on ``g``."""
    language = g.get(_CHOSEN)
    if language is not None:
        if "Vary" in response.headers:  # the view's own
            response.vary.update(LANGUAGE_CHOSEN_BY)
            response.headers["Content-Language"] = language.tag
        else:
            response.headers.extend(language.headers)
    return response


def template_globals() -> dict:
    """The page's language, and where the language switcher brings the visitor back to
    (an error page sends to the front page: its address may be a broken link)."""
    back = "/" if g.get("error_page") else request.full_path.removesuffix("?")
    return {"locale": str(get_locale()), "language_return": back}


def register_extensions(app: Flask) -> None:
    """Bind the extensions created in ``extensions.py``."""
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    # Checked by the hook below, not Flask-WTF's; a setting that turned the check by default
    # off (views then call csrf.protect themselves) keeps it off.
    check_default = app.config.get("WTF_CSRF_CHECK_DEFAULT", True)
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.extensions[CSRF_CHECKED_BEFORE_VIEWS] = bool(check_default)

    @app.before_request
    def _check_csrf() -> None:
        """Flask-WTF's own hook looks up every request's view for an exemption before it
        asks the method: here the method comes first, and a GET does nothing."""
        config = app.config
        if (
            check_default
            and config["WTF_CSRF_ENABLED"]
            and request.method in config["WTF_CSRF_METHODS"]
        ):
            csrf.protect(apply_exemptions=True)

    ratelimits.init_app(app)
    cache.init_app(app)
    static_digest.init_app(app)
    # Flask-Login for the console only: the manager on the app (current_user needs it), and
    # current_user in the console's templates (viihde/web/staff). Not its app-wide hooks,
    # which read the session of every request: the context processor that loads the user
    # for every page, and the after_request that keeps a remember-me cookie (the console
    # never sets one).
    app.login_manager = login_manager
    sms_queue.init_app(app)
    security.init_app(app)
    babel.init_app(
        app,
        locale_selector=select_locale,
        default_translation_directories=str(ROOT / "translations"),
    )
    app.after_request(_language_headers)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _configure_sqlite(db.engine)
        elif db.engine.dialect.name == "postgresql":
            _configure_postgresql(db.engine)


def _configure_sqlite(engine) -> None:
    """WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE for every transaction.

    pysqlite defers BEGIN until the first write, which lets two read-then-write
    transactions interleave; SQLAlchemy's documented recipe takes the write lock
    up front instead, so SQLite serialises them (see its SQLite dialect docs). A read
    outside any transaction (``statements.read_once``, autocommit) takes none.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_postgresql(engine) -> None:
    """A pooled connection the server has dropped (a restart, an idle timeout) is replaced
    before it is lent, without pool_pre_ping's round trip: an idle connection whose socket
    has something to read has been told goodbye (we never LISTEN), so the pool discards it
    and lends another (SQLAlchemy's custom pessimistic disconnect handling)."""

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, _record, _proxy) -> None:
        if dbapi_connection.closed or select.select([dbapi_connection.fileno()], [], [], 0)[0]:
            raise DisconnectionError("the server closed this pooled connection")


def register_jobs() -> None:
    """The queue's jobs, and the app's answer to a provider's opt-out (a signal)."""
    import viihde.jobs  # noqa: F401  (connects its receivers)


def register_blueprints(app: Flask) -> None:
    """One blueprint per area of the product."""
    from viihde.web.api.routes import bp as api_bp
    from viihde.web.preferences import TokenConverter
    from viihde.web.preferences import bp as preferences_bp
    from viihde.web.request import IdConverter
    from viihde.web.signup.routes import bp as signup_bp
    from viihde.web.staff import bp as staff_bp
    from viihde.web.webhooks import bp as webhooks_bp

    app.url_map.converters["token"] = TokenConverter
    app.url_map.converters["id"] = IdConverter
    app.register_blueprint(signup_bp)
    app.register_blueprint(preferences_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(api_bp)
    metrics.init_app(app)
    metrics.before_scrape(
        app, lambda: metrics.SMS_WAITING.set(outbox.oldest_waiting_seconds(utcnow()))
    )
    logs.init_app(app)
