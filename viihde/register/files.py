"""The register's CSV files (number-holder changes, customers): the header, the rows by
line number, and each row's number and day, with reasons that never name the number."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

from viihde.phone import PhoneError, parse_mobile

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: A number as a spreadsheet writes a numeric cell ("358401234567.0", "4.01234567E8").
_SPREADSHEET_NUMBER = re.compile(r"^\s*\+?(?:\d+\.0+|\d+(?:\.\d+)?[eE][+-]?\d+)\s*$")


class RegisterFileError(ValueError):
    """The file as a whole cannot be read (no header, a required column missing, a line
    the csv module refuses)."""


@dataclass(frozen=True)
class BadRow:
    """A row that was skipped: its CSV line (the header is line 1) and why, never the number."""

    line: int
    reason: str


@dataclass
class FileReport:
    """What a run over a register file read and skipped (a dry run changes nothing)."""

    dry_run: bool = False
    rows_read: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)


def rows(
    lines: Iterable[str], required: Sequence[str], optional: Sequence[str] = ()
) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    """Each column's place, and the non-blank rows with their line numbers; "," or ";"
    separated, a byte-order mark ignored. A row that the csv module cannot read, or that
    runs over several lines (a quote left open), raises RegisterFileError as it comes."""
    lines = iter(lines)
    header_line = next(lines, "").lstrip("\ufeff")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    try:
        header = next(csv.reader([header_line], delimiter=delimiter), [])
    except csv.Error as error:
        raise RegisterFileError(f"line 1 cannot be read as CSV ({error})") from None
    header = [name.strip().lower() for name in header]
    missing = [name for name in required if name not in header]
    if missing:
        raise RegisterFileError(f"the header (line 1) lacks the column(s): {', '.join(missing)}")
    columns = {name: header.index(name) for name in (*required, *optional) if name in header}
    reader = csv.reader(lines, delimiter=delimiter)

    def numbered() -> Iterator[tuple[int, list[str]]]:
        read = 0  # the reader's lines, through its last whole row
        try:
            for row in reader:
                first, read = read + 2, reader.line_num  # the header was read before
                if read + 1 > first:  # no field of a register file spans lines
                    raise RegisterFileError(
                        f"line {first} has a quote left open: lines {first}-{read + 1} "
                        "run into one field"
                    )
                if any(cell.strip() for cell in row):
                    yield first, row
        except csv.Error as error:  # a field past the csv module's limit: an unclosed quote
            raise RegisterFileError(f"line {read + 2} cannot be read as CSV ({error})") from None

    return columns, numbered()


def number_and_day(
    row: list[str], number_at: int, date_at: int, today: date, allowed_regions: Sequence[str]
) -> tuple[str, date]:
    """A row's mobile number (E.164) and day (not after ``today``), or ValueError why not."""
    if len(row) <= max(number_at, date_at) or not row[number_at].strip():
        raise ValueError("missing column")
    if _SPREADSHEET_NUMBER.search(row[number_at]):
        # 358401234567 saved from a spreadsheet's number column: the ".0" would be read as
        # one more digit (a dot separates digits where people type them), another number.
        raise ValueError("a spreadsheet number (.0 or E at its end): save the column as text")
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
    return phone, day
