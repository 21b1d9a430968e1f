"""Run: every stage at one size, with a summary; compare: each size, then a table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.scale import COMMAND
from bench.scale.database import connect
from bench.scale.explain import explain
from bench.scale.export import export
from bench.scale.fill import fill
from bench.scale.lookup import lookup
from bench.scale.rows import FILLED


def run(args) -> dict:
    """Fill (``--repeat`` times: the figures of each fill are kept), show the plans, then
    measure the look-up and the export ``--repeat`` times each."""
    summary: dict = {"subscribers": args.subscribers, "machine": machine(), "load": {}}
    print(f"== {args.subscribers:,} subscribers", flush=True)
    if not args.no_fill:
        summary["fills"] = []
        for _ in range(args.repeat):
            summary["load"].setdefault("fill", []).append(round(os.getloadavg()[0], 1))
            summary["fills"].append(fill(args.subscribers, args.events_per_subscriber, args.seed))
            print(json.dumps(summary["fills"][-1], indent=1), flush=True)
        summary["fill"] = summary["fills"][-1]
    plans = explain(args.purpose)
    summary["plans"] = plans
    for name, plan in plans.items():
        print(f"-- {name}: {plan.splitlines()[0].strip()} | {plan.splitlines()[-1].strip()}")
    summary["lookup"] = []
    for n in range(args.repeat):
        summary["load"].setdefault("lookup", []).append(round(os.getloadavg()[0], 1))
        summary["lookup"].append(lookup(args.samples, args.digit_samples, args.seed + n))
        print(json.dumps(summary["lookup"][-1], indent=1), flush=True)
    summary["load"]["export"] = [round(os.getloadavg()[0], 1)]
    summary["export"] = export(args.purpose, args.repeat)
    print(json.dumps(summary["export"], indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return summary


def machine() -> dict:
    with connect() as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN "
                "('shared_buffers', 'work_mem', 'maintenance_work_mem', 'max_wal_size')"
            ).fetchall()
        )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": sys.version.split()[0],
        "postgresql": version,
        "postgresql_settings": settings,
        "load_average": os.getloadavg(),
    }


def compare(args) -> None:
    summaries = []
    for size in args.sizes:
        output = Path(tempfile.gettempdir()) / f"scale-{size}.json"
        command = [*COMMAND, "run", "--subscribers", str(size)]
        command += ["--events-per-subscriber", str(args.events_per_subscriber)]
        command += ["--repeat", str(args.repeat), "--samples", str(args.samples)]
        command += ["--digit-samples", str(args.digit_samples), "--json", str(output)]
        subprocess.run(command, check=True)  # noqa: S603
        summaries.append(json.loads(output.read_text()))
    print()
    print(table(summaries))


def table(summaries: list[dict]) -> str:
    """The figures at each size side by side, each repeated measurement shown."""

    def each(values) -> str:  # each repeated measurement, separated by "; "
        return "; ".join(str(v) for v in values)

    rows: list[tuple[str, Callable[[dict], str]]] = [
        ("subscribers / holdings / consent events / SMS log rows", lambda s: " / ".join(
            f"{s['fill']['rows'][t]:,}" for t in FILLED)),
        ("with a grant in force", lambda s: f"{s['fill']['with_a_grant_in_force']:.0%}"),
        ("fill: total (migrate, COPY, indexes, state, vacuum+analyze) s", lambda s: each(
            f"{f['seconds']['total']} ({f['seconds']['migrate']}, {f['seconds']['copy']}, "
            f"{f['seconds']['indexes']}, {f['seconds'].get('state', '–')}, "
            f"{f['seconds']['analyze']})"
            for f in s.get("fills", [s["fill"]]))),
        ("load average (1 min) at the start: fill; look-up; export", lambda s: " · ".join(
            each(s["load"].get(stage, [])) for stage in ("fill", "lookup", "export"))),
    ]  # fmt: skip
    for name in summaries[0]["lookup"][0]:
        rows.append(
            (
                f"{name}: p50 / p95 / p99 ms",
                lambda s, name=name: each(
                    f"{run[name]['p50']} / {run[name]['p95']} / {run[name]['p99']}"
                    for run in s["lookup"]
                ),
            )
        )

    def exported(kind: str, key: str) -> Callable[[dict], str]:
        return lambda s: each(run[key] for run in s["export"][kind])

    rows += [
        ("export (write_csv): rows", lambda s: f"{s['export']['write_csv'][0]['rows']:,}"),
        ("export (write_csv): seconds", exported("write_csv", "seconds")),
        ("export (write_csv): rows/s", exported("write_csv", "rows_per_second")),
        ("export: CPU seconds of the exporting process", exported("write_csv", "cpu_seconds")),
        ("export: peak RSS growth MiB", exported("write_csv", "peak_rss_growth_mib")),
        ("export: tracemalloc peak MiB", lambda s: each([s["export"]["tracemalloc"][
            "tracemalloc_peak_mib"]])),
        ("`flask audience export`: seconds", exported("flask_cli", "seconds")),
        ("`flask audience export`: peak RSS MiB", exported("flask_cli", "peak_rss_mib")),
    ]  # fmt: skip
    sizes = [f"{s['subscribers']:,}" for s in summaries]
    lines = ["| | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    for name, cell in rows:
        cells = []
        for summary in summaries:
            try:
                cells.append(cell(summary))
            except (KeyError, IndexError):
                cells.append("–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
