"""Real headless Chromium (Debian's), driven by Playwright, against the app on loopback.

Skips when Chromium or Playwright is missing (a laptop); .ci/run installs both.
"""

from __future__ import annotations

import shutil
import threading

import pytest
from werkzeug.serving import make_server

from .chromium import CHROMIUM

playwright_api = pytest.importorskip("playwright.sync_api")
if not shutil.which(CHROMIUM):
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


@pytest.fixture
def config_overrides() -> dict:
    return {"PUBLIC_BASE_URL": "http://127.0.0.1"}


@pytest.fixture
def live_url(app):
    """The app served over real HTTP on a free loopback port, for this test."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = url
    # Checking for shutdown every 20 ms rather than serve_forever's 0.5 s: each test ends
    # at once instead of waiting out half a second.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield url
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser
        browser.close()
