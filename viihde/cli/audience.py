"""``flask audience``: who marketing may reach, as a file for the campaign tool."""

from __future__ import annotations

import contextlib
import sys

import click
from flask.cli import AppGroup

from viihde.cli.common import operator, private_file
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import AuditAction
from viihde.register import audience, audit
from viihde.register.purposes import configured_keys

audience_cli = AppGroup("audience", help="Who marketing may reach.")


@audience_cli.command("export")
@click.option("--purpose", required=True, help="A purpose key, for example offers.")
@click.option("--format", "fmt", type=click.Choice(sorted(audience.WRITERS)), default="csv")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="A file (made readable by its owner only), or - for standard output.",
)
def audience_export(purpose: str, fmt: str, output: str) -> None:
    """Stream every number with current consent for PURPOSE, with its language and
    personal preference link (constant memory; a progress bar on a terminal)."""
    if purpose not in configured_keys():
        raise click.BadParameter(
            f"choose one of {', '.join(configured_keys())}", param_hint="--purpose"
        )
    to_file = output != "-"
    out = private_file(output) if to_file else click.open_file("-", "w", encoding="utf-8")
    # Closed however the writing ends (a full disk, a closed pipe): on PostgreSQL a COPY
    # left open holds the connection, and the app context's teardown would wait for it.
    with contextlib.closing(audience.export(purpose)) as batches:
        written = audience.WRITERS[fmt](batches, out)
        total = 0
        if sys.stderr.isatty() and to_file:
            with click.progressbar(
                length=audience.count(purpose), label="Exporting", file=sys.stderr
            ) as bar:
                for batch in written:
                    total += batch
                    bar.update(batch)
        else:
            total = sum(written)
    if to_file:
        out.close()
    audit.record(
        operator(), AuditAction.AUDIENCE_EXPORT, utcnow(), detail=f"{purpose}: {total} ({fmt})"
    )
    db.session.commit()
    click.echo(f"Exported {total} numbers for {purpose}.", err=True)
