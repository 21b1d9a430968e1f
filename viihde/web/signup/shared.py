"""Pages the same for every visitor in a language, rendered once per process and kept in
the page cache: the landing page (also per whether sign-ups are paused) and the privacy
notice. They carry no session; the landing page has no CSRF token (the sign-up POST is
guarded by ``viihde.web.security.same_origin_only``), and the ad's attribution is the only
part of it that differs between visitors, spliced in escaped. The code page and the
preference page are kept the same way, with each browser's own parts spliced in
(``spliced``: the kept page split at its marks once).

A visitor with something flashed to show (a message after a redirect) gets the page
rendered for them alone: a flash must never land in the shared copy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import quote_plus

from flask import render_template, request, session
from markupsafe import Markup, escape

from viihde.extensions import cache
from viihde.web.signup.forms import CodeForm, SignupForm

#: Where the attribution's hidden fields go, and the language switcher's way back.
ATTRIBUTION_MARK = Markup("<!--attribution-->")
RETURN_MARK = "/__landing_return__"
#: What url_for leaves unescaped in a query value (werkzeug.urls._urlencode).
QUERY_SAFE = "!$'()*,/:;?@"
FIELDS = ("utm_source", "utm_medium", "utm_campaign", "click_id")
#: Where a shared page takes a visitor's masked number, form token, resend wait and way
#: back to the landing page.
NUMBER_MARK = Markup("<!--number-->")
FORM_MARK = "__form_mark__"
WAIT_MARK = "__resend_wait__"
CHANGE_MARK = "__change_number__"
#: Where the preference page takes the subscriber its forms are for.
SUBSCRIBER_MARK = "__subscriber_mark__"
#: Every mark, as the kept pages are split at them (the marks in the odd places).
_MARKS = re.compile(
    "("
    + "|".join(
        map(
            re.escape,
            (
                ATTRIBUTION_MARK,
                RETURN_MARK,
                NUMBER_MARK,
                FORM_MARK,
                WAIT_MARK,
                CHANGE_MARK,
                SUBSCRIBER_MARK,
            ),
        )
    )
    + ")"
)


def has_flashes() -> bool:
    """Whether the visitor has a message waiting (only a browser with a session can)."""
    return bool(request.cookies) and "_flashes" in session


def _kept(key: str, make: Callable[[], str | tuple[str, ...]]):
    value = cache.get(key)
    if value is None:
        value = make()
        cache.set(key, value)
    return value


def rendered(key: str, template: str, context: Callable[[], dict]) -> str:
    """``template`` as everyone gets it, rendered once per process under ``key`` (its
    ``context`` worked out only then: the landing page's form is built once, not per visit)."""
    return _kept(key, lambda: render_template(template, shared_page=True, **context()))


def spliced(key: str, template: str, context: Callable[[], dict], values: Mapping[str, str]) -> str:
    """``template`` as ``rendered`` makes it, kept split at its marks, with this visitor's
    ``values`` (escaped by the caller) in place of the marks: one pass, so a value that
    spells a mark stays as it is, and a join instead of a search of the whole page for
    each mark."""
    parts = _kept(
        key, lambda: tuple(_MARKS.split(render_template(template, shared_page=True, **context())))
    )
    pieces = list(parts)
    pieces[1::2] = [values[mark] for mark in parts[1::2]]
    return "".join(pieces)


def landing(language: str, paused: bool, attribution: dict[str, str | None]) -> str:
    """The shared landing page with this visit's attribution in its form and switcher."""
    hidden = "".join(
        f'<input id="{name}" name="{name}" type="hidden" value="{escape(value)}">'
        for name in FIELDS
        if (value := attribution.get(name))
    )
    back = escape(quote_plus(request.full_path.removesuffix("?"), safe=QUERY_SAFE))
    return spliced(
        f"landing-page/{language}/{int(paused)}",
        "signup/landing.html",
        lambda: {
            "form": SignupForm(formdata=None),
            "paused": paused,
            "attribution": ATTRIBUTION_MARK,
            "language_return": RETURN_MARK,
        },
        {ATTRIBUTION_MARK: hidden, RETURN_MARK: back},
    )


def code_page(
    language: str, masked_number: str, resend_wait: int, change_number_url: str, token: str
) -> str:
    """The shared page that asks for the code, with this browser's masked number, form
    token, resend wait and way back to the landing page put in, escaped."""
    return spliced(
        f"code-page/{language}",
        "signup/code.html",
        lambda: {
            "form": CodeForm(formdata=None),
            "masked_number": NUMBER_MARK,
            "resend_wait": WAIT_MARK,
            "change_number_url": CHANGE_MARK,
            "form_token": FORM_MARK,
            "language_return": request.path,
        },
        {
            NUMBER_MARK: escape(masked_number),
            FORM_MARK: escape(token),
            WAIT_MARK: str(int(resend_wait)),
            CHANGE_MARK: escape(change_number_url),
        },
    )
