"""The command line: bench/scale.sh runs ``python -m bench.scale <subcommand>``."""

from __future__ import annotations

import argparse
import json
import os

from bench import scale
from bench.scale.explain import explain
from bench.scale.export import export, export_child
from bench.scale.fill import fill
from bench.scale.lookup import lookup
from bench.scale.run import compare, run


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="bench/scale.sh", description=scale.__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def sized(command: argparse.ArgumentParser) -> None:
        command.add_argument("--subscribers", type=int, default=1_000_000)
        command.add_argument("--events-per-subscriber", type=float, default=3.0)
        command.add_argument("--seed", type=int, default=2026)

    def measured(command: argparse.ArgumentParser) -> None:
        command.add_argument("--samples", type=int, default=2000, help="look-ups timed")
        command.add_argument("--digit-samples", type=int, default=100, help="last-digit searches")
        command.add_argument("--repeat", type=int, default=2, help="each measurement, times")

    sized(commands.add_parser("fill", help="migrate an empty register and fill it"))
    lookup_command = commands.add_parser("lookup", help="staff look-up latency")
    measured(lookup_command)
    lookup_command.add_argument("--seed", type=int, default=2026)
    export_command = commands.add_parser("export", help="audience export rate and memory")
    export_command.add_argument("--purpose", default="offers")
    export_command.add_argument("--repeat", type=int, default=2)
    child = commands.add_parser("export-child", help=argparse.SUPPRESS)
    child.add_argument("--purpose", default="offers")
    child.add_argument("--output", default=os.devnull)
    child.add_argument("--tracemalloc", action="store_true")
    explain_command = commands.add_parser("explain", help="query plans (EXPLAIN ANALYZE)")
    explain_command.add_argument("--purpose", default="offers")
    run_command = commands.add_parser("run", help="fill, then measure everything")
    sized(run_command)
    measured(run_command)
    run_command.add_argument("--purpose", default="offers")
    run_command.add_argument("--no-fill", action="store_true", help="measure the register as is")
    run_command.add_argument("--json", help="write the summary here")
    compare_command = commands.add_parser("compare", help="run at each size, then a table")
    compare_command.add_argument(
        "--sizes", type=lambda v: [int(s) for s in v.split(",")], default=[100_000, 1_000_000]
    )
    compare_command.add_argument("--events-per-subscriber", type=float, default=3.0)
    measured(compare_command)
    args = parser.parse_args()

    if args.command == "fill":
        print(json.dumps(fill(args.subscribers, args.events_per_subscriber, args.seed), indent=1))
    elif args.command == "lookup":
        for n in range(args.repeat):
            print(json.dumps(lookup(args.samples, args.digit_samples, args.seed + n), indent=1))
    elif args.command == "export":
        print(json.dumps(export(args.purpose, args.repeat), indent=1))
    elif args.command == "export-child":
        print(json.dumps(export_child(args.purpose, args.output, args.tracemalloc)))
    elif args.command == "explain":
        for name, plan in explain(args.purpose).items():
            print(f"-- {name}\n{plan}\n")
    elif args.command == "run":
        run(args)
    elif args.command == "compare":
        compare(args)


if __name__ == "__main__":
    main()
