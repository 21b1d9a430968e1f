"""The product as people use it, in Chromium at a phone and a desktop size, with axe-core."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from viihde.clock import utcnow

from .. import factories
from .chromium import DESKTOP, NARROW, PHONE, assert_accessible, new_page


def last_sms(outbox) -> dict:
    return outbox.messages()[-1]


@pytest.mark.parametrize("device", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_sign_up_from_ad_to_preferences_and_data(browser, live_url, outbox, device):
    """Landing, a wrong number, a wrong code, the right code, the link, stop-all, data."""
    page = new_page(browser, device)
    page.goto(f"{live_url}/?utm_campaign=e2e")
    assert page.locator("html").get_attribute("lang") == "fi"
    assert_accessible(page)

    page.fill("#phone", "09 123 4567")  # a landline
    page.click("button[type=submit]")
    assert page.locator("#error-summary").is_visible()
    assert page.locator("#phone").get_attribute("aria-invalid") == "true"
    assert_accessible(page)

    page.fill("#phone", "040 123 4567")
    page.check("#consent")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/code")
    assert "+358 40 *** **67" in page.content()
    assert_accessible(page)

    code = re.search(r"#(\d+)$", last_sms(outbox)["body"]).group(1)
    page.fill("#code", "000000" if code != "000000" else "111111")
    page.click("form[action='/code'] button")
    assert page.locator(".field-error").is_visible()
    page.fill("#code", code)
    page.click("form[action='/code'] button")
    page.wait_for_url(f"{live_url}/welcome")
    assert_accessible(page)

    link = re.search(r"(http\S+)", last_sms(outbox)["body"]).group(1)
    page.goto(link)
    page.wait_for_url(f"{live_url}/preferences")
    assert_accessible(page)
    page.click("input[name=stop_all]")
    page.wait_for_url(f"{live_url}/preferences?saved=stopped")
    assert page.locator("input[name=stop_all]").count() == 0
    assert page.locator(".notice[role=status]").is_visible()
    assert_accessible(page)

    page.goto(f"{live_url}/preferences/data")  # confirmed in this browser minutes ago
    assert "+358 40 1234567" in page.content()
    assert_accessible(page)
    with page.expect_download() as download:
        page.click("a[href='/preferences/data.json']")
    data = json.loads(Path(download.value.path()).read_text())
    assert data["number"] == "+358401234567"
    assert data["subscribed"] is False
    for path in ("/preferences/receipt/1", "/preferences/erase", "/privacy"):
        page.goto(live_url + path)
        assert_accessible(page)
    forwarded = new_page(browser, device)  # the link opened elsewhere: a code is needed
    forwarded.goto(link)
    forwarded.goto(f"{live_url}/preferences/data")
    forwarded.wait_for_url(re.compile(r".*/preferences/verify\?next=data$"))
    assert_accessible(forwarded)
    forwarded.context.close()
    page.context.close()


def test_privacy_notice_and_swedish_pages(browser, live_url):
    """The notice is accessible, and a Swedish browser gets Swedish."""
    page = new_page(browser, PHONE, locale="sv-FI")
    page.goto(f"{live_url}/privacy")
    assert page.locator("html").get_attribute("lang") == "sv"
    assert_accessible(page)
    page.context.close()


@pytest.mark.parametrize("device", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_staff_sign_in_and_look_up(browser, live_url, app, device):
    """Support signs in, finds the number by its last digits and opens the card."""
    support = factories.staff_member(app, "support")
    factories.subscriber(app, "+358401234567", ["offers"], at=utcnow())
    page = new_page(browser, device)
    page.goto(f"{live_url}/staff/login")
    assert_accessible(page)
    page.fill("#email", support.email)
    page.fill("#password", support.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/staff/")
    assert_accessible(page)
    page.fill("#query", "234567")
    page.click("form[action='/staff/'] button[type=submit]")
    page.click("a[href^='/staff/card/']")
    page.wait_for_url(re.compile(r".*/staff/card/\d+$"))
    assert "+358 40 1234567" in page.content()
    assert_accessible(page)
    page.goto(f"{live_url}/staff/dashboard")
    assert page.locator("svg.chart").count() == 2
    assert_accessible(page)
    page.context.close()


def test_the_landing_page_works_without_javascript(browser, live_url, outbox):
    """Sign-up needs no script at all."""
    context = browser.new_context(java_script_enabled=False, **PHONE)
    page = context.new_page()
    page.goto(live_url)
    page.fill("#phone", "040 765 4321")
    page.check("#consent")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/code")
    assert last_sms(outbox)["to"] == "+358407654321"
    context.close()


PUBLIC_PAGES = ["/", "/privacy", "/staff/login"]


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_pages_fit_320_pixels_without_sideways_scrolling(browser, live_url, path):
    """At 320 CSS px (a small phone, or 200% zoom on a 640 px window) nothing overflows."""
    page = new_page(browser, NARROW)
    page.goto(live_url + path)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} is {overflow}px too wide"
    page.context.close()


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_touch_targets_are_at_least_44_pixels(browser, live_url, path):
    """Buttons, inputs and the links in the header are big enough for a thumb."""
    page = new_page(browser, PHONE)
    page.goto(live_url + path)
    small = page.evaluate(
        """() => [...document.querySelectorAll(
                'button, input:not([type=hidden]), .languages a, main a.button')]
            .map(e => [e.outerHTML.slice(0, 60), e.getBoundingClientRect()])
            .filter(([_, r]) => r.width > 0 && (r.height < 44 || r.width < 44))
            .map(([html, r]) => html + ' ' + Math.round(r.width) + 'x' + Math.round(r.height))"""
    )
    assert small == [], small
    page.context.close()


def test_an_error_moves_focus_to_the_summary(browser, live_url):
    """After a refused number the keyboard and the screen reader start at the errors."""
    page = new_page(browser, PHONE)
    page.goto(live_url)
    page.fill("#phone", "123")
    page.click("button[type=submit]")
    page.wait_for_load_state("load")  # the deferred script has run by then
    assert page.evaluate("document.activeElement.id") == "error-summary"
    page.context.close()


def test_the_landing_page_does_not_shift_while_loading(browser, live_url):
    """Cumulative layout shift of zero: nothing jumps under the visitor's thumb."""
    page = new_page(browser, PHONE)
    page.add_init_script(
        """window.__cls = 0;
        new PerformanceObserver(list => { for (const e of list.getEntries())
            if (!e.hadRecentInput) window.__cls += e.value; })
        .observe({type: 'layout-shift', buffered: true});"""
    )
    page.goto(live_url, wait_until="load")
    page.wait_for_timeout(
        300
    )  # let the observer report (a browser measurement, not a test of speed)
    assert page.evaluate("window.__cls") == 0
    page.context.close()


