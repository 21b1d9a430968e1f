"""``flask audience``: who marketing may reach, as a file for the campaign tool."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import click
from flask.cli import AppGroup

from viihde.cli.common import operator, private_file
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import AuditAction
from viihde.register import audience, audit
from viihde.register.purposes import configured_keys

log = logging.getLogger(__name__)

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
    total, finished = 0, False
    try:
        # Closed however the writing ends (a full disk, a closed pipe): on PostgreSQL a COPY
        # left open holds the connection, and the app context's teardown would wait for it.
        with contextlib.closing(audience.export(purpose)) as batches:
            for batch in _shown(audience.WRITERS[fmt](batches, out), purpose, to_file):
                total += batch
        if to_file:
            out.close()  # its last flush is part of the writing
        finished = True
    except BaseException:
        if to_file:
            with contextlib.suppress(OSError):
                out.close()
        raise
    finally:
        # Whatever was written was released, links and all: on record however it ended.
        _record(purpose, fmt, total, finished)
    click.echo(f"Exported {total} numbers for {purpose}.", err=True)


def _shown(written: Iterator[int], purpose: str, to_file: bool) -> Iterator[int]:
    """The batches' sizes as they are written, with a progress bar on a terminal."""
    if not (sys.stderr.isatty() and to_file):
        yield from written
        return
    with click.progressbar(
        length=audience.count(purpose), label="Exporting", file=sys.stderr
    ) as bar:
        for batch in written:
            bar.update(batch)
            yield batch


def _record(purpose: str, fmt: str, total: int, finished: bool) -> None:
    """The export's audit entry: how many rows went out, and whether it stopped part-way.
    After a failure, one that cannot be written is logged: the failure itself goes on up."""
    detail = f"{purpose}: {total} ({fmt})" + ("" if finished else " stopped part-way")
    try:
        if not finished:
            db.session.rollback()  # whatever the failure left of the transaction
        audit.record(operator(), AuditAction.AUDIENCE_EXPORT, utcnow(), detail=detail)
        db.session.commit()
    except Exception:
        if finished:
            raise
        log.exception("audience_export_not_on_record rows_written=%s", total)
