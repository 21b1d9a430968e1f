"""Number-holder changes: a reassigned number never gets the previous holder's marketing.

An operator's register lists numbers that got a new holder and the date of the change.
Every grant given before that date was the previous holder's: it is withdrawn with the
source ``register_update``, and the previous holder's preference links are revoked.
A grant given on or after the date is the new holder's own and stays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from viihde.clock import helsinki_day, start_of_day
from viihde.models import ConsentActor, ConsentSource
from viihde.register import consent
from viihde.register.files import BadRow, FileReport, number_and_day, rows

CONTEXT = consent.ConsentContext(ConsentSource.REGISTER_UPDATE, actor=ConsentActor.SYSTEM)
NUMBER_COLUMN = "number"
DATE_COLUMN = "changed_on"


@dataclass(frozen=True)
class HolderChange:
    """One good row: a number that got a new holder at ``since`` (UTC)."""

    line: int
    phone_e164: str
    since: datetime


@dataclass
class SyncReport(FileReport):
    """What a sync read, skipped and changed (or, in a dry run, would change)."""

    numbers_matched: int = 0
    consents_withdrawn: int = 0
    links_revoked: int = 0

    def counts(self) -> str:
        """The counts alone, for the audit log."""
        return (
            f"rows={self.rows_read} bad={len(self.bad_rows)} matched={self.numbers_matched} "
            f"withdrawn={self.consents_withdrawn} links_revoked={self.links_revoked}"
            + (" dry_run" if self.dry_run else "")
        )


def read_changes(
    lines: Iterable[str], now: datetime, allowed_regions: Sequence[str], report: SyncReport
) -> list[HolderChange]:
    """The good rows of a holder-change CSV; bad ones go to ``report.bad_rows``."""
    columns, numbered = rows(lines, (NUMBER_COLUMN, DATE_COLUMN))
    today = helsinki_day(now)
    changes = []
    for line, row in numbered:
        report.rows_read += 1
        try:
            phone, day = number_and_day(
                row, columns[NUMBER_COLUMN], columns[DATE_COLUMN], today, allowed_regions
            )
        except ValueError as error:
            report.bad_rows.append(BadRow(line, str(error)))
            continue
        changes.append(HolderChange(line, phone, start_of_day(day)))
    return changes


def apply_changes(changes: Iterable[HolderChange], now: datetime, report: SyncReport) -> None:
    """Withdraw the previous holders' grants and revoke their links (no commit: the whole
    run is one transaction, the caller's, with its audit entry; a dry run rolls it back,
    so what it reports is exactly what a real run would do)."""
    matched: set[int] = set()
    revoked: set[int] = set()
    for change in changes:
        # Not subjects.revoke_links: it would text a fresh link to the number, which
        # is now the new holder's.
        subscriber, withdrawn = consent.withdraw_grants_before(
            change.phone_e164, change.since, CONTEXT, now
        )
        if subscriber is None:
            continue
        matched.add(subscriber.id)
        if withdrawn:
            revoked.add(subscriber.id)
        report.consents_withdrawn += len(withdrawn)
    report.numbers_matched = len(matched)
    report.links_revoked = len(revoked)


def sync_holders(
    lines: Iterable[str], now: datetime, allowed_regions: Sequence[str], dry_run: bool = False
) -> SyncReport:
    """Read a holder-change CSV (text lines or a text file) and apply its good rows at once
    (no commit)."""
    report = SyncReport(dry_run=dry_run)
    changes = read_changes(lines, now, allowed_regions, report)
    apply_changes(changes, now, report)
    return report
