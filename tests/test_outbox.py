"""The SMS log is the outbox: a message committed as queued and never handed over (the
process died between the two) is delivered by the sweep, exactly once."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import SmsMessage
from viihde.register import consent, erasure
from viihde.sms import log_sms
from viihde.sms import outbox as sms_outbox
from viihde.sms.queue import enqueue_delivery, make_worker, sms_queue
from viihde.sms.texts import welcome_message
from viihde.tokens import TOKEN_PATTERN, preference_url

from .helpers import race

NUMBER = "+358401234567"
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL not set")


def committed_but_never_handed_over(app, kind: str = "welcome", minutes_ago: int = 2) -> int:
    """A subscriber's SMS as a request leaves it when killed after its commit."""
    when = utcnow() - timedelta(minutes=minutes_ago)
    with app.app_context():
        subscriber = consent.subscribe(NUMBER, ["offers"], consent.ConsentContext("signup"), when)
        link = preference_url(subscriber.id, subscriber.link_key)
        body = welcome_message(link, "fi", replies_reach_us=False)
        message_id = log_sms(NUMBER, body, kind, when, subscriber.id).id
        db.session.commit()
        return message_id


def status_of(app, message_id: int) -> tuple[str, str | None]:
    with app.app_context():
        message = db.session.get(SmsMessage, message_id)
        return message.status, message.error_code


def sweep(app) -> sms_outbox.SweepReport:
    with app.app_context():
        return sms_outbox.sweep(utcnow())


def test_a_message_whose_job_was_lost_is_delivered_once(app, outbox_path, outbox):
    """Commit a row, skip the hand-over, sweep: one delivery; sweep again: still one."""
    message_id = committed_but_never_handed_over(app)
    assert sweep(app).handed_over == 1
    assert sweep(app).handed_over == 0
    delivered = outbox.messages()
    assert len(delivered) == 1
    assert delivered[0]["to"] == NUMBER
    assert status_of(app, message_id) == ("sent", None)


def test_a_message_lost_for_over_a_day_is_not_sent_any_more(app, outbox):
    """A day late a welcome is news to nobody, and a register restored from a backup brings
    back as queued the messages that went out after it: such a message fails, unsent;
    one lost for less than a day still goes."""
    old = committed_but_never_handed_over(app, minutes_ago=24 * 60 + 1)
    report = sweep(app)
    assert (report.handed_over, report.failed) == (0, 1)
    assert status_of(app, old) == ("failed", sms_outbox.TOO_OLD)
    assert outbox.messages() == []
    recent = committed_but_never_handed_over(app, minutes_ago=24 * 60 - 1)
    assert sweep(app).handed_over == 1
    assert status_of(app, recent) == ("sent", None)


def test_the_delivered_message_carries_the_persons_live_link(app, client, outbox):
    """The log keeps the link without its token; the sweep puts the live one back."""
    committed_but_never_handed_over(app)
    sweep(app)
    link = outbox.last_link()
    assert client.get(link[len("https://viihdepaketti.fi") :]).status_code == 302


def test_a_fresh_message_is_left_to_its_own_job(app, outbox):
    """Just logged: its request is about to hand it over; the sweep does not race it."""
    committed_but_never_handed_over(app, minutes_ago=0)
    assert sweep(app).handed_over == 0
    assert outbox.messages() == []


def test_a_lost_code_fails_so_the_visitor_asks_for_a_new_one(app, outbox):
    """Codes are kept only as hashes: a lost code cannot be sent later. It fails, and the
    code page tells the visitor to ask for a new code."""
    message_id = committed_but_never_handed_over(app, kind="code")
    report = sweep(app)
    assert (report.handed_over, report.failed) == (0, 1)
    assert status_of(app, message_id) == ("failed", sms_outbox.CODE_LOST)
    assert outbox.messages() == []


def test_twin_sweeps_at_once_deliver_each_message_once(app, outbox):
    """Sweeps in several workers at the same moment: one delivery."""
    committed_but_never_handed_over(app)
    reports = race(*[lambda: sms_outbox.sweep(utcnow())] * 4, app=app)
    assert sum(report.handed_over for report in reports) == 1
    assert len(outbox.messages()) == 1


@pytest.mark.parametrize("kind", ["welcome", "campaign"])
def test_an_attempt_that_died_mid_call_is_settled_not_sent_again(app, outbox, kind):
    """ "sending" past the provider's time-out: it may have gone out; never sent twice. A
    campaign's message too (its campaign may be over, with no sender left to settle it)."""
    message_id = committed_but_never_handed_over(app, kind=kind, minutes_ago=5)
    with app.app_context():
        db.session.get(SmsMessage, message_id).status = "sending"
        db.session.commit()
    assert sweep(app).settled == 1
    assert status_of(app, message_id) == ("failed", "outcome_unknown")
    assert outbox.messages() == []


