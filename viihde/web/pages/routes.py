"""Site-wide pages: the language choice, remembered in a cookie, and the icons browsers
and phones ask for at the site's root."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, redirect, request, send_from_directory

bp = Blueprint("pages", __name__)

LANGUAGE_COOKIE = "lang"
ONE_YEAR = 365 * 24 * 3600
#: og:locale of each language, in the language_TERRITORY form link previews know
#: (Facebook's list has sv_SE but no sv_FI).
OPEN_GRAPH_LOCALES = {"fi": "fi_FI", "sv": "sv_SE", "en": "en_GB"}
#: Browsers ask for /favicon.ico, and iOS for the touch icons, at the root whatever a page
#: links: aliases of the files in static/icons/ (which a proxy may serve itself).
ROOT_ICONS = {
    "/favicon.ico": "favicon.ico",
    "/apple-touch-icon.png": "apple-touch-icon.png",
    "/apple-touch-icon-precomposed.png": "apple-touch-icon.png",
}


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


@bp.app_template_filter("open_graph_locale")
def open_graph_locale(language: str) -> str:
    """The og:locale of a page in ``language``."""
    return OPEN_GRAPH_LOCALES.get(language, OPEN_GRAPH_LOCALES["fi"])


def root_icon():
    """An icon at the root path where browsers look for it, cached for a year."""
    icons = Path(current_app.static_folder or "static") / "icons"
    return send_from_directory(icons, ROOT_ICONS[request.path], max_age=ONE_YEAR)


for _path in ROOT_ICONS:
    bp.add_url_rule(_path, "root_icon", root_icon, methods=["GET"])
