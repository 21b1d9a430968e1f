"""Response headers, configured once: a strict CSP, HSTS in production, same-origin referrers.

Flask-Talisman sets them on every response; the pages that show personal data
add ``Cache-Control: no-store`` themselves (preference pages, the console).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask
from flask_talisman import Talisman

#: No inline script or style anywhere; nothing from other origins.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "img-src": "'self' data:",
}
HSTS_MAX_AGE = 365 * 24 * 3600

talisman = Talisman()


def init_app(app: Flask) -> None:
    """Install the headers, and in production pin the host and the cookie name."""
    production = app.config["APP_ENV"] == "production"
    if production:
        app.config["SESSION_COOKIE_NAME"] = "__Host-session"
        if not app.config.get("TRUSTED_HOSTS"):
            app.config["TRUSTED_HOSTS"] = [urlsplit(app.config["PUBLIC_BASE_URL"]).hostname]
    talisman.init_app(
        app,
        force_https=False,  # TLS ends at the proxy; HSTS keeps browsers on https
        strict_transport_security=production,
        strict_transport_security_max_age=HSTS_MAX_AGE,
        strict_transport_security_include_subdomains=True,
        content_security_policy=CONTENT_SECURITY_POLICY,
        frame_options="DENY",
        referrer_policy="same-origin",  # preference pages never leak through Referer
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        session_cookie_http_only=True,
        session_cookie_samesite="Lax",
    )
