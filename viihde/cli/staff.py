"""``flask staff``: named staff accounts for the support console (no sign-up page)."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from viihde.cli.common import operator
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import AuditAction
from viihde.register import accounts, audit

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
    audit.record(operator(), AuditAction.CREATE_STAFF, utcnow(), detail=f"{staff.email} ({role})")
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
    audit.record(operator(), AuditAction.DISABLE_STAFF, utcnow(), detail=staff.email)
    db.session.commit()
    click.echo(f"Disabled {staff.email}.")


@staff_cli.command("sign-out-all")
def staff_sign_out_all() -> None:
    """End every staff session at once, copies of cookies included (after SECRET_KEY or a
    fallback key leaked, a session cookie could be signed with it)."""
    accounts_out = accounts.sign_out_everyone()
    audit.record(
        operator(), AuditAction.LOGOUT, utcnow(), detail=f"every session: {accounts_out} accounts"
    )
    db.session.commit()
    click.echo(f"Ended every session of {accounts_out} accounts.")


@staff_cli.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def staff_reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password; live sessions end."""
    staff = _staff(email)
    accounts.set_password(staff, _password(password_stdin, staff.email))
    audit.record(operator(), AuditAction.RESET_PASSWORD, utcnow(), detail=staff.email)
    db.session.commit()
    click.echo(f"New password set for {staff.email}.")


@staff_cli.command("reset-totp")
@click.argument("email")
def staff_reset_totp(email: str) -> None:
    """Clear the second factor (lost phone); the person enrols again at next sign-in."""
    staff = _staff(email)
    accounts.reset_totp(staff)
    audit.record(operator(), AuditAction.RESET_TOTP, utcnow(), detail=staff.email)
    db.session.commit()
    click.echo(f"Second factor cleared for {staff.email}.")
