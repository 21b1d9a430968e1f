"""In-process cost of a request through the whole WSGI stack, without gunicorn or wrk:
the bare route, the floor routes of ``bench/bare.py``, the pages; then the floor routes
again with the extensions' request hooks taken away one after another, so that what
each costs shows. Run by hand, with the settings ``bench/http.sh`` uses:

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench \\
    REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/inprocess.py

Prints the best of three runs of ``--requests`` requests, in microseconds a request, and
as a multiple of the bare route's in the same run (absolute microseconds differ several
times between machines, and between minutes on a shared one). The peer, Flask-Security-Too's
sign-in page (``bench/peer.py``), is measured too when it is installed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.update(
    APP_ENV="production",
    SMS_BACKEND="file",
    SMS_OUTBOX_PATH=str(Path(tempfile.gettempdir()) / "bench-outbox.jsonl"),
    PUBLIC_BASE_URL="http://127.0.0.1:8101",
    TRUSTED_HOSTS="127.0.0.1",
    # As bench/http.sh: the SMS budget raised, so that the messages earlier runs logged in
    # the bench database do not pause sign-ups (the landing page measured is the usual one,
    # not the "paused" one it was before 2026-12-07).
    SMS_HOURLY_LIMIT="1000000",
    SMS_DAILY_LIMIT="1000000",
)
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
os.environ.setdefault("HASH_KEY", secrets.token_urlsafe(48))
sys.path.insert(0, str(ROOT / "bench"))

import bare  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

#: The app-wide request hooks, by the module that adds them (``without`` takes them away).
HOOKS = ("flask_wtf", "web.security", "ops.metrics", "ops.logs")


def per_request(path: str, count: int, cookie: str | None = None) -> float:
    headers = {"Cookie": cookie} if cookie else {}
    environ = EnvironBuilder(path=path, base_url=os.environ["PUBLIC_BASE_URL"], headers=headers)
    environ = environ.get_environ()

    def one() -> None:
        b"".join(bare.app(dict(environ), lambda status, headers, exc_info=None: None))

    for _ in range(300):
        one()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count):
            one()
        best = min(best, (time.perf_counter() - start) / count)
    return best * 1e6


def without(name: str) -> None:
    """Take the app's request hooks that come from the module ``name`` away."""
    app = bare.viihde
    for hooks in (app.before_request_funcs, app.after_request_funcs):
        for key, functions in hooks.items():
            hooks[key] = [f for f in functions if name not in repr(f) + f.__module__]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    count = parser.parse_args().requests
    prepare = [sys.executable, str(ROOT / "bench" / "prepare.py")]
    prepared = subprocess.run(prepare, capture_output=True, text=True, check=True)  # noqa: S603
    cookie = prepared.stdout.strip().splitlines()[-1]
    pages = [
        ("bare", "/__bare/", None, count),
        ("app-ok", "/__bench/ok", None, count),
        ("app-page", "/__bench/page", None, count),
        ("privacy", "/privacy", None, count),
        ("landing", "/", None, count),
        ("preferences", "/preferences", cookie, count // 3),
    ]
    if "/__peer" in bare.mounts:
        pages.insert(3, ("peer-login", "/__peer/login", None, count))
    floor = None
    for name, path, with_cookie, requests in pages:
        cost = per_request(path, requests, with_cookie)
        floor = floor or cost
        print(f"{name:<12} {cost:8.0f} µs {cost / floor:6.1f} x bare")
    for name in HOOKS:
        without(name)
        print(
            f"without {name:<9} (and those above): app-ok "
            f"{per_request('/__bench/ok', count):.0f} µs, "
            f"app-page {per_request('/__bench/page', count):.0f} µs"
        )


if __name__ == "__main__":
    main()
