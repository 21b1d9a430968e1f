"""``flask register``: keeping the register accurate and lean (run by hand or from cron).

Each command is a thin shell over a domain module; what it changes is audit-logged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TextIO

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from viihde.cli.common import hash_key_checked, operator, private_file
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.jobs import purge
from viihde.models import AuditAction
from viihde.register import audit, holders, purchases, restore, retention
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
    action: AuditAction,
    what: str,
    dry_run: bool,
    work: Callable[[datetime], FileReport],
    audited: Callable[[audit.Actor, datetime, FileReport], None] | None = None,
) -> FileReport:
    """Run one CSV file's work as one transaction with its audit entry (``action``, counts
    only), and the entries ``audited`` adds; a file or database error changes nothing and
    names no number; a dry run changes nothing and is not audited."""
    now = utcnow()
    try:
        report = work(now)
        if dry_run:
            db.session.rollback()
        else:
            actor = operator()
            if audited is not None:
                audited(actor, now, report)
            audit.record(actor, action, now, detail=report.counts())
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
        f"Numbers that texted STOP after the purchase (skipped): {report.stopped_after_purchase}"
    )
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


# --- after a restore (docs/deploy.md, "Restore") ---


@register_cli.command("changes-since")
@click.argument("moment")
@click.option(
    "--tombstones", "tombstones_path", required=True, help="The erasures' (and refusals') CSV file."
)
@click.option("--withdrawals", "withdrawals_path", required=True, help="The withdrawals' CSV file.")
def changes_since_command(moment: str, tombstones_path: str, withdrawals_path: str) -> None:
    """Against the database that FAILED, if it can be read: write the erasures and
    withdrawals recorded after MOMENT (some minutes before the restore point, with its
    zone, e.g. 2026-12-07T10:05:00+00:00) for `flask register reapply` on the restored one.

    Both files are readable by their owner only (the withdrawals' holds numbers). A file
    the database could not be read for whole is removed, and the command fails. It makes
    no hash (it copies them), so it does not check the hash key: that would write to a
    database that may take reads only."""
    try:
        since = restore.moment_of(moment)
    except ValueError as error:
        raise click.BadParameter(f"{error}: e.g. 2026-12-07T10:05:00+00:00") from None
    written, failed = {}, []
    for name, path, write in (
        ("Erasures", tombstones_path, restore.write_tombstones),
        ("Withdrawals", withdrawals_path, restore.write_withdrawals),
    ):
        try:
            with private_file(path) as out:
                written[name] = write(since, out)
        except SQLAlchemyError as error:
            db.session.rollback()
            Path(path).unlink(missing_ok=True)  # half a file would pass for the whole
            failed.append(f"{name.lower()} ({type(error).__name__}: {path} not written)")
    detail = f"for a restore, changes since {since.isoformat()}: " + ", ".join(
        f"{count} {name.lower()}" for name, count in written.items()
    )
    try:  # the failed database may refuse a write: the files are what matter now
        audit.record(operator(), AuditAction.EXPORT, utcnow(), detail=detail)
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        click.echo(f"The audit entry could not be written ({type(error).__name__}).", err=True)
    for name, count in written.items():
        click.echo(f"{name} written: {count}")
    if failed:
        raise click.ClickException("the database could not be read for the " + "; ".join(failed))


@register_cli.command("reapply")
@click.argument("tombstones", type=click.File("r", encoding="utf-8-sig", errors="replace"))
@click.argument("withdrawals", type=click.File("r", encoding="utf-8-sig", errors="replace"))
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@hash_key_checked
def reapply_command(tombstones: TextIO, withdrawals: TextIO, dry_run: bool) -> None:
    """On the RESTORED register, before it serves: erase again and withdraw again what
    `flask register changes-since` wrote from the failed one."""
    report = _apply_file(
        AuditAction.ERASE,
        "changes",
        dry_run,
        lambda now: restore.reapply(tombstones, withdrawals, now, dry_run),
        audited=_audit_reapplied,
    )
    would = "would be " if report.dry_run else ""
    _echo_rows(report)
    click.echo(f"Numbers {would}erased again: {report.numbers_erased}")
    click.echo(f"Holdings {would}erased again: {report.holdings_erased}")
    click.echo(f"Tombstones {would}kept (nothing of it here): {report.tombstones_kept}")
    click.echo(f"Erased already: {report.erased_already}")
    click.echo(f"STOP refusals {would}kept again: {report.refusals_kept}")
    click.echo(f"Purposes {would}withdrawn again: {report.purposes_withdrawn}")
    click.echo(f"Not granted here (left as they are): {report.not_granted}")
    click.echo(f"Granted again since (left as they are): {report.granted_since}")
    click.echo(f"Withdrawals for numbers not in the register: {report.numbers_missing}")
    if report.dry_run:
        click.echo("Dry run: nothing was changed.")


def _audit_reapplied(actor: audit.Actor, now: datetime, report: restore.ReapplyReport) -> None:
    """Each erasure and withdrawal made again: one entry each, with its original time;
    the run's counts follow as an erasure entry of their own."""
    actions = {"erase": AuditAction.ERASE, "withdraw": AuditAction.WITHDRAW}
    for phone, phone_hash, change, detail in report.changed:
        audit.record(
            actor, actions[change], now, phone_e164=phone, subject_hash=phone_hash, detail=detail
        )


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
