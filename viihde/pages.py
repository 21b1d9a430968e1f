"""Site-wide pages: the language choice, remembered in a cookie."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, redirect, request

bp = Blueprint("pages", __name__)

LANGUAGE_COOKIE = "lang"
ONE_YEAR = 365 * 24 * 3600


def chosen_language() -> str | None:
    """The language the visitor picked with the switcher, if any."""
    code = request.cookies.get(LANGUAGE_COOKIE)
    return code if code in current_app.config["LANGUAGES"] else None


def _same_site_path(target: str | None) -> str:
    """Only a path on this site: never a redirect to another one."""
    parts = urlsplit(target or "/")
    if (
        parts.scheme
        or parts.netloc
        or not parts.path.startswith("/")
        or parts.path.startswith("//")
    ):
        return "/"
    return parts.path + (f"?{parts.query}" if parts.query else "")


@bp.get("/language/<code>")
def language(code: str):
    """Switch language and stay on the same page."""
    if code not in current_app.config["LANGUAGES"]:
        abort(404)
    response = redirect(_same_site_path(request.args.get("next")))
    response.set_cookie(
        LANGUAGE_COOKIE,
        code,
        max_age=ONE_YEAR,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response
