"""What the command groups share: reading a number, writing a private file, and who the
operator is."""

from __future__ import annotations

import functools
import os
import pwd
from typing import TextIO

import click
from flask import current_app

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.phone import PhoneError, parse_mobile
from viihde.register import audit
from viihde.register.keys import hash_key_problem


def number_argument(raw: str) -> str:
    """A NUMBER argument in any accepted format, as E.164 (else a usage error)."""
    try:
        return parse_mobile(raw, current_app.config["ALLOWED_REGIONS"])
    except PhoneError as error:
        raise click.BadParameter(
            f"not an accepted mobile number ({error.reason})", param_hint="NUMBER"
        ) from None


def operator() -> audit.Actor:
    """Who runs a command, for the audit log: the operating-system account the process
    runs as (not LOGNAME or USER, which anyone sets), and, under sudo, the account sudo
    says it ran for."""
    name = pwd.getpwuid(os.getuid()).pw_name
    invoker = os.environ.get("SUDO_USER")
    return audit.Actor.cli(f"{name} (sudo by {invoker})" if invoker and invoker != name else name)


def private_file(path: str) -> TextIO:
    """``path`` opened for writing, readable by its owner only (0600, an existing file's
    mode changed too): what an operator exports holds numbers and live links."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as error:
        raise click.FileError(path, hint=error.strerror) from None
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "w", encoding="utf-8")


def hash_key_checked(command):
    """A command that makes or matches keyed hashes runs only under the register's own
    HASH_KEY (``register.keys``): under another it would find no erasure, and make
    hashes nothing else matches."""

    @functools.wraps(command)
    def checked(*args, **kwargs):
        problem = hash_key_problem(utcnow())
        if problem is not None:
            raise click.ClickException(problem)
        db.session.commit()  # the fingerprint, when this was the first check
        return command(*args, **kwargs)

    return checked
