"""Number-holder changes: a reassigned number never gets the previous holder's marketing.

An operator's register lists numbers that got a new holder and the date of the change.
Every grant given before that date was the previous holder's: it is withdrawn with the
source ``register_update``, and the previous holder's preference links are revoked.
A grant given on or after the date is the new holder's own and stays.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from . import consent
from .clock import helsinki_day, start_of_day
from .extensions import db
from .phone import PhoneError, parse_mobile

SOURCE = "register_update"
CONTEXT = consent.ConsentContext(SOURCE, actor="system")
NUMBER_COLUMN = "number"
DATE_COLUMN = "changed_on"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class HoldersFileError(ValueError):
    """The file as a whole cannot be read (no header, a required column missing)."""


@dataclass(frozen=True)
class HolderChange:
    """One good row: a number that got a new holder at ``since`` (UTC)."""

    line: int
    phone_e164: str
    since: datetime


@dataclass(frozen=True)
class BadRow:
    """A row that was skipped: its CSV line (the header is line 1) and why, never the number."""

    line: int
    reason: str


@dataclass
class SyncReport:
    """What a sync read, skipped and changed (or, in a dry run, would change)."""

    dry_run: bool = False
    rows_read: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
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
    lines = iter(lines)
    header_line = next(lines, "").lstrip("\ufeff")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    header = [name.strip().lower() for name in next(csv.reader([header_line], delimiter=delimiter))]
    missing = [name for name in (NUMBER_COLUMN, DATE_COLUMN) if name not in header]
    if missing:
        raise HoldersFileError(f"the header (line 1) lacks the column(s): {', '.join(missing)}")
    number_at, date_at = header.index(NUMBER_COLUMN), header.index(DATE_COLUMN)
    today = helsinki_day(now)
    reader = csv.reader(lines, delimiter=delimiter)
    changes = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        report.rows_read += 1
        line = reader.line_num + 1  # the header was read before the reader started
        try:
            changes.append(_change(row, number_at, date_at, line, today, allowed_regions))
        except ValueError as error:
            report.bad_rows.append(BadRow(line, str(error)))
    return changes


def _change(
    row: list[str],
    number_at: int,
    date_at: int,
    line: int,
    today: date,
    allowed_regions: Sequence[str],
) -> HolderChange:
    """One row as a change, or ValueError saying why not (never with the number in it)."""
    if len(row) <= max(number_at, date_at) or not row[number_at].strip():
        raise ValueError("missing column")
    try:
        phone = parse_mobile(row[number_at], allowed_regions)
    except PhoneError as error:
        raise ValueError(f"not a mobile number ({error.reason})") from None
    text = row[date_at].strip()
    if not _ISO_DATE.fullmatch(text):
        raise ValueError("bad date (YYYY-MM-DD expected)" if text else "missing column")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError("bad date (YYYY-MM-DD expected)") from None
    if day > today:
        raise ValueError("future date")
    return HolderChange(line, phone, start_of_day(day))


def apply_changes(changes: Iterable[HolderChange], now: datetime, report: SyncReport) -> None:
    """Withdraw the previous holders' grants and revoke their links, all in one transaction.

    Anything raising rolls the whole run back. A dry run does the same work and rolls it
    back, so what it reports is exactly what a real run would do.
    """
    matched: set[int] = set()
    revoked: set[int] = set()
    try:
        for change in changes:
            # Not subjects.revoke_links: it would text a fresh link to the number, which
            # is now the new holder's, and commit halfway through the run.
            subscriber, withdrawn = consent.withdraw_grants_before(
                change.phone_e164, change.since, CONTEXT, now
            )
            if subscriber is None:
                continue
            matched.add(subscriber.id)
            if withdrawn:
                revoked.add(subscriber.id)
            report.consents_withdrawn += len(withdrawn)
        if report.dry_run:
            db.session.rollback()
        else:
            db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    report.numbers_matched = len(matched)
    report.links_revoked = len(revoked)


def sync_holders(
    lines: Iterable[str], now: datetime, allowed_regions: Sequence[str], dry_run: bool = False
) -> SyncReport:
    """Read a holder-change CSV (text lines or a text file) and apply its good rows at once."""
    report = SyncReport(dry_run=dry_run)
    changes = read_changes(lines, now, allowed_regions, report)
    apply_changes(changes, now, report)
    return report
