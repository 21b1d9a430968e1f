"""The customer-relationship basis: buyers from the company's customer register.

A CSV lists buyers' numbers with the day of their purchase. Each is marketed the
company's own similar products (``CUSTOMER_PURPOSES``) with the basis "customer", until
they refuse, by the one-tap link or STOP like anyone else. The ledger's earlier word
wins: a consent keeps its basis and a refusal stands (``consent.grant_as_customer``).
A number erased after its purchase is not brought back.

A purchase older than ``CUSTOMER_RELATIONSHIP_MONTHS`` is no longer a relationship: the
import refuses it, a newer purchase of a customer renews their grants (a new grant with
the new day), and the daily purge ends a grant whose purchase has grown too old
(``lapse``, with the source "customer_relationship_ended").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from flask import current_app
from sqlalchemy import Select, exists, select
from sqlalchemy.orm import aliased

from viihde.clock import helsinki_day, start_of_day
from viihde.extensions import db
from viihde.models import ConsentActor, ConsentEvent, ConsentSource, LawfulBasis, Tombstone

# retention imports this module too (its purge lapses old grants): modules, not names.
from viihde.register import consent, retention
from viihde.register.files import BadRow, FileReport, number_and_day, rows
from viihde.register.subjects import tombstone_hash

CONTEXT = consent.ConsentContext(ConsentSource.CUSTOMER_IMPORT, actor=ConsentActor.SYSTEM)
#: The withdrawal that ends a grant whose purchase has grown too old.
ENDED = consent.ConsentContext(ConsentSource.CUSTOMER_RELATIONSHIP_ENDED, actor=ConsentActor.SYSTEM)
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
            f"erased={self.erased_after_purchase} "
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


def relationship_cutoff(now: datetime, months: int) -> date:
    """The oldest purchase day that is still a relationship at ``now`` (a Helsinki day):
    ``months`` calendar months back, to the day. Anything earlier is too old."""
    return helsinki_day(retention.months_before(now, months))


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
    return (
        db.session.scalar(
            select(Tombstone.id)
            .where(
                Tombstone.phone_hash == tombstone_hash(phone_e164),
                Tombstone.erased_at >= start_of_day(day),
            )
            .limit(1)
        )
        is not None
    )


def apply_purchases(purchases: Iterable[Purchase], now: datetime, report: ImportReport) -> None:
    """Record the customer grants (no commit: the whole run is one transaction, the
    caller's, with its audit entry; a dry run rolls it back, so what it reports is exactly
    what a real run would do)."""
    for purchase in purchases:
        if erased_since(purchase.phone_e164, purchase.purchased_on):
            report.erased_after_purchase += 1
            continue
        outcome = consent.grant_as_customer(
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


def lapsed_grants(cutoff: date) -> Select:
    """(subscriber_id, purpose) of every customer grant still in force whose purchase is
    before ``cutoff``: one query for the whole register.

    "Still in force": no later event for the same subscriber and purpose, a NOT EXISTS
    that the (subscriber_id, purpose, seq) index answers. ``lapse`` checks each again.
    """
    later = aliased(ConsentEvent)
    return select(ConsentEvent.subscriber_id, ConsentEvent.purpose).where(
        ConsentEvent.action == consent.GRANT,
        ConsentEvent.basis == LawfulBasis.CUSTOMER,
        ConsentEvent.purchased_on < cutoff,
        ~exists().where(
            later.subscriber_id == ConsentEvent.subscriber_id,
            later.purpose == ConsentEvent.purpose,
            later.seq > ConsentEvent.seq,
        ),
    )


def lapse(subscriber_id: int, cutoff: date, now: datetime) -> list[ConsentEvent]:
    """End the customer relationships of one subscriber that are over (no commit).

    Under the subscriber's row lock, each purpose whose latest event is a grant as a
    customer for a purchase before ``cutoff`` (``relationship_cutoff``) is withdrawn by
    the system, with the source "customer_relationship_ended"; the withdrawal keeps the
    basis and purchase of the grant it ends. The ledger is read again under the lock, so
    a consent or a newer purchase recorded since the search is never withdrawn.
    """
    return consent.end_customer_grants(subscriber_id, cutoff, ENDED, now)
