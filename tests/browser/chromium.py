"""Debian's Chromium as the browser tests open it: where it is, the screen sizes pages are
looked at, a fresh page, and axe-core's verdict on a page."""

from __future__ import annotations

import pytest

# axe-core comes with Playwright's Python package; without them the browser tests skip.
sync_axe = pytest.importorskip("axe_playwright_python.sync_playwright")

CHROMIUM = "/usr/bin/chromium"
PHONE = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
#: A small phone, or 200 % zoom on a 640 px window.
NARROW = {"viewport": {"width": 320, "height": 640}, "is_mobile": True, "has_touch": True}

axe = sync_axe.Axe()


def new_page(browser, device: dict, locale: str = "fi-FI"):
    # bypass_csp lets axe-core in past our own CSP; the app's pages never need it.
    context = browser.new_context(locale=locale, bypass_csp=True, **device)
    return context.new_page()


def assert_accessible(page) -> None:
    """axe-core finds no serious or critical violation on the page."""
    results = axe.run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{page.url}: {bad}"
