"""The purge, run: each of retention's units of work in its own transaction, committed
with its audit entry (or, in a dry run, rolled back); a unit the database refuses is
rolled back and ends its category, the others go on."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from viihde.extensions import db
from viihde.register import audit, retention

log = logging.getLogger(__name__)


class PurgeFailed(RuntimeError):
    """Some of the purge's categories failed and were rolled back (the rest are done)."""

    def __init__(self, failures: dict[str, str]) -> None:
        listed = ", ".join(f"{category} ({error})" for category, error in failures.items())
        super().__init__(f"retention purge failed: {listed}")
        self.failures = failures


def run(
    now: datetime, dry_run: bool = False, actor: audit.Actor = retention.SYSTEM
) -> retention.PurgeReport:
    """Remove everything past its retention time (with ``dry_run``, only count it); the
    report counts what each committed unit removed, and names the categories that failed."""
    report = retention.PurgeReport(dry_run=dry_run, actor=actor)
    for unit in retention.units(now, report):
        if unit.category in report.failures:
            continue
        try:
            counts = unit.work()
            if dry_run:
                db.session.rollback()
            else:
                db.session.commit()
        except SQLAlchemyError as error:
            db.session.rollback()
            # The type only: a database error's text can carry the statement's parameters.
            report.failures[unit.category] = type(error).__name__
            log.error(
                "retention_purge_failed category=%s error=%s", unit.category, type(error).__name__
            )
            continue
        for name, count in counts.items():
            setattr(report, name, getattr(report, name) + count)
    return report
