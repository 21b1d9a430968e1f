"""Pages the same for every visitor in a language, rendered once per process and kept in
the page cache: the landing page (also per whether sign-ups are paused) and the privacy
notice. They carry no session; the landing page has no CSRF token (the sign-up POST is
guarded by ``viihde.web.security.same_origin_only``), and the ad's attribution is the only
part of it that differs between visitors, spliced in escaped.

A visitor with something flashed to show (a message after a redirect) gets the page
rendered for them alone: a flash must never land in the shared copy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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
_CODE_PAGE_MARKS = re.compile(
    "|".join(map(re.escape, (NUMBER_MARK, FORM_MARK, WAIT_MARK, CHANGE_MARK)))
)


def has_flashes() -> bool:
    """Whether the visitor has a message waiting (only a browser with a session can)."""
    return bool(request.cookies) and "_flashes" in session


def rendered(key: str, template: str, context: Callable[[], dict]) -> str:
    """``template`` as everyone gets it, rendered once per process under ``key`` (its
    ``context`` worked out only then: the landing page's form is built once, not per visit)."""
    page = cache.get(key)
    if page is None:
        page = render_template(template, shared_page=True, **context())
        cache.set(key, page)
    return page


def landing(language: str, paused: bool, attribution: dict[str, str | None]) -> str:
    """The shared landing page with this visit's attribution in its form and switcher."""
    shared = rendered(
        f"landing-page/{language}/{int(paused)}",
        "signup/landing.html",
        lambda: {
            "form": SignupForm(formdata=None),
            "paused": paused,
            "attribution": ATTRIBUTION_MARK,
            "language_return": RETURN_MARK,
        },
    )
    hidden = "".join(
        f'<input id="{name}" name="{name}" type="hidden" value="{escape(value)}">'
        for name in FIELDS
        if (value := attribution.get(name))
    )
    back = escape(quote_plus(request.full_path.removesuffix("?"), safe=QUERY_SAFE))
    # The switcher's return address first: a visit's own values may spell its mark.
    return shared.replace(RETURN_MARK, back).replace(ATTRIBUTION_MARK, hidden, 1)


def code_page(
    language: str, masked_number: str, resend_wait: int, change_number_url: str, token: str
) -> str:
    """The shared page that asks for the code, with this browser's masked number, form
    token, resend wait and way back to the landing page put in, escaped, in one pass (a
    value that spells a mark is never read again)."""
    shared = rendered(
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
    )
    values = {
        NUMBER_MARK: escape(masked_number),
        FORM_MARK: escape(token),
        WAIT_MARK: str(int(resend_wait)),
        CHANGE_MARK: escape(change_number_url),
    }
    return _CODE_PAGE_MARKS.sub(lambda mark: values[mark[0]], shared)
