"""The SMS job queue: RQ on Redis when REDIS_URL is set, none (send inline) when not."""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis
from rq import Queue, Retry

QUEUE_NAME = "sms"
EXTENSION = "viihde.sms_queue"


def init_app(app: Flask) -> None:
    """Create the queue once per app, if Redis is configured."""
    url = app.config.get("REDIS_URL")
    app.extensions[EXTENSION] = (
        Queue(QUEUE_NAME, connection=Redis.from_url(url), default_timeout=60) if url else None
    )


def sms_queue() -> Queue | None:
    """The app's SMS queue, or None when messages go out inline."""
    return current_app.extensions.get(EXTENSION)


def enqueue_delivery(message_id: int, body: str) -> None:
    """Queue one delivery; the body travels in the job, never in the database.

    One job per message id, so enqueueing twice cannot send twice; finished jobs
    are dropped at once and failed ones within a day (the body may hold a code).
    """
    intervals = current_app.config["SMS_RETRY_INTERVALS"]
    sms_queue().enqueue_call(
        "viihde.sms.delivery.deliver_job",
        args=(message_id, body),
        job_id=f"sms-{message_id}",
        description=f"deliver SMS {message_id}",  # never the body: it may hold a code
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        result_ttl=0,
        failure_ttl=24 * 3600,
    )
