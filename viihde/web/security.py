"""Response headers, worked out once per app: a strict CSP, HSTS in production,
same-origin referrers, no framing, no sniffing; and the cross-site check of the one form
that carries no CSRF token.

They are the same for every response, so they are built when the app is and set by one
``after_request`` (Flask-Talisman, unreleased since 2023, rebuilt the CSP on every
response). The pages that show personal data add ``Cache-Control: no-store`` themselves
(preference pages, the console). The session cookie's flags are settings
(``SESSION_COOKIE_*`` in ``viihde/config.py``).
"""

from __future__ import annotations

import logging
from functools import lru_cache, wraps
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import Forbidden

log = logging.getLogger(__name__)

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
#: What a page with personal data (a number, even masked) adds: no browser or proxy keeps it.
NO_STORE = {"Cache-Control": "no-store"}


def response_headers(production: bool) -> dict[str, str]:
    """The headers every response carries (HSTS only in production: TLS ends at the
    proxy there, and a developer's http://127.0.0.1 must stay reachable)."""
    headers = {
        "Content-Security-Policy": "; ".join(
            f"{name} {value}" for name, value in CONTENT_SECURITY_POLICY.items()
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        # Preference pages carry their token in the address: it never leaves in a Referer.
        "Referrer-Policy": "same-origin",
        "Permissions-Policy": "browsing-topics=()",
    }
    if production:
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE}; includeSubDomains"
    return headers


def init_app(app: Flask) -> None:
    """Install the headers, and in production pin the host and the cookie name."""
    production = app.config["APP_ENV"] == "production"
    if production:
        app.config["SESSION_COOKIE_NAME"] = "__Host-session"
        if not app.config.get("TRUSTED_HOSTS"):
            app.config["TRUSTED_HOSTS"] = [urlsplit(app.config["PUBLIC_BASE_URL"]).hostname]
        # Browsers send the host in lower case and werkzeug compares it as written: a
        # setting of "Viihdepaketti.fi" refused every request.
        app.config["TRUSTED_HOSTS"] = [host.lower() for host in app.config["TRUSTED_HOSTS"]]
    headers = tuple(response_headers(production).items())
    names = frozenset(name.lower() for name, _ in headers)

    @app.after_request
    def _security_headers(response: Response) -> Response:
        # Added, not set (set looks for each one among the response's headers first): a
        # response that carries one of them already has it replaced, as set would.
        if any(name.lower() in names for name in response.headers.keys()):  # noqa: SIM118 (Headers iterates pairs)
            response.headers.update(headers)
        else:
            response.headers.extend(headers)
        return response


class CrossSiteRequest(Forbidden):
    """A form posted from another site (or a sandboxed frame) to one that takes no token."""


@lru_cache(maxsize=8)
def _origin(base_url: str) -> str:
    """PUBLIC_BASE_URL's origin as a browser names it (a scheme's default port left out)."""
    parts = urlsplit(base_url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{parts.scheme}://{parts.hostname}{port}".lower()


def cross_site(headers, public_base_url: str) -> bool:
    """Whether the browser says the request comes from another site: ``Sec-Fetch-Site``,
    when sent, is neither ``same-origin`` nor ``none`` (typed or bookmarked), or
    ``Origin``, when sent, is not PUBLIC_BASE_URL's (``null`` included). A client that
    sends neither (an old browser, curl) is let through: the form carries no authority."""
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = headers.get("Origin")
    return origin is not None and origin.lower() != _origin(public_base_url)


def same_origin_only(view):
    """Refuse a cross-site POST to a view whose form has no CSRF token (the sign-up)."""

    @wraps(view)
    def checked(*args, **kwargs):
        if cross_site(request.headers, current_app.config["PUBLIC_BASE_URL"]):
            log.info(
                "cross_site_refused site=%s origin=%s",
                request.headers.get("Sec-Fetch-Site", "-"),
                request.headers.get("Origin", "-")[:100],
            )
            raise CrossSiteRequest()
        return view(*args, **kwargs)

    return checked
