"""Importing buyers from the company's customer register (a CSV of numbers and the day
of their purchase) onto the customer-relationship basis (``customers``).

Each good row's buyer gets ``customers.grant_as_customer``; the file's latest purchase per
number counts. A purchase older than ``CUSTOMER_RELATIONSHIP_MONTHS`` is refused, and a
number erased after its purchase is not brought back, nor one that texted STOP after it
(with no START since: its refusal, ``models.Refusal``, which a STOP leaves whether or not
the register held the number).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from flask import current_app
from sqlalchemy import select

from viihde.clock import helsinki_day, start_of_day
from viihde.extensions import db
from viihde.models import Refusal, Tombstone
from viihde.register.customers import CONTEXT, grant_as_customer, relationship_cutoff
from viihde.register.erasure import tombstone_hash
from viihde.register.files import BadRow, FileReport, number_and_day, rows

NUMBER_COLUMN = "number"
DATE_COLUMN = "purchased_on"
LANGUAGE_COLUMN = "language"  # optional: the language of a new customer's messages


@dataclass(frozen=True)
class Purchase:
    """One good row: a buyer's number, the day of the purchase, and maybe a language."""

    line: int
    phone_e164: str
    purchased_on: date
    language: str | None


@dataclass(frozen=True)
class Rules:
    """What a row must meet: the settings an import reads."""

    allowed_regions: Sequence[str]
    languages: Sequence[str]
    default_language: str
    relationship_months: int

    @classmethod
    def from_config(cls) -> Rules:
        config = current_app.config
        return cls(
            config["ALLOWED_REGIONS"],
            config["LANGUAGES"],
            config["BABEL_DEFAULT_LOCALE"],
            config["CUSTOMER_RELATIONSHIP_MONTHS"],
        )


@dataclass
class ImportReport(FileReport):
    """What an import read, skipped and recorded (or, in a dry run, would record)."""

    #: Rows naming a number an earlier row named too: the latest purchase counts.
    repeated: int = 0
    erased_after_purchase: int = 0
    #: Numbers whose last STOP or START since the purchase was STOP (skipped).
    stopped_after_purchase: int = 0
    #: Purchases made before the number passed to its current holder (skipped).
    bought_by_previous_holder: int = 0
    customers_added: int = 0
    purposes_granted: int = 0
    #: Customer grants renewed: a newer purchase than the one they rest on.
    purposes_renewed: int = 0
    #: Purposes left as they were: granted already (a consent keeps its basis) ...
    already_granted: int = 0
    #: ... or refused earlier (a refusal stands).
    refused: int = 0

    def counts(self) -> str:
        """The counts alone, for the audit log."""
        return (
            f"rows={self.rows_read} bad={len(self.bad_rows)} repeated={self.repeated} "
            f"erased={self.erased_after_purchase} stopped={self.stopped_after_purchase} "
            f"previous_holder={self.bought_by_previous_holder} added={self.customers_added} "
            f"granted={self.purposes_granted} renewed={self.purposes_renewed} "
            f"already_granted={self.already_granted} "
            f"refused={self.refused}" + (" dry_run" if self.dry_run else "")
        )


def read_purchases(
    lines: Iterable[str], now: datetime, rules: Rules, report: ImportReport
) -> list[Purchase]:
    """The good rows of a customer CSV, the latest purchase per number; bad ones go to
    ``report.bad_rows``."""
    columns, numbered = rows(lines, (NUMBER_COLUMN, DATE_COLUMN), (LANGUAGE_COLUMN,))
    today = helsinki_day(now)
    oldest = relationship_cutoff(now, rules.relationship_months)
    latest: dict[str, Purchase] = {}
    for line, row in numbered:
        report.rows_read += 1
        try:
            phone, day = number_and_day(
                row, columns[NUMBER_COLUMN], columns[DATE_COLUMN], today, rules.allowed_regions
            )
            if day < oldest:
                raise ValueError(f"purchase too old (over {rules.relationship_months} months ago)")
            purchase = Purchase(line, phone, day, _language(row, columns, rules))
        except ValueError as error:
            report.bad_rows.append(BadRow(line, str(error)))
            continue
        earlier = latest.get(purchase.phone_e164)
        if earlier is not None:
            report.repeated += 1
            if earlier.purchased_on >= purchase.purchased_on:
                continue
        latest[purchase.phone_e164] = purchase
    return sorted(latest.values(), key=lambda purchase: purchase.line)


def _language(row: list[str], columns: dict[str, int], rules: Rules) -> str:
    """The row's language, or the default when the column is absent or empty."""
    at = columns.get(LANGUAGE_COLUMN)
    language = row[at].strip().lower() if at is not None and at < len(row) else ""
    if not language:
        return rules.default_language
    if language not in rules.languages:
        raise ValueError(f"unknown language (one of {', '.join(rules.languages)})")
    return language


def erased_since(phone_e164: str, day: date) -> bool:
    """Was the number erased on or after ``day`` (a Helsinki day)? Its owner asked to be
    forgotten after that purchase, so it is not brought back."""
    return _marked_since(Tombstone.phone_hash, Tombstone.erased_at, phone_e164, day)


def stopped_since(phone_e164: str, day: date) -> bool:
    """Did the number text STOP on or after ``day`` (a Helsinki day), with no START since?
    Its owner refused marketing after that purchase, whether or not the register held the
    number then: the STOP's refusal says so (a START deletes it)."""
    return _marked_since(Refusal.phone_hash, Refusal.refused_at, phone_e164, day)


def _marked_since(phone_hash, time, phone_e164: str, day: date) -> bool:
    """Is there a keyed-hash mark of the number (a tombstone, a refusal) from ``day`` on?"""
    found = db.session.scalar(
        select(phone_hash)
        .where(phone_hash == tombstone_hash(phone_e164), time >= start_of_day(day))
        .limit(1)
    )
    return found is not None


def apply_purchases(purchases: Iterable[Purchase], now: datetime, report: ImportReport) -> None:
    """Record the customer grants (no commit: the whole run is one transaction, the
    caller's, with its audit entry; a dry run rolls it back, so what it reports is exactly
    what a real run would do)."""
    for purchase in purchases:
        if erased_since(purchase.phone_e164, purchase.purchased_on):
            report.erased_after_purchase += 1
            continue
        if stopped_since(purchase.phone_e164, purchase.purchased_on):
            report.stopped_after_purchase += 1
            continue
        outcome = grant_as_customer(
            purchase.phone_e164, purchase.purchased_on, purchase.language, CONTEXT, now
        )
        report.customers_added += int(outcome.created)
        report.purposes_granted += len(outcome.granted)
        report.purposes_renewed += len(outcome.renewed)
        report.already_granted += len(outcome.already_granted)
        report.refused += len(outcome.refused)
        report.bought_by_previous_holder += int(outcome.previous_holders)


def import_customers(
    lines: Iterable[str], now: datetime, dry_run: bool = False, rules: Rules | None = None
) -> ImportReport:
    """Read a customer CSV (text lines or a text file) and record its good rows at once
    (no commit)."""
    report = ImportReport(dry_run=dry_run)
    purchases = read_purchases(lines, now, rules or Rules.from_config(), report)
    apply_purchases(purchases, now, report)
    return report
