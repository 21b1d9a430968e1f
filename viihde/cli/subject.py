"""``flask subject``: what the register holds about a person, exported or erased."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from viihde.cli.common import hash_key_checked, number_argument, operator
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import AuditAction, ErasureSource
from viihde.phone import mask
from viihde.register import access, audit, erasure, holdings, lookup
from viihde.register.holdings import Whose

subject_cli = AppGroup("subject", help="A person's data in the register: export or erase it.")

#: Which holding an export answers for, and how the audit log names it.
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
@hash_key_checked
def export_command(number: str, holding: str) -> None:
    """Print what is stored about NUMBER (any accepted format) as JSON."""
    phone = number_argument(number)
    subscriber = lookup.subscriber_by_phone(phone)
    changed_hands = subscriber is not None and holdings.holder_since(subscriber.id) is not None
    if holding == Whose.EARLIER and not changed_hands:
        raise click.UsageError("this number has not changed hands: it has no earlier holder")
    audit.record(
        operator(), AuditAction.EXPORT, utcnow(), phone_e164=phone, detail=HOLDINGS[holding]
    )
    db.session.commit()
    data = access.export(phone, Whose(holding))
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@subject_cli.command("erase")
@click.argument("number")
@click.option("--yes", is_flag=True, help="Erase without asking.")
@hash_key_checked
def erase_command(number: str, yes: bool) -> None:
    """Erase everything stored about NUMBER, leaving a keyed-hash tombstone."""
    phone = number_argument(number)
    if not yes:
        click.confirm(f"Erase all data of {mask(phone)}? This cannot be undone.", abort=True)
    erasure.erase(phone, ErasureSource.CLI, utcnow())
    audit.record(
        operator(), AuditAction.ERASE, utcnow(), phone_e164=phone, detail=ErasureSource.CLI
    )
    db.session.commit()  # the erasure and its audit entry: one transaction
    click.echo(f"Erased {mask(phone)}; a tombstone records the erasure.")
