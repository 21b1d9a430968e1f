"""What the command groups share: reading a number, and who the operator is."""

from __future__ import annotations

import getpass

import click
from flask import current_app

from viihde.phone import PhoneError, parse_mobile
from viihde.register import audit


def number_argument(raw: str) -> str:
    """A NUMBER argument in any accepted format, as E.164 (else a usage error)."""
    try:
        return parse_mobile(raw, current_app.config["ALLOWED_REGIONS"])
    except PhoneError as error:
        raise click.BadParameter(
            f"not an accepted mobile number ({error.reason})", param_hint="NUMBER"
        ) from None


def operator() -> audit.Actor:
    """Who runs a command: the operating-system user, for the audit log."""
    return audit.Actor.cli(getpass.getuser())
