"""``flask register``: keeping the register accurate and lean (run by hand or from cron).

Each command is a thin shell over a domain module; what it changes is audit-logged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TextIO

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from viihde.cli.common import hash_key_checked, operator
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.jobs import purge
from viihde.models import AuditAction
from viihde.register import audit, holders, purchases, retention
from viihde.register.files import FileReport, RegisterFileError

register_cli = AppGroup("register", help="Keep the register accurate and lean.")

# --- sync-holders (number holder changes) ---


@register_cli.command("sync-holders")
@click.argument("file", type=click.File("r", encoding="utf-8-sig", errors="replace"))
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@hash_key_checked
def sync_holders_command(file: TextIO, dry_run: bool) -> None:
    """Withdraw the previous holders' consents for numbers that got a new holder.

    FILE is a CSV with the columns number and changed_on (YYYY-MM-DD), "," or ";" separated.
    """
    regions = current_app.config["ALLOWED_REGIONS"]
    report = _apply_file(
        AuditAction.SYNC_HOLDERS,
        "update",
        dry_run,
        lambda now: holders.sync_holders(file, now, regions, dry_run),
    )
    _echo_sync_report(report)


def _apply_file(
    action: AuditAction, what: str, dry_run: bool, work: Callable[[datetime], FileReport]
) -> FileReport:
    """Run one CSV file's work as one transaction with its audit entry (counts only); a
    file or database error changes nothing and names no number; a dry run changes nothing
    and is not audited."""
    now = utcnow()
    try:
        report = work(now)
        if dry_run:
            db.session.rollback()
        else:
            audit.record(operator(), action, now, detail=report.counts())
            db.session.commit()
    except RegisterFileError as error:
        db.session.rollback()
        raise click.ClickException(f"{error}; nothing was changed.") from None
    except SQLAlchemyError as error:
        db.session.rollback()
        # The database's message would quote the numbers: name the error only.
        raise click.ClickException(
            f"the register refused the {what} ({type(error).__name__}); nothing was changed."
        ) from None
    return report


def _echo_rows(report: FileReport) -> None:
    """The rows read and the skipped lines with their reasons; never a number."""
    click.echo(f"Rows read: {report.rows_read}")
    click.echo(f"Bad rows (skipped): {len(report.bad_rows)}")
    for bad in report.bad_rows:
        click.echo(f"  line {bad.line}: {bad.reason}")


def _echo_sync_report(report: holders.SyncReport) -> None:
    """Counts and the skipped lines; never a number."""
    would = "would be " if report.dry_run else ""
    _echo_rows(report)
    click.echo(f"Numbers matched: {report.numbers_matched}")
    click.echo(f"Consents {would}withdrawn: {report.consents_withdrawn}")
    click.echo(f"Subscribers whose links {would or 'were '}revoked: {report.links_revoked}")
    if report.dry_run:
        click.echo("Dry run: nothing was changed.")


# --- import-customers (the customer-relationship basis) ---


@register_cli.command("import-customers")
@click.argument("file", type=click.File("r", encoding="utf-8-sig", errors="replace"))
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@hash_key_checked
def import_customers_command(file: TextIO, dry_run: bool) -> None:
    """Market the company's own similar products to buyers, until they refuse.

    FILE is a CSV with the columns number and purchased_on (YYYY-MM-DD), and optionally
    language (fi, sv, en: for numbers new to the register), "," or ";" separated.
    """
    report = _apply_file(
        AuditAction.IMPORT_CUSTOMERS,
        "import",
        dry_run,
        lambda now: purchases.import_customers(file, now, dry_run),
    )
    _echo_import_report(report)


def _echo_import_report(report: purchases.ImportReport) -> None:
    """Counts and the skipped lines; never a number."""
    would = "would be " if report.dry_run else ""
    _echo_rows(report)
    click.echo(f"Rows repeating a number (its latest purchase counts): {report.repeated}")
    click.echo(f"Numbers erased after the purchase (skipped): {report.erased_after_purchase}")
    click.echo(
        "Purchases before the number passed to a new holder (skipped): "
        f"{report.bought_by_previous_holder}"
    )
    click.echo(f"Customers {would}added to the register: {report.customers_added}")
    click.echo(f"Purposes {would}granted as a customer: {report.purposes_granted}")
    click.echo(f"Customer grants {would}renewed by a newer purchase: {report.purposes_renewed}")
    click.echo(f"Purposes granted already (left as they were): {report.already_granted}")
    click.echo(f"Purposes refused earlier (left refused): {report.refused}")
    if report.dry_run:
        click.echo("Dry run: nothing was changed.")


# --- purge (retention) ---

PURGE_LINES = {
    "verifications": "one-time codes and unconfirmed sign-ups",
    "sms_messages": "SMS log: messages",
    "sms_status_events": "SMS log: delivery callbacks",
    "inbound_messages": "SMS log: replies received",
    "campaign_recipients": "SMS log: campaign recipients forgotten (counts kept)",
    "subscribers_erased": "people erased (no consent, proof period over)",
    "customer_grants_ended": "customer marketing ended (purchase too long ago)",
}
PURGE_FAILURES = {
    retention.PENDING: "one-time codes: nothing removed (rolled back)",
    retention.SMS_LOG: "SMS log: nothing removed (rolled back)",
    retention.CONSENT_PROOF: "erasures: stopped; only the people counted above were erased",
    retention.CUSTOMER_RELATIONSHIPS: (
        "customer marketing: stopped; only the grants counted above were ended"
    ),
}


@register_cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
@hash_key_checked
def purge_command(dry_run: bool) -> None:
    """Remove what is past its retention time (run daily from cron); print the counts."""
    report = purge.run(utcnow(), dry_run=dry_run, actor=operator())
    verb = "Would remove" if dry_run else "Removed"
    click.echo(f"{verb} (dry run, nothing changed):" if dry_run else f"{verb}:")
    for name, count in report.counts().items():
        click.echo(f"  {PURGE_LINES[name]}: {count}")
    for category, error in report.failures.items():
        click.echo(f"FAILED ({error}) {PURGE_FAILURES[category]}", err=True)
    if report.failures:
        raise click.exceptions.Exit(1)
