"""``flask`` subcommands for support: ``subject export`` and ``subject erase``."""

from __future__ import annotations

import getpass
import json
import logging
import sys
import threading

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from redis.exceptions import RedisError
from rq import SimpleWorker
from sqlalchemy.exc import SQLAlchemyError

from viihde.cli.register import register_cli
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.phone import PhoneError, mask, parse_mobile
from viihde.register import accounts, audience, audit, subjects
from viihde.register.purposes import configured_keys
from viihde.sms import outbox, send_sms
from viihde.sms.queue import sms_queue
from viihde.sms.texts import test_message

log = logging.getLogger(__name__)

subject_cli = AppGroup("subject", help="A person's data in the register: export or erase it.")


def _number(raw: str) -> str:
    try:
        return parse_mobile(raw, current_app.config["ALLOWED_REGIONS"])
    except PhoneError as error:
        raise click.BadParameter(
            f"not an accepted mobile number ({error.reason})", param_hint="NUMBER"
        ) from None


def _operator() -> audit.Actor:
    """Who runs a command: the operating-system user, for the audit log."""
    return audit.Actor.cli(getpass.getuser())


HOLDINGS = {"current": "cli", "earlier": "cli earlier holder", "all": "cli all holders"}


@subject_cli.command("export")
@click.argument("number")
@click.option(
    "--holding",
    type=click.Choice(list(HOLDINGS)),
    default="current",
    show_default=True,
    help="For a number that changed hands: the current holder's records (an access "
    "answer to them), the earlier holders', or all.",
)
def export_command(number: str, holding: str) -> None:
    """Print what is stored about NUMBER (any accepted format) as JSON."""
    phone = _number(number)
    subscriber = subjects.subscriber_by_phone(phone)
    since = subscriber.holder_since if subscriber else None
    if holding == "earlier" and since is None:
        raise click.UsageError("this number has not changed hands: it has no earlier holder")
    window = {"current": {"since": since}, "earlier": {"until": since}, "all": {}}[holding]
    audit.record(_operator(), "export", utcnow(), phone_e164=phone, detail=HOLDINGS[holding])
    db.session.commit()
    click.echo(json.dumps(subjects.export(phone, **window), indent=2, ensure_ascii=False))


@subject_cli.command("erase")
@click.argument("number")
@click.option("--yes", is_flag=True, help="Erase without asking.")
def erase_command(number: str, yes: bool) -> None:
    """Erase everything stored about NUMBER, leaving a keyed-hash tombstone."""
    phone = _number(number)
    if not yes:
        click.confirm(f"Erase all data of {mask(phone)}? This cannot be undone.", abort=True)
    # The entry first: the erasure's commit takes it along (one transaction, or nothing).
    audit.record(_operator(), "erase", utcnow(), phone_e164=phone, detail="cli")
    subjects.erase(phone, "cli", utcnow())
    click.echo(f"Erased {mask(phone)}; a tombstone records the erasure.")


audience_cli = AppGroup("audience", help="Who marketing may reach.")


@audience_cli.command("export")
@click.option("--purpose", required=True, help="A purpose key, for example offers.")
@click.option("--format", "fmt", type=click.Choice(sorted(audience.WRITERS)), default="csv")
@click.option(
    "--output", type=click.File("w", encoding="utf-8", lazy=True), default="-", help="A file."
)
def audience_export(purpose: str, fmt: str, output) -> None:
    """Stream every number with current consent for PURPOSE, with its language and
    personal preference link (constant memory; a progress bar on a terminal)."""
    if purpose not in configured_keys():
        raise click.BadParameter(
            f"choose one of {', '.join(configured_keys())}", param_hint="--purpose"
        )
    written = audience.WRITERS[fmt](audience.members(purpose), output)
    total = 0
    if sys.stderr.isatty() and output.name != "<stdout>":
        with click.progressbar(
            written, length=audience.count(purpose), label="Exporting", file=sys.stderr
        ) as bar:
            for _ in bar:
                total += 1
    else:
        for _ in written:
            total += 1
    output.close()
    audit.record(_operator(), "audience_export", utcnow(), detail=f"{purpose}: {total} ({fmt})")
    db.session.commit()
    click.echo(f"Exported {total} numbers for {purpose}.", err=True)


sms_cli = AppGroup("sms", help="SMS set-up checks.")


@sms_cli.command("send-test")
@click.argument("number")
def send_test_command(number: str) -> None:
    """Send a test SMS to NUMBER through the configured backend."""
    phone = _number(number)
    language = current_app.config["BABEL_DEFAULT_LOCALE"]
    message = send_sms(phone, test_message(language), "test", utcnow())
    detail = f" (error {message.error_code})" if message.error_code else ""
    click.echo(f"Test SMS to {mask(phone)} via {message.backend}: {message.status}{detail}")
    if message.status == "failed":
        raise click.exceptions.Exit(1)


