"""The two halves of ``bench/profile.sh``'s report, run by it (by hand, never by the tests).

``cpu SECONDS``: the CPU time each kind of process on the machine used while a load ran
(gunicorn's workers, PostgreSQL, Redis, wrk, ...), read from /proc at the start and end
of SECONDS, in CPU seconds a second (2.0 is both cores); ``profile.sh`` divides it by
the requests a second wrk saw.

``shares FILE...``: py-spy's raw (folded) stacks of the workers, summed; each function's
inclusive share of the samples (its own time and its callees'), the highest first. With
``py-spy record --gil`` a sample is taken only while a thread holds the interpreter, so
the shares are of the Python CPU time, without the waits on PostgreSQL and Redis.
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
    for file in files:
        for line in Path(file).read_text().splitlines():
            if not line.strip():
                continue
            stack, count = line.rsplit(" ", 1)
            samples += int(count)
            frames = {_LINE.sub(")", _SITE.sub(" (", frame)) for frame in stack.split(";")}
            for frame in frames:  # once a stack: recursion does not count twice
                inclusive[frame] += int(count)
    print(f"{samples} samples; each function's inclusive share (those in every sample left out):")
    shown = [(frame, count) for frame, count in inclusive.most_common() if count < samples]
    for frame, count in shown[:top]:
        print(f"  {100 * count / samples:5.1f} %  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cpu_command = commands.add_parser("cpu")
    cpu_command.add_argument("seconds", type=float)
    shares_command = commands.add_parser("shares")
    shares_command.add_argument("files", nargs="+")
    shares_command.add_argument("--top", type=int, default=60)
    arguments = parser.parse_args()
    if arguments.command == "cpu":
        cpu(arguments.seconds)
    else:
        shares(arguments.files, arguments.top)


if __name__ == "__main__":
    main()
