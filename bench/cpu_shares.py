"""The two halves of ``bench/profile.sh``'s report, run by it (by hand, never by the tests).

``cpu SECONDS``: the CPU time each kind of process on the machine used while a load ran
(gunicorn's workers, PostgreSQL, Redis, wrk, ...), read from /proc at the start and end
of SECONDS, in CPU seconds a second (2.0 is both cores); ``profile.sh`` divides it by
the requests a second wrk saw.

``shares FILE...``: py-spy's raw (folded) stacks of the workers, summed; each function's
inclusive share of the samples (its own time and its callees'), the highest first. With
``py-spy record --gil`` a sample is taken only while a thread holds the interpreter, so
the shares are of the Python CPU time, without the waits on PostgreSQL and Redis.

``parts FILE... --cpu-ms MS``: the same samples, each given to one part of a request's
work (``PARTS``: the SQL statements, the session cookie, the limits, ...) by the innermost
frame that names one, and the part's share of the workers' ``MS`` milliseconds of CPU a
request in microseconds: where each microsecond goes. A sample no part names goes to the
library its innermost frame is in (Flask's and werkzeug's request handling, gunicorn's
HTTP) or to the app's own Python. The samples are taken while the interpreter is held:
the workers' time in the kernel with it released (waiting aside) is shared out with them.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections import Counter
from pathlib import Path

#: A frame as py-spy writes it: "function (path/to/module.py:line)".
_SITE = re.compile(r" \(.*?/site-packages/")
_LINE = re.compile(r":\d+\)$")


def cpu_by_process() -> Counter:
    """CPU seconds used so far by each process name (live processes only)."""
    tick = os.sysconf("SC_CLK_TCK")
    used: Counter = Counter()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")].split("/")[0]  # kworker/1:3 ...
        fields = stat[stat.rindex(")") + 2 :].split()
        used[name] += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return used


def cpu(seconds: float) -> None:
    """Print "name<TAB>CPU seconds a second" for each process name that used any."""
    before = cpu_by_process()
    time.sleep(seconds)
    spent = cpu_by_process() - before
    for name, total in spent.most_common():
        if total / seconds >= 0.02:
            print(f"{name}\t{total / seconds:.3f}")


def shares(files: list[str], top: int) -> None:
    samples = 0
    inclusive: Counter = Counter()
    for frames, count in _folded(files):
        samples += count
        for frame in set(frames):  # once a stack: recursion does not count twice
            inclusive[frame] += count
    print(f"{samples} samples; each function's inclusive share (those in every sample left out):")
    shown = [(frame, count) for frame, count in inclusive.most_common() if count < samples]
    for frame, count in shown[:top]:
        print(f"  {100 * count / samples:5.1f} %  {frame}")


#: The parts of a request, each a pattern of the frames that do its work (py-spy's
#: "function (file)"). The innermost frame that matches any decides: a phone number parsed
#: for the limits is the phone numbers' part, redis-py under the limits is the limits'.
PARTS = {
    "SQL statements (psycopg, run)": r"\(viihde/models/statements\.py|\(psycopg/",
    "the session's connection and BEGIN": r"^Session\.connection |^Session\._connection_for_bind",
    "the commit (SQLAlchemy's session)": r"^scoped_session\.commit ",
    "ending the request's session": r"^scoped_session\.remove ",
    "the SMS job (RQ)": r"^enqueue_delivery \(viihde/sms/queue",
    # The limits' own functions, not the decorator's wrapper (the whole view runs in it).
    "the limits (Redis)": r"^(Limits\.|counters )|\(viihde/web/throttle\.py",
    "phone numbers": r"\(phonenumbers/|\(viihde/phone\.py",
    "the session cookie": r"^SecureCookieSessionInterface\.(open|save)_session ",
    "the CSRF token": r"\(flask_wtf/csrf\.py",
    "the form (WTForms)": r"\(wtforms/|\(flask_wtf/form\.py|\(viihde/web/\w+/forms\.py",
    "the form's body (werkzeug)": r"^Request\._load_form_data ",
    "templates (Jinja)": r"\(jinja2/|^render_template ",
    "keyed hashes (hmac)": r"\(viihde/hashing\.py",
    "the preference link (itsdangerous)": r"\(viihde/tokens\.py|\(viihde/register/links\.py",
    "gunicorn's access line": r"^Logger\.access ",
}
#: Where a sample no part names goes: the library of its innermost frame, else "other".
LIBRARIES = {
    "the app's own Python (views, domain)": r"\(viihde/",
    "Flask's request handling": r"\(flask/",
    "werkzeug (request, response, routing)": r"\(werkzeug/",
    "gunicorn (accept, parse, write)": r"\(gunicorn/",
    "SQLAlchemy (the ORM's objects, other)": r"\(sqlalchemy/",
    "redis-py (other)": r"\(redis/",
}


def frame_name(frame: str) -> str:
    """A frame as the reports name it: "function (package/module.py)"."""
    return _LINE.sub(")", _SITE.sub(" (", frame))


def _folded(files: list[str]):
    """Each stack of the files (its frames, outermost first) with its sample count."""
    for file in files:
        for line in Path(file).read_text().splitlines():
            if line.strip():
                stack, count = line.rsplit(" ", 1)
                yield [frame_name(frame) for frame in stack.split(";")], int(count)


def _part_of(frames: list[str]) -> str:
    for table in (PARTS, LIBRARIES):
        for frame in reversed(frames):
            for part, pattern in table.items():
                if re.search(pattern, frame):
                    return part
    return "other"


def parts(files: list[str], cpu_ms: float) -> None:
    """Print each part's share of the samples and of ``cpu_ms`` a request."""
    counted: Counter = Counter()
    for frames, count in _folded(files):
        counted[_part_of(frames)] += count
    samples = sum(counted.values())
    print(f"{samples} samples; each part's share of the workers' {cpu_ms:.3f} ms a request:")
    for part, count in counted.most_common():
        share = count / samples
        print(f"  {1000 * cpu_ms * share:6.0f} µs  {100 * share:5.1f} %  {part}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cpu_command = commands.add_parser("cpu")
    cpu_command.add_argument("seconds", type=float)
    shares_command = commands.add_parser("shares")
    shares_command.add_argument("files", nargs="+")
    shares_command.add_argument("--top", type=int, default=60)
    parts_command = commands.add_parser("parts")
    parts_command.add_argument("files", nargs="+")
    parts_command.add_argument("--cpu-ms", type=float, required=True)
    arguments = parser.parse_args()
    if arguments.command == "cpu":
        cpu(arguments.seconds)
    elif arguments.command == "parts":
        parts(arguments.files, arguments.cpu_ms)
    else:
        shares(arguments.files, arguments.top)


if __name__ == "__main__":
    main()
