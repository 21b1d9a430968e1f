"""Scale benchmark: a register of a million people, and what support and marketing feel of it.

Fills an empty PostgreSQL register (built by the migrations) with N subscribers, about
3 N consent events and a year of SMS log by COPY, then measures the staff look-up (the
console's own code path in process, and the console itself through Flask's test client
with a signed-in admin, audit writes included) and the audience export (rate, and peak
memory in a fresh process). Run by hand, never by the test suite: it DROPS the schema of
the database it is given.

    createdb scale   # or: psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE scale'
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/scale bench/scale.sh compare
    bench/scale.sh run --subscribers 100000   # one size: fill, look-up, export, plans

Subcommands: ``fill``, ``lookup``, ``export``, ``explain`` (the stages, on the register as
it is); ``run`` (all of them for one size, with a JSON summary); ``compare`` (``run`` for
each size in a fresh process, then a Markdown table). bench/scale.sh runs this package
(``python -m bench.scale``): one module per stage (``fill``, ``lookup``, ``export``,
``explain``; ``run`` for run and compare), on the synthetic register (``shape``, ``rows``)
and the database it is given (``database``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)  # flask_migrate finds migrations/ here, `flask --app app` finds app.py

#: This benchmark's command line, for the stages it runs in a fresh process.
COMMAND = (sys.executable, "-m", "bench.scale")
