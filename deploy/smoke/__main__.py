"""The command line: every check run and printed, then a summary; exit 1 on any failure."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from deploy.smoke.resilience import resilience
from deploy.smoke.scenes import (
    Scene,
    finnish_sign_up,
    limits_see_the_client,
    logs_keep_no_link,
    open_link_and_unsubscribe,
    reply_stop,
    runs_as_the_service_account,
    staff_look_up,
    swedish_sign_up,
)
from deploy.smoke.stack import BASE, RUN
from deploy.smoke.visitors import NETWORK


@dataclass
class Report:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, run: Callable[[], str | None]) -> None:
        started = time.monotonic()
        try:
            detail = run() or ""
            ok = True
        except Exception as error:  # a failed check is reported with the others, not raised
            detail, ok = f"{type(error).__name__}: {error}", False
        took = time.monotonic() - started
        self.checks.append((name, ok, detail))
        print(f"{'ok  ' if ok else 'FAIL'} {name} ({took:.1f} s){': ' + detail if detail else ''}")

    @property
    def failed(self) -> int:
        return sum(1 for _, ok, _ in self.checks if not ok)


def main() -> int:
    if not (RUN / "supervisor.sock").exists():
        print("prod-smoke: nothing is running; make prod-up first", file=sys.stderr)
        return 1
    print(f"prod-smoke against {BASE}, clients from {NETWORK}.0/24")
    scene = Scene()
    report = Report()
    report.check("a visitor signs up in Finnish", lambda: finnish_sign_up(scene))
    report.check("a visitor signs up in Swedish", lambda: swedish_sign_up(scene))
    report.check(
        "the recipient opens the link and unsubscribes", lambda: open_link_and_unsubscribe(scene)
    )
    report.check("a reply STOP through the signed webhook", lambda: reply_stop(scene))
    report.check("support looks the number up", lambda: staff_look_up(scene))
    report.check("the limits see the client, not nginx", lambda: limits_see_the_client(scene))
    report.check("an instance and a worker stop mid-run", lambda: resilience(scene))
    report.check("the logs keep no link", lambda: logs_keep_no_link(scene))
    report.check(
        "the stack runs as viihde, its files private", lambda: runs_as_the_service_account(scene)
    )
    passed = len(report.checks) - report.failed
    print(f"\nprod-smoke: {passed} of {len(report.checks)} checks passed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
