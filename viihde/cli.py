"""``flask`` subcommands for support: ``subject export`` and ``subject erase``."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from . import subjects
from .clock import utcnow
from .phone import PhoneError, mask, parse_mobile

subject_cli = AppGroup("subject", help="A person's data in the register: export or erase it.")


def _number(raw: str) -> str:
    try:
        return parse_mobile(raw, current_app.config["ALLOWED_REGIONS"])
    except PhoneError as error:
        raise click.BadParameter(
            f"not an accepted mobile number ({error.reason})", param_hint="NUMBER"
        ) from None


@subject_cli.command("export")
@click.argument("number")
def export_command(number: str) -> None:
    """Print everything stored about NUMBER (any accepted format) as JSON."""
    click.echo(json.dumps(subjects.export(_number(number)), indent=2, ensure_ascii=False))


@subject_cli.command("erase")
@click.argument("number")
@click.option("--yes", is_flag=True, help="Erase without asking.")
def erase_command(number: str, yes: bool) -> None:
    """Erase everything stored about NUMBER, leaving a keyed-hash tombstone."""
    phone = _number(number)
    if not yes:
        click.confirm(f"Erase all data of {mask(phone)}? This cannot be undone.", abort=True)
    subjects.erase(phone, "cli", utcnow())
    click.echo(f"Erased {mask(phone)}; a tombstone records the erasure.")


def register(app: Flask) -> None:
    """Add the subcommands to ``flask``."""
    app.cli.add_command(subject_cli)
