"""Export: the audience export's rate and peak memory, each run in a fresh process."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.scale import COMMAND
from bench.scale.database import flask_app


def memory(pid: int | str = "self") -> dict[str, int]:
    """A process's resident set now (VmRSS) and at its peak (VmHWM), in KiB. Not
    ru_maxrss: Linux carries that over from the parent across fork and exec."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {"rss": int(fields["VmRSS"].split()[0]), "peak": int(fields["VmHWM"].split()[0])}


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def export_child(purpose: str, output: str, trace: bool) -> dict:
    """Run in a fresh process: write_csv over export(purpose), with the memory it took."""
    import tracemalloc

    from sqlalchemy import text

    from viihde.extensions import db
    from viihde.register import audience

    app = flask_app()
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # connect first: the pool is not the export's
        db.session.rollback()
        before = memory()
        # Start the peak (VmHWM) afresh, so that it is the export's, not the imports'.
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        if trace:
            tracemalloc.start()
        began, cpu = time.perf_counter(), time.process_time()
        rows = 0
        with (
            open(output, "w", encoding="utf-8") as out,
            contextlib.closing(audience.export(purpose)) as batches,
        ):
            for batch in audience.write_csv(batches, out):
                rows += batch
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        traced = tracemalloc.get_traced_memory()[1] if trace else None
        after = memory()
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "cpu_seconds": round(cpu, 2),
        "rss_before_mib": mib(before["rss"]),
        "peak_rss_mib": mib(after["peak"]),
        "peak_rss_growth_mib": mib(after["peak"] - before["rss"]),
        "rss_after_mib": mib(after["rss"]),
        "tracemalloc_peak_mib": round(traced / 2**20, 1) if traced is not None else None,
    }


def export(purpose: str, repeat: int) -> dict:
    """The export in fresh processes (rate and memory), and `flask audience export` itself."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="scale-export-") as directory:
        output = str(Path(directory) / f"{purpose}.csv")
        for trace in [False] * repeat + [True]:
            command = [*COMMAND, "export-child", "--purpose", purpose]
            command += ["--output", output] + (["--tracemalloc"] if trace else [])
            done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        flask = []
        for _ in range(repeat):
            command = [str(Path(sys.executable).parent / "flask"), "--app", "app", "audience"]
            command += ["export", "--purpose", purpose, "--output", output]
            with tempfile.TemporaryFile("w+") as errors:
                began = time.perf_counter()
                process = subprocess.Popen(command, stderr=errors)  # noqa: S603
                peak = 0
                while process.poll() is None:  # its peak, read until it ends
                    with contextlib.suppress(OSError, KeyError):
                        peak = memory(process.pid)["peak"]
                    time.sleep(0.02)
                seconds = time.perf_counter() - began
                errors.seek(0)
                stderr = errors.read()
            if process.returncode:
                raise SystemExit(f"flask audience export failed:\n{stderr}")
            with open(output, encoding="utf-8") as written:
                rows = sum(1 for _ in written) - 1
            flask.append(
                {
                    "rows": rows,
                    "seconds": round(seconds, 2),
                    "rows_per_second": round(rows / seconds),
                    "peak_rss_mib": mib(peak),
                    "says": stderr.strip().splitlines()[-1],
                }
            )
    return {"write_csv": runs[:-1], "tracemalloc": runs[-1], "flask_cli": flask}