def test_an_erased_persons_lost_message_is_not_sent(app, outbox):
    """The person erased themselves meanwhile: nothing goes out (the row went with them)."""
    committed_but_never_handed_over(app)
    with app.app_context():
        erasure.erase(NUMBER, "subject", utcnow())
        db.session.commit()
    assert sweep(app).handed_over == 0
    assert outbox.messages() == []


def test_the_sms_log_and_every_staff_view_keep_no_live_link(app, outbox):
    """The welcome SMS carries a live link; the log keeps a placeholder instead."""
    committed_but_never_handed_over(app)
    sweep(app)
    with app.app_context():
        body = db.session.scalar(select(SmsMessage.body))
    assert not re.search(TOKEN_PATTERN, body)
    assert "https://viihdepaketti.fi/[link]" in body
    assert re.search(TOKEN_PATTERN, outbox.last()["body"])


@pytest.fixture
def queued(app, redis_url):
    """The app with the real Redis queue (CI sets REDIS_URL; a laptop skips)."""
    app.config.update(REDIS_URL=redis_url, SMS_RETRY_INTERVALS=[0, 0, 0])
    from viihde.sms import queue as sms_queue_module

    sms_queue_module.init_app(app)
    with app.app_context():
        queue = sms_queue()
        queue.empty()
        yield queue
        queue.empty()


@needs_redis
def test_with_a_queue_the_sweep_hands_over_once_and_a_worker_delivers(app, queued, outbox):
    """The sweep queues the lost message; a second sweep sees its job waiting; one SMS."""
    message_id = committed_but_never_handed_over(app)
    assert sms_outbox.sweep(utcnow()).handed_over == 1
    assert sms_outbox.sweep(utcnow()).handed_over == 0
    make_worker(queued).work(burst=True)
    assert len(outbox.messages()) == 1
    db.session.expire_all()
    assert db.session.get(SmsMessage, message_id).status == "sent"


@needs_redis
def test_a_message_whose_job_still_waits_is_left_alone(app, queued, outbox):
    """Workers are busy: the job waits in the queue, and the sweep leaves it there."""
    message_id = committed_but_never_handed_over(app)
    enqueue_delivery(message_id, "the body the request queued")
    assert sms_outbox.sweep(utcnow()).handed_over == 0
    make_worker(queued).work(burst=True)
    assert [m["body"] for m in outbox.messages()] == ["the body the request queued"]


def a_sending_campaign(app) -> int:
    """A campaign sending when the register was backed up."""
    from viihde.models import Campaign
    from viihde.register import campaigns

    with app.app_context():
        draft = campaigns.Draft(
            "Talvi", "offers", "Talvitarjous!", "Vintererbjudande!", "Winter offer!"
        )
        campaign_id = campaigns.create_draft(draft, None, utcnow()).id
        db.session.get(Campaign, campaign_id).status = campaigns.SENDING
        db.session.commit()
        return campaign_id


def test_after_a_restore_the_unsent_fail_and_sending_campaigns_pause(app, runner):
    """A restored log's queued messages went out, or not, after the restore point: they
    fail, never to be swept out again; one logged after the restore point (an instance
    left serving) is not the backup's and is left. A campaign that was sending is paused
    (whoever got it after the restore point has no record of it: an admin decides), and
    audited."""
    from viihde.models import AuditAction, AuditEntry, Campaign
    from viihde.register import campaigns

    message_id = committed_but_never_handed_over(app, minutes_ago=10)
    newer_id = committed_but_never_handed_over(app, minutes_ago=1)
    campaign_id = a_sending_campaign(app)
    restore_point = (utcnow() - timedelta(minutes=5)).isoformat()
    result = runner.invoke(args=["sms", "after-restore", restore_point, "--yes"])
    assert result.exit_code == 0, result.output
    assert "Messages failed (queued or sending at the restore point): 1" in result.output
    assert f"Campaigns paused: {campaign_id}" in result.output
    assert status_of(app, message_id) == ("failed", sms_outbox.RESTORED)
    assert status_of(app, newer_id) == ("queued", None)
    assert sweep(app).handed_over == 1  # the newer one, lost like any other
    with app.app_context():
        assert db.session.get(Campaign, campaign_id).status == campaigns.PAUSED
        entry = db.session.scalars(select(AuditEntry)).one()
        assert entry.action == AuditAction.PAUSE_CAMPAIGN and "after a restore" in entry.detail


