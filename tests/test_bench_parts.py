"""bench/profile.sh's "where each microsecond goes": py-spy's samples shared out to the
parts of a request by the innermost frame that names one (bench/cpu_shares.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "cpu_shares.py"
_spec = importlib.util.spec_from_file_location("cpu_shares", BENCH)
cpu_shares = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpu_shares)


VIEW = [
    "SyncWorker.handle (gunicorn/workers/sync.py:135)",
    "Flask.wsgi_app (flask/app.py:1511)",
    "limited.<locals>.decorator.<locals>.guarded (viihde/web/ratelimits.py:205)",
    "submit (viihde/web/signup/routes.py:80)",
]


def part_of(frames: list[str]) -> str:
    return cpu_shares._part_of([cpu_shares.frame_name(frame) for frame in frames])


def test_the_innermost_frame_that_names_a_part_decides():
    parse = [
        *VIEW[:3],
        "Limits.within (viihde/web/ratelimits.py:110)",
        "target_number (viihde/web/throttle.py:40)",
        "parse_mobile (viihde/phone.py:60)",
        "parse (phonenumbers/phonenumberutil.py:2900)",
    ]
    assert part_of(parse) == "phone numbers"
    site = "/srv/.venv/lib/python3.11/site-packages"  # as py-spy names an installed module
    redis = [*VIEW[:3], "Limits.within (viihde/web/ratelimits.py:110)",
             f"Redis.execute_command ({site}/redis/client.py:600)"]  # fmt: skip
    assert part_of(redis) == "the limits (Redis)"
    statement = [*VIEW, "run (viihde/models/statements.py:200)",
                 "Cursor.execute (psycopg/cursor.py:90)"]  # fmt: skip
    assert part_of(statement) == "SQL statements (psycopg, run)"
    begin = [*statement[:-1], "Session.connection (sqlalchemy/orm/session.py:2000)",
             "_go (sqlalchemy/orm/state_changes.py:130)"]  # fmt: skip
    assert part_of(begin) == "the session's connection and BEGIN"


def test_the_limits_wrapper_is_not_the_limits():
    """The view runs inside the limits' decorator: its own work is not the limits'."""
    assert part_of(VIEW) == "the app's own Python (views, domain)"
    assert part_of(VIEW[:2]) == "Flask's request handling"
    assert part_of(VIEW[:1]) == "gunicorn (accept, parse, write)"
    assert part_of(["<module> (<string>:1)"]) == "other"


def test_each_part_gets_its_share_of_the_cpu_a_request(tmp_path, capsys):
    folded = tmp_path / "worker.folded"
    lines = [";".join(VIEW) + " 3", ";".join(VIEW[:1]) + " 1"]
    folded.write_text("\n".join(lines) + "\n")
    cpu_shares.parts([str(folded)], cpu_ms=2.0)
    out = capsys.readouterr().out
    assert "4 samples" in out
    assert "1500 µs   75.0 %  the app's own Python (views, domain)" in out
    assert "500 µs   25.0 %  gunicorn (accept, parse, write)" in out
