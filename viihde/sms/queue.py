"""The SMS job queue: RQ on Redis when REDIS_URL is set, none (send inline) when not."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime

from flask import Flask, current_app
from redis import Redis
from rq import Queue, Retry, SimpleWorker, Worker, get_current_job
from rq.exceptions import NoSuchJobError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.utils import as_text
from rq.worker_registration import clean_worker_registry

QUEUE_NAME = "sms"
EXTENSION = "viihde.sms_queue"
#: A campaign sender works this long at most (it queues its own continuation sooner).
CAMPAIGN_JOB_TIMEOUT = 300
_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def init_app(app: Flask) -> None:
    """Create the queue once per app, if Redis is configured."""
    url = app.config.get("REDIS_URL")
    app.extensions[EXTENSION] = (
        Queue(QUEUE_NAME, connection=Redis.from_url(url), default_timeout=60) if url else None
    )


def sms_queue() -> Queue | None:
    """The app's SMS queue, or None when messages go out inline."""
    return current_app.extensions.get(EXTENSION)


def delivery_job_id(message_id: int) -> str:
    """The one job that delivers a message."""
    return f"sms-{message_id}"


def enqueue_delivery(message_id: int, body: str) -> None:
    """Queue one delivery; the body travels in the job, never in the database.

    One job per message id, so enqueueing twice cannot send twice; finished jobs
    are dropped at once and failed ones within a day (the body may hold a code). RQ
    writes the job into one pipeline of ours: one Redis round trip (its own would be two).
    """
    intervals = current_app.config["SMS_RETRY_INTERVALS"]
    queue = sms_queue()
    pipeline = queue.connection.pipeline()
    queue.enqueue_call(
        "viihde.tasks.deliver_sms",
        args=(message_id, body),
        job_id=delivery_job_id(message_id),
        description=f"deliver SMS {message_id}",  # never the body: it may hold a code
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        result_ttl=0,
        failure_ttl=24 * 3600,
        pipeline=pipeline,
    )
    pipeline.execute()


def drop_jobs(queue: Queue) -> int:
    """Delete every job of the queue that no worker is running now (the caller has seen
    none: ``workers_running``): queued, taken by a worker that died (RQ's intermediate
    list and started registry, which its maintenance would retry), scheduled (a retry, a
    campaign's next turn), deferred, and failed (their bodies hold codes for a day); how
    many. After a restore, each names a message id the restored log may give to another
    person's message."""
    connection = queue.connection
    registries = (
        queue.started_job_registry,  # cleanup=False below: RQ's cleanup would retry them
        queue.scheduled_job_registry,
        queue.deferred_job_registry,
        queue.failed_job_registry,
    )
    taken = IntermediateQueue(queue.key, connection).key
    ids = {*queue.get_job_ids(), *(as_text(job_id) for job_id in connection.lrange(taken, 0, -1))}
    for registry in registries:
        ids.update(registry.get_job_ids(cleanup=False))
    for job_id in ids:
        with suppress(NoSuchJobError):  # an entry whose job expired: its container goes below
            Job.fetch(job_id, connection=connection).delete(remove_from_queue=False)
    connection.delete(queue.key, taken, *(registry.key for registry in registries))
    return len(ids)


def workers_running(queue: Queue) -> list[str]:
    """The RQ workers listening on the queue now, by name (a killed one's entry, whose
    heartbeat has expired, is cleared first: it lingers until a live worker's upkeep)."""
    clean_worker_registry(queue)
    return [worker.name for worker in Worker.all(queue=queue)]


def campaign_job_ids(campaign_id: int) -> tuple[str, str]:
    """The two job ids a campaign's sender takes in turns."""
    return f"campaign-{campaign_id}-a", f"campaign-{campaign_id}-b"


def enqueue_campaign_sender(campaign_id: int, at: datetime | None = None) -> None:
    """Queue the campaign's sender to run now, or at ``at`` (when quiet hours end),
    unless one is waiting to run already (then that one is brought forward if need be).

    Two job ids take turns, so that a running sender can queue its continuation without
    overwriting its own job. A sender running elsewhere may be about to stop (it saw a
    pause that has since been lifted): the other id is queued then, and waits its turn.
    """
    queue = sms_queue()
    ids = campaign_job_ids(campaign_id)
    current = get_current_job()
    others = {
        job_id: job
        for job_id, job in zip(ids, Job.fetch_many(ids, connection=queue.connection), strict=True)
        if current is None or job_id != current.id
    }
    for job in others.values():
        if job is not None and job.get_status(refresh=False) in _WAITING:
            _bring_forward(queue, job, at)
            return
    free = [
        job_id
        for job_id, job in others.items()
        if job is None or job.get_status(refresh=False) != JobStatus.STARTED
    ]
    if not free:  # the other one is running, and goes on after this one
        return
    options = {
        "job_id": free[0],
        "description": f"send campaign {campaign_id}",
        "timeout": CAMPAIGN_JOB_TIMEOUT,
        # A turn that failed (the database restarting, say) is tried again; it goes on
        # from the cursor, and the recipient rows keep anyone from getting a second SMS.
        "retry": Retry(max=3, interval=[10, 60, 300]),
        "result_ttl": 0,
        "failure_ttl": 7 * 24 * 3600,
    }
    if at is None:
        queue.enqueue_call("viihde.tasks.run_campaign", args=(campaign_id,), **options)
    else:
        queue.enqueue_at(at, "viihde.tasks.run_campaign", campaign_id, **options)


class SmsWorker(SimpleWorker):
    """RQ's SimpleWorker (jobs run in this process, in its app context and pool) that
    finishes a job it has taken when told to stop, however soon after taking it.

    RQ counts a worker busy only once it starts a job: a TERM between taking one off the
    queue and starting it raised StopRequested, and the job was left in RQ's intermediate
    queue, marked queued, until RQ's maintenance failed it ten minutes later (rq/rq#2236,
    open): an SMS, a code among them, not sent meanwhile. prod-smoke's stopped worker hit
    it. Here a job taken is a job in hand."""

    _taken = False

    def dequeue_job_and_maintain_ttl(self, *args, **kwargs):
        taken = super().dequeue_job_and_maintain_ttl(*args, **kwargs)
        self._taken = taken is not None
        return taken

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        finally:
            self._taken = False

    def _shutdown(self) -> None:
        if self._taken:  # finish it; the work loop stops before it takes another
            self._stop_requested = True
            return
        super()._shutdown()


def make_worker(queue: Queue) -> SmsWorker:
    """The worker of ``queue`` that `flask worker` runs."""
    return SmsWorker([queue], connection=queue.connection)


def campaign_sender_waiting(campaign_id: int) -> bool:
    """Is one of the campaign's senders queued, scheduled or running? (A Redis that lost
    its data, or a continuation that could not be queued, leaves a sending campaign with
    none: nothing would wake it.)"""
    queue = sms_queue()
    ids = campaign_job_ids(campaign_id)
    return any(
        job is not None and job.get_status(refresh=False) in (*_WAITING, JobStatus.STARTED)
        for job in Job.fetch_many(ids, connection=queue.connection)
    )


def _bring_forward(queue: Queue, job: Job, at: datetime | None) -> None:
    """A sender scheduled for later that is wanted sooner runs sooner (never later)."""
    if job.get_status(refresh=False) != JobStatus.SCHEDULED:
        return
    registry = queue.scheduled_job_registry
    when = at or datetime.now(UTC)
    if when < registry.get_scheduled_time(job):
        registry.schedule(job, when)
