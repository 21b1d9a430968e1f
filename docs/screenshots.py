"""Regenerate the phone-size screenshots in docs/screenshots/ (`make screenshots`).

Runs the app on a throw-away SQLite register, walks the product in Debian's
headless Chromium (Playwright) and saves one PNG per page.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import threading
from pathlib import Path

from flask_migrate import upgrade
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from viihde import create_app  # noqa: E402
from viihde.clock import utcnow  # noqa: E402
from viihde.register.accounts import create_staff  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
PHONE = {"viewport": {"width": 375, "height": 740}, "is_mobile": True, "device_scale_factor": 1}
# A demo account in a throw-away register that lives for the run of this script.
PASSWORD = "kesa-aamu-sataa-lunta-77"  # noqa: S105


def main() -> None:
    work = Path(tempfile.mkdtemp())
    outbox = work / "outbox.jsonl"
    app = create_app(
        {
            "APP_ENV": "development",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{work / 'register.sqlite3'}",
            "SMS_BACKEND": "file",
            "SMS_OUTBOX_PATH": str(outbox),
        }
    )
    with app.app_context():
        upgrade()
        create_staff("tuki@viihdepaketti.fi", "support", PASSWORD, utcnow())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = url
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def last_sms() -> str:
        return json.loads(outbox.read_text().splitlines()[-1])["body"]

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_context(locale="fi-FI", **PHONE).new_page()

        def shot(name: str) -> None:
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
            print(f"docs/screenshots/{name}.png")

        page.goto(f"{url}/?utm_campaign=demo")
        shot("1-landing")
        page.fill("#phone", "040 123 4567")
        page.check("#consent")
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/code")
        shot("2-code")
        page.fill("#code", re.search(r"#(\d+)$", last_sms()).group(1))
        page.click("form[action='/code'] button")
        page.wait_for_url(f"{url}/welcome")
        page.goto(re.search(r"(http\S+)", last_sms()).group(1))
        page.wait_for_url(f"{url}/preferences")
        shot("3-preferences")
        page.goto(f"{url}/preferences/data")
        shot("4-data")
        page.goto(f"{url}/staff/login")
        page.fill("#email", "tuki@viihdepaketti.fi")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.fill("#query", "040 123 4567")
        page.click("form[action='/staff/'] button[type=submit]")
        page.wait_for_url(re.compile(r".*/staff/card/\d+$"))
        shot("5-staff-card")
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