def test_the_resend_button_counts_down_the_minute(browser, live_url):
    """Right after a code is sent the resend button waits, and says how long."""
    page = new_page(browser, PHONE)
    page.goto(live_url)
    page.fill("#phone", "040 123 4567")
    page.check("#consent")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/code")
    page.wait_for_load_state("load")
    resend = page.locator("form[action='/code/resend'] button")
    assert resend.is_disabled()
    assert re.search(r"\(\d+ s\)$", resend.inner_text())
    page.context.close()


def test_pages_ask_nothing_of_other_origins(browser, live_url):
    """Every request the browser makes for the landing page and the notice stays here."""
    page = new_page(browser, PHONE)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(live_url, wait_until="networkidle")
    page.goto(f"{live_url}/privacy", wait_until="networkidle")
    assert requested
    assert [url for url in requested if not url.startswith(live_url)] == []
    page.context.close()


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_no_request_of_a_page_fails_and_the_console_stays_clean(browser, live_url, path):
    """The browser's own asks (the tab icon among them) find something: no 404, no error."""
    page = new_page(browser, PHONE)
    failed, errors, requested = [], [], []
    page.on("request", lambda request: requested.append(request.url))
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(live_url + path, wait_until="networkidle")
    assert failed == [] and errors == []
    assert any("/icons/" in url or url.endswith("/favicon.ico") for url in requested)
    page.context.close()
