"""``flask sms`` (set-up checks, the outbox sweep) and ``flask worker``."""

from __future__ import annotations

import logging
import threading

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from viihde.cli.common import hash_key_checked, number_argument, operator
from viihde.clock import utcnow
from viihde.extensions import db
from viihde.jobs import campaigns
from viihde.models import SmsKind, SmsMessage
from viihde.phone import mask
from viihde.register import restore
from viihde.register.campaigns import pause_all_sending
from viihde.sms import commit_then_send, outbox, stage
from viihde.sms.queue import drop_jobs, make_worker, sms_queue, workers_running
from viihde.sms.texts import test_message

log = logging.getLogger(__name__)

sms_cli = AppGroup("sms", help="SMS set-up checks, the outbox, and after a restore.")


@sms_cli.command("send-test")
@click.argument("number")
def send_test_command(number: str) -> None:
    """Send a test SMS to NUMBER through the configured backend."""
    phone = number_argument(number)
    language = current_app.config["BABEL_DEFAULT_LOCALE"]
    staged = stage(phone, test_message(language), SmsKind.TEST, utcnow())
    commit_then_send(utcnow())
    message = db.session.get(SmsMessage, staged.message_id)
    detail = f" (error {message.error_code})" if message.error_code else ""
    click.echo(f"Test SMS to {mask(phone)} via {message.backend}: {message.status}{detail}")
    if message.status == "failed":
        raise click.exceptions.Exit(1)


@sms_cli.command("sweep")
def sweep_command() -> None:
    """Hand over SMS whose job was lost (every worker does this each minute; run it from
    cron where no worker runs)."""
    report = outbox.sweep(utcnow())
    relaunched = campaigns.relaunch_stalled()
    if relaunched:
        click.echo(f"Relaunched the sender of campaigns {', '.join(map(str, relaunched))}.")
    click.echo(
        f"Handed over {report.handed_over}, failed {report.failed} (cannot be sent now), "
        f"settled {report.settled} (attempts that died)."
    )


@sms_cli.command("after-restore")
@click.argument("restore_point")
@click.option("--yes", is_flag=True, help="Do it without asking.")
def after_restore_command(restore_point: str, yes: bool) -> None:
    """After the register was restored to an earlier moment, with everything stopped
    (docs/deploy.md, "Restore"): fail every message the restored log has as queued or
    sending, pause every campaign that is sending (whoever got it after the restore point
    has no record of it: an admin decides), and then drop every SMS job in Redis that no
    worker runs. The database's part commits first: a run that fails later is run again.

    RESTORE_POINT is the moment the register was restored to, with its zone (e.g.
    2026-12-07T10:15:00+00:00): a message logged after it is not the backup's, and is
    left alone."""
    try:
        restored_at = restore.moment_of(restore_point)
    except ValueError as error:
        raise click.BadParameter(f"{error}: e.g. 2026-12-07T10:15:00+00:00") from None
    queue = sms_queue()
    _no_workers(queue)
    if not yes:
        click.confirm(
            "Fail the unsent messages, pause the sending campaigns and drop the SMS jobs?",
            abort=True,
        )
    now = utcnow()
    failed = outbox.fail_unsent(now, restored_at)
    paused = pause_all_sending(operator(), now, "after a restore")
    db.session.commit()  # before the jobs go: their rows must not be swept out again
    click.echo(f"Messages failed (queued or sending at the restore point): {failed}")
    click.echo(f"Campaigns paused: {', '.join(map(str, paused)) or 'none'}")
    if queue is None:
        click.echo("No SMS queue here (REDIS_URL is not set): no jobs dropped. If production's "
                   "workers use Redis, run this where REDIS_URL is set.")  # fmt: skip
        return
    _no_workers(queue)  # none started meanwhile (the question may have waited)
    try:
        dropped = drop_jobs(queue)
    except RedisError as error:
        raise click.ClickException(
            f"Redis failed while the SMS jobs were dropped ({type(error).__name__}): the "
            "messages above are failed and the campaigns paused; run this again to drop them."
        ) from None
    click.echo(f"SMS jobs dropped: {dropped}")


def _no_workers(queue) -> None:
    """Refuse while a worker runs on the queue (it would take the jobs first)."""
    try:
        running = workers_running(queue) if queue is not None else []
    except RedisError as error:
        raise click.ClickException(
            f"Redis cannot be reached ({type(error).__name__}): its SMS jobs would run once "
            "it is back. Start it and run this again."
        ) from None
    if running:
        raise click.ClickException(
            f"workers still run on the SMS queue: {', '.join(running)}. Stop them (a killed "
            "one leaves the list within 7 minutes)."
        )


def _sweep_every(app: Flask, seconds: float, stop: threading.Event) -> None:
    """The worker's outbox sweep, in a thread of its own with its own app context."""
    while not stop.wait(seconds):
        with app.app_context():
            try:
                outbox.sweep(utcnow())
                campaigns.relaunch_stalled()
            except (SQLAlchemyError, RedisError) as error:
                # The type only: a database error's text can carry message bodies.
                log.error("sms_outbox_sweep_failed error=%s", type(error).__name__)
            finally:
                db.session.remove()


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@with_appcontext
@hash_key_checked  # it would send codes that no hash of the register matches
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
        make_worker(queue).work(burst=burst, with_scheduler=True)
    finally:
        stop.set()