@needs_redis
def test_after_a_restore_every_job_no_worker_runs_goes_and_a_live_worker_stops_it(
    app, queued, runner
):
    """Queued, scheduled (a retry, a campaign's next turn), and taken by a worker that was
    killed (RQ's intermediate list, its started registry: its upkeep would retry them):
    each names a message id that the restored log may give to another person's message,
    so each goes. A live worker makes the command refuse (it would take the jobs first);
    a killed one's lingering entry does not."""
    from datetime import UTC, datetime

    from rq import Worker
    from rq.executions import Execution
    from rq.intermediate_queue import IntermediateQueue
    from rq.job import Job

    connection = queued.connection
    enqueue_delivery(1, "Koodisi on 123456")
    enqueue_delivery(2, "Koodisi on 654321")
    enqueue_delivery(3, "Koodisi on 111111")
    taken = IntermediateQueue(queued.key, connection).key
    connection.lmove(queued.key, taken)  # a worker took sms-1, and was killed
    started = Job.fetch("sms-2", connection=connection)  # a worker began sms-2, and was killed
    connection.lrem(queued.key, 0, "sms-2")
    with connection.pipeline() as pipeline:
        execution = Execution.create(started, ttl=60, pipeline=pipeline)
        queued.started_job_registry.add_execution(execution, pipeline=pipeline, ttl=60)
        pipeline.execute()
    queued.enqueue_at(datetime(2030, 1, 1, tzinfo=UTC), "viihde.tasks.deliver_sms", 4, "x")
    worker = Worker([queued], connection=connection)
    worker.register_birth()
    try:
        refused = runner.invoke(args=["sms", "after-restore", utcnow().isoformat(), "--yes"])
        assert refused.exit_code != 0 and worker.name in refused.output
        assert Job.exists("sms-3", connection=connection)
        connection.delete(worker.key)  # killed: its heartbeat key expires, its entry stays
        result = runner.invoke(args=["sms", "after-restore", utcnow().isoformat(), "--yes"])
    finally:
        worker.register_death()
    assert result.exit_code == 0, result.output
    for job_id in ("sms-1", "sms-2", "sms-3"):
        assert not Job.exists(job_id, connection=connection)
    assert connection.llen(taken) == 0 and queued.count == 0
    assert queued.started_job_registry.get_job_ids(cleanup=False) == []
    assert queued.scheduled_job_registry.count == 0


@needs_redis
def test_after_a_restore_a_run_that_redis_stopped_halfway_is_run_again(
    app, queued, runner, monkeypatch
):
    """The database's part commits before the jobs go: when Redis fails in between, the
    command says what is done and to run it again (no traceback), and the second run
    finds nothing more to fail and drops the jobs."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from rq.job import Job

    from viihde.cli import sms as sms_cli

    message_id = committed_but_never_handed_over(app, minutes_ago=10)
    enqueue_delivery(message_id, "Tervetuloa")
    restore_point = (utcnow() - timedelta(minutes=5)).isoformat()
    drop_jobs = sms_cli.drop_jobs

    def redis_went_away(queue):
        raise RedisConnectionError("gone")

    monkeypatch.setattr(sms_cli, "drop_jobs", redis_went_away)
    halfway = runner.invoke(args=["sms", "after-restore", restore_point, "--yes"])
    assert halfway.exit_code != 0 and isinstance(halfway.exception, SystemExit)
    assert "run this again" in halfway.output
    assert status_of(app, message_id) == ("failed", sms_outbox.RESTORED)
    assert Job.exists(f"sms-{message_id}", connection=queued.connection)
    monkeypatch.setattr(sms_cli, "drop_jobs", drop_jobs)
    again = runner.invoke(args=["sms", "after-restore", restore_point, "--yes"])
    assert again.exit_code == 0, again.output
    assert "Messages failed (queued or sending at the restore point): 0" in again.output
    assert "SMS jobs dropped: 1" in again.output
    assert not Job.exists(f"sms-{message_id}", connection=queued.connection)


def test_after_a_restore_without_a_queue_says_no_jobs_were_dropped(app, runner):
    """Run where REDIS_URL is not set, the command says it dropped nothing, not zero."""
    result = runner.invoke(args=["sms", "after-restore", utcnow().isoformat(), "--yes"])
    assert result.exit_code == 0 and "No SMS queue here" in result.output


def test_after_a_restore_needs_the_restore_point_with_its_zone(runner):
    result = runner.invoke(args=["sms", "after-restore", "2026-12-07T10:15:00", "--yes"])
    assert result.exit_code != 0 and "zone" in result.output
