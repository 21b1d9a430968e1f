"""The campaign page in Chromium: as an admin types, the live segment count, encoding and
cost of each language match what viihde.sms.segments counts on the server."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pyotp
import pytest

from viihde.clock import utcnow
from viihde.register import campaigns
from viihde.sms.segments import segmentation

from .. import factories
from ..factories import number
from .chromium import DESKTOP, assert_accessible

FINNISH_RECIPIENTS = 3


@pytest.fixture
def admin_page(browser, live_url, app):
    """An admin signed in (password and TOTP) on the new-campaign page, with three Finnish
    and one Swedish subscriber to offers. The page runs under the app's own CSP."""
    admin = factories.staff_member(app, "admin", totp=True)
    for n, language in [(1, "fi"), (2, "fi"), (3, "fi"), (4, "sv")]:
        factories.subscriber(app, number(n), ["offers"], at=utcnow(), language=language)
    context = browser.new_context(locale="en-GB", **DESKTOP)  # no bypass_csp here
    page = context.new_page()
    errors = []  # script errors, and anything the CSP refused
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and errors.append(message.text),
    )
    page.goto(f"{live_url}/staff/login")
    page.fill("#email", admin.email)
    page.fill("#password", admin.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_url}/staff/login/totp")
    page.fill("#code", pyotp.TOTP(admin.totp_secret).now())
    page.click("form[action='/staff/login/totp'] button[type=submit]")
    page.wait_for_url(f"{live_url}/staff/")
    page.goto(f"{live_url}/staff/campaigns/new", wait_until="load")
    yield page
    assert errors == []  # no script refused by the CSP, no script error
    context.close()


def shown(page, language: str) -> dict[str, str]:
    """The live figures of one language, as the page shows them now."""
    figures = f"#figures-{language}"
    return {
        name: page.locator(f"{figures} [data-figure='{name}']").text_content()
        for name in ("segments", "encoding", "units", "recipients")
    } | {"cost": page.locator(f"{figures} [data-figure='cost']").get_attribute("data-value")}


def expected(app, body: str, language: str, recipients: int) -> dict[str, str]:
    """What the server counts for the same text with the footer and the longest link."""
    with app.test_request_context():
        result = segmentation(campaigns.sample_text(body, language))
        price = campaigns.segment_price()
    cost = (price * recipients * result.segments).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return {
        "segments": str(result.segments),
        "encoding": result.encoding,
        "units": str(result.units),
        "recipients": str(recipients),
        "cost": str(cost),
    }


def footer_units(app) -> int:
    """Septets the line break and the Finnish footer take."""
    with app.test_request_context():
        return segmentation(campaigns.sample_text("", "fi")).units


def test_live_figures_match_the_server_as_the_admin_types(app, admin_page):
    """Plain text, extension characters (two septets), UCS-2 (an emoji, ő), and a text
    right at the edge of one segment: 160 septets, then 161."""
    edge = 160 - footer_units(app)
    texts = [
        "Hei! Talven tarjous: kaksi kuukautta hintaan yksi.",
        "Nyt 5€ [vain] {tänään} ~ ale | ^ \\",
        "Talven tarjous 😀",
        "Győr ja ő: tarjous",
        "a" * edge,
        "a" * (edge + 1),
        "€" * (edge // 2),
        "😀" * 40,
    ]
    for text in texts:
        admin_page.fill("#body_fi", text)
        assert shown(admin_page, "fi") == expected(app, text, "fi", FINNISH_RECIPIENTS), text
    assert shown(admin_page, "fi")["encoding"] == "UCS-2"
    admin_page.fill("#body_fi", "a" * edge)
    assert shown(admin_page, "fi")["segments"] == "1"
    admin_page.fill("#body_fi", "a" * (edge + 1))
    assert shown(admin_page, "fi")["segments"] == "2"


def test_each_language_counts_its_own_footer_and_recipients(app, admin_page):
    """Swedish has its own footer and one recipient; English has none."""
    admin_page.fill("#body_sv", "Hej! Vinterns erbjudande.")
    admin_page.fill("#body_en", "Hi! The winter offer.")
    assert shown(admin_page, "sv") == expected(app, "Hej! Vinterns erbjudande.", "sv", 1)
    assert shown(admin_page, "en") == expected(app, "Hi! The winter offer.", "en", 0)


def test_choosing_another_topic_changes_the_recipients(app, admin_page):
    """Nobody has new content on: no recipients, no cost."""
    admin_page.fill("#body_fi", "Uutta katsottavaa.")
    admin_page.select_option("#purpose", "new_content")
    assert shown(admin_page, "fi") == expected(app, "Uutta katsottavaa.", "fi", 0)
    admin_page.select_option("#purpose", "offers")
    assert shown(admin_page, "fi")["recipients"] == str(FINNISH_RECIPIENTS)


def test_campaign_pages_are_accessible(app, admin_page, live_url):
    """axe-core: the compose page, a draft with its test and send forms, and the list."""
    admin_page.fill("#name", "Talvi")
    for language in ("fi", "sv", "en"):
        admin_page.fill(f"#body_{language}", "Tarjous")
    admin_page.click("input[name=save]")
    admin_page.wait_for_url(f"{live_url}/staff/campaigns/1")
    for path in ("/staff/campaigns/new", "/staff/campaigns/1", "/staff/campaigns"):
        admin_page.goto(live_url + path)
        assert_accessible(admin_page)
