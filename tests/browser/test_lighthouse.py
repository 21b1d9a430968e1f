"""Lighthouse, at its default phone size, scores the landing page, the code page and the
preference page at least 0.95 in performance, accessibility, best practices and SEO.

Runs the command line of the Lighthouse that package.json pins (`npm ci` installs it; .ci/run
does) with Debian's chromium, through lighthouse.mjs, which ends it as soon as the report is
written; skips where node_modules holds no Lighthouse (a laptop without npm).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .chromium import CHROMIUM

LIGHTHOUSE = Path(__file__).resolve().parents[2] / "node_modules" / "lighthouse"
RUNNER = Path(__file__).with_name("lighthouse.mjs")
NODE = shutil.which("node")
if not (LIGHTHOUSE / "cli" / "bin.js").exists() or NODE is None:
    pytest.skip("Lighthouse is not installed (npm ci)", allow_module_level=True)

CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
MIN_SCORE = 0.95
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-background-networking "
    "--disable-component-update --disable-gpu"
)


def lighthouse(url: str, report: Path, cookie: str | None = None) -> dict:
    """Lighthouse's report on one page (its own Chrome, the phone form factor)."""
    command = [
        NODE,
        str(RUNNER),
        url,
        "--output=json",
        f"--output-path={report}",
        "--quiet",
        f"--only-categories={','.join(CATEGORIES)}",
        f"--chrome-flags={CHROME_FLAGS}",
        "--disable-full-page-screenshot",  # a picture for the HTML report only
    ]
    if cookie:
        command.append("--extra-headers=" + json.dumps({"Cookie": cookie}))
    result = subprocess.run(  # noqa: S603  (our own pinned tool, our own arguments)
        command,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "CHROME_PATH": CHROMIUM},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(report.read_text())


def scores(report: dict) -> dict[str, float]:
    return {name: report["categories"][name]["score"] for name in CATEGORIES}


def lost_points(report: dict) -> list[str]:
    """The audits that cost a category below MIN_SCORE some of its score, by title."""
    lost = []
    for name in CATEGORIES:
        category = report["categories"][name]
        if category["score"] >= MIN_SCORE:
            continue
        for ref in category["auditRefs"]:
            audit = report["audits"][ref["id"]]
            if ref["weight"] > 0 and audit["score"] is not None and audit["score"] < 1:
                shown = audit.get("displayValue") or ""
                lost.append(f"{name}: {audit['title']} ({audit['score']}) {shown}".strip())
    return lost


def session_cookie(app, client) -> str:
    """The test client's session, as a Cookie header for Lighthouse's browser."""
    name = app.config["SESSION_COOKIE_NAME"]
    return f"{name}={client.get_cookie(name).value}"


@pytest.mark.parametrize("page", ["landing", "code", "preferences"])
def test_lighthouse_scores_the_page_at_least_0_95(live_url, app, visitor, page, tmp_path):
    """The code page and the preference page need a session: the sign-up walked this far."""
    path, cookie = "/", None
    if page == "code":
        visitor.submit_number("040 123 4567")
        path, cookie = "/code", session_cookie(app, visitor.client)
    elif page == "preferences":
        visitor.sign_up("040 123 4567")
        path, cookie = "/preferences", session_cookie(app, visitor.client)
    report = lighthouse(live_url + path, tmp_path / "report.json", cookie)
    assert report["finalDisplayedUrl"] == live_url + path  # not redirected away
    print(f"Lighthouse {report['lighthouseVersion']} {path}: {scores(report)}")
    assert min(scores(report).values()) >= MIN_SCORE, (scores(report), lost_points(report))
