"""``flask`` subcommands for support: ``subject export`` and ``subject erase``."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from rq import SimpleWorker

from . import subjects
from .clock import utcnow
from .phone import PhoneError, mask, parse_mobile
from .sms import send_sms
from .sms.queue import sms_queue
from .sms.texts import test_message

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


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@with_appcontext
def worker_command(burst: bool) -> None:
    """Deliver queued SMS (needs REDIS_URL); run one or more next to the web processes."""
    queue = sms_queue()
    if queue is None:
        raise click.ClickException("REDIS_URL is not set: SMS are sent inline, no worker needed.")
    # SimpleWorker runs jobs in this process, inside the app context and its database pool.
    SimpleWorker([queue], connection=queue.connection).work(burst=burst, with_scheduler=True)


def register(app: Flask) -> None:
    """Add the subcommands to ``flask``."""
    app.cli.add_command(subject_cli)
    app.cli.add_command(sms_cli)
    app.cli.add_command(worker_command)
