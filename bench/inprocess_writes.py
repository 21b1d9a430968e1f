"""In-process cost of the three hot writes (submitting a number, confirming a code, the
one-tap unsubscribe) through the whole WSGI stack, beside the bare route in the same run,
each request a real write on browsers ``bench/prepare_writes.py`` makes (it EMPTIES the
register: a PostgreSQL database named bench* only). Run by hand, with the settings
``bench/http.sh`` uses:

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench \\
    REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/inprocess_writes.py

Prints each write's statements once, then the wall and CPU time a request of the best
batch of 40 and the CPU time of the median batch (CPU: this process only; the database's
own work is not in it). On a shared machine the best batch can be 40 % under the median:
compare medians across runs, and both only within one run. ``--profile submit``
prints cProfile's view of that write's app functions.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# As bench/http.sh: every limit counted, none refusing neighbouring numbers from one address.
os.environ.update(
    SMS_LIMIT_PER_IP="1000000 per hour;1000000 per day",
    SMS_LIMIT_PER_BLOCK="1000000 per hour",
    SMS_LIMIT_PER_COUNTRY="1000000 per hour",
    SMS_LIMIT_GLOBAL="1000000 per hour",
    SMS_HOURLY_LIMIT="1000000",
    SMS_DAILY_LIMIT="1000000",
    CONFIRMATION_RATE_FLOOR="0",
)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from inprocess import ROOT, bare
from sqlalchemy import event
from werkzeug.test import EnvironBuilder

from viihde.extensions import db

PATHS = {"submit": "/", "confirm": "/code", "unsubscribe": "/preferences"}
WARM, BATCH = 20, 40


def call(path: str, method: str = "GET", body: str = "", cookie: str = "") -> str:
    headers = {"Cookie": cookie} if cookie else {}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    # From a client with an address, as over HTTP: the sign-up breaker then checks all
    # three of its scopes (without one, only the number's range, a shorter statement).
    environ = EnvironBuilder(
        path=path, method=method, base_url=os.environ["PUBLIC_BASE_URL"], data=body,
        headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"},
    ).get_environ()  # fmt: skip
    status = []
    b"".join(bare.app(environ, lambda s, h, e=None: status.append(s)))
    return status[0]


def write(kind: str, browsers: dict, n: int) -> str:
    if kind == "submit":
        cookie, csrf, _ = browsers["submit"][0]
        body = f"csrf_token={csrf}&phone=%2B35840{4000000 + n:07d}&consent=y&utm_source=bench"
    else:
        cookie, csrf, code = browsers[kind][n]
        body = f"csrf_token={csrf}&" + (
            f"code={code}" if kind == "confirm" else f"subscriber={code}&stop_all=1"
        )
    return call(PATHS[kind], "POST", body, cookie)


def best(step, first: int, last: int) -> tuple[float, float, float]:
    """The best batch's wall and CPU seconds a call of ``step(i)``, i in [first, last), and
    the median batch's CPU seconds a call."""
    batches = []
    for start in range(first, last, BATCH):
        end = min(start + BATCH, last)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(start, end):
            step(i)
        batches.append(((time.perf_counter() - wall) / (end - start),
                        (time.process_time() - cpu) / (end - start)))  # fmt: skip
    cpus = sorted(c for _, c in batches)
    return min(w for w, _ in batches), cpus[0], cpus[len(cpus) // 2]


def report(name: str, wall: float, cpu: float, median: float) -> None:
    print(f"{name:<12} {wall * 1e6:8.0f} µs wall {cpu * 1e6:8.0f} µs CPU (best batch), "
          f"{median * 1e6:8.0f} µs CPU (median batch)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300, help="requests of each write")
    parser.add_argument("--profile", choices=PATHS, help="cProfile this write")
    parser.add_argument("--only", choices=PATHS, action="append", help="run this write only")
    arguments = parser.parse_args()
    out = Path(tempfile.gettempdir()) / "bench-inprocess-writes"
    prepare = [sys.executable, str(ROOT / "bench" / "prepare_writes.py")]
    prepare += ["--count", str(arguments.writes + WARM + 10), "--out", str(out)]
    subprocess.run(prepare, check=True, capture_output=True)  # noqa: S603
    browsers = {
        kind: [line.rstrip("\n").split("\t") for line in (out / f"{kind}.txt").open()]
        for kind in PATHS
    }
    statements: list[str] = []

    def sent(conn, cursor, sql, parameters, context, many) -> None:
        statements.append(" ".join(sql.split())[:100])

    with bare.viihde.app_context():
        event.listen(db.engine, "before_cursor_execute", sent)
    wall, cpu, median = best(lambda i: call("/__bare/"), 0, 2000)
    report("bare route", wall, cpu, median)
    for kind in arguments.only or PATHS:
        for n in range(WARM):
            write(kind, browsers, n)
        statements.clear()
        print(f"{kind}: {write(kind, browsers, WARM)}, its statements:")
        print("  " + "\n  ".join(statements))
        profile = cProfile.Profile() if arguments.profile == kind else None
        if profile:
            profile.enable()
        wall, cpu, median = best(lambda n, kind=kind: write(kind, browsers, n), WARM + 1,
                                 WARM + arguments.writes)  # fmt: skip
        if profile:
            profile.disable()
            pstats.Stats(profile).sort_stats("cumulative").print_stats("viihde", 40)
        report(kind, wall, cpu, median)


if __name__ == "__main__":
    main()