@sms_cli.command("sweep")
def sweep_command() -> None:
    """Hand over SMS whose job was lost (every worker does this each minute; run it from
    cron where no worker runs)."""
    report = outbox.sweep(utcnow())
    click.echo(
        f"Handed over {report.handed_over}, failed {report.failed} (cannot be sent now), "
        f"settled {report.settled} (attempts that died)."
    )


def _sweep_every(app: Flask, seconds: float, stop: threading.Event) -> None:
    """The worker's outbox sweep, in a thread of its own with its own app context."""
    while not stop.wait(seconds):
        with app.app_context():
            try:
                outbox.sweep(utcnow())
            except (SQLAlchemyError, RedisError) as error:
                # The type only: a database error's text can carry message bodies.
                log.error("sms_outbox_sweep_failed error=%s", type(error).__name__)
            finally:
                db.session.remove()


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Deliver queued SMS (needs REDIS_URL) and sweep the outbox each SMS_SWEEP_SECONDS;
    run one or more next to the web processes."""
    queue = sms_queue()
    if queue is None:
        raise click.ClickException("REDIS_URL is not set: SMS are sent inline, no worker needed.")
    stop = threading.Event()
    seconds = current_app.config["SMS_SWEEP_SECONDS"]
    if seconds > 0 and not burst:
        app = current_app._get_current_object()
        threading.Thread(
            target=_sweep_every, args=(app, seconds, stop), name="outbox-sweep", daemon=True
        ).start()
    try:
        # SimpleWorker runs jobs in this process, inside the app context and its pool.
        SimpleWorker([queue], connection=queue.connection).work(burst=burst, with_scheduler=True)
    finally:
        stop.set()


staff_cli = AppGroup("staff", help="Named staff accounts for the support console.")


def _password(from_stdin: bool, email: str) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        accounts.check_password(password, email)
    except accounts.PasswordRejected as error:
        raise click.ClickException(PASSWORD_PROBLEMS[error.problem]) from None
    return password


PASSWORD_PROBLEMS = {
    accounts.PasswordProblem.TOO_SHORT: f"at least {accounts.MIN_PASSWORD_LENGTH} characters",
    accounts.PasswordProblem.TOO_LONG: f"at most {accounts.MAX_PASSWORD_LENGTH} characters",
    accounts.PasswordProblem.COMMON: "too easy to guess: use a long passphrase",
}


def _staff(email: str):
    staff = accounts.find(email)
    if staff is None:
        raise click.ClickException(f"no staff account for {email}")
    return staff


@staff_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(accounts.ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def staff_create(email: str, role: str, password_stdin: bool) -> None:
    """Create a staff account (admins must enrol TOTP at first sign-in)."""
    password = _password(password_stdin, email)
    try:
        staff = accounts.create_staff(email, role, password, utcnow())
    except accounts.AccountError as error:
        raise click.ClickException(str(error)) from None
    audit.record(_operator(), "create_staff", utcnow(), detail=f"{staff.email} ({role})")
    db.session.commit()
    click.echo(f"Created {staff.email} ({role}).")


@staff_cli.command("list")
def staff_list() -> None:
    """List staff accounts."""
    for staff in accounts.all_staff():
        state = "disabled" if staff.disabled_at else "active"
        totp = "totp" if staff.totp_secret else "no totp"
        click.echo(f"{staff.email}\t{staff.role}\t{state}\t{totp}")


@staff_cli.command("disable")
@click.argument("email")
def staff_disable(email: str) -> None:
    """Disable an account; its sessions end at once."""
    staff = _staff(email)
    accounts.disable(staff, utcnow())
    audit.record(_operator(), "disable_staff", utcnow(), detail=staff.email)
    db.session.commit()
    click.echo(f"Disabled {staff.email}.")


@staff_cli.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def staff_reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password; live sessions end."""
    staff = _staff(email)
    accounts.set_password(staff, _password(password_stdin, staff.email))
    audit.record(_operator(), "reset_password", utcnow(), detail=staff.email)
    db.session.commit()
    click.echo(f"New password set for {staff.email}.")


@staff_cli.command("reset-totp")
@click.argument("email")
def staff_reset_totp(email: str) -> None:
    """Clear the second factor (lost phone); the person enrols again at next sign-in."""
    staff = _staff(email)
    accounts.reset_totp(staff)
    audit.record(_operator(), "reset_totp", utcnow(), detail=staff.email)
    db.session.commit()
    click.echo(f"Second factor cleared for {staff.email}.")


def register(app: Flask) -> None:
    """Add the subcommands to ``flask``."""
    app.cli.add_command(subject_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(sms_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(register_cli)
    app.cli.add_command(audience_cli)
