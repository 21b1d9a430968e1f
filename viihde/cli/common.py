"""What the command groups share: reading a number, writing a private file, and who the
operator is."""

from __future__ import annotations

import getpass
import os
from typing import TextIO

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


def private_file(path: str) -> TextIO:
    """``path`` opened for writing, readable by its owner only (0600, an existing file's
    mode changed too): what an operator exports holds numbers and live links."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as error:
        raise click.FileError(path, hint=error.strerror) from None
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "w", encoding="utf-8")
