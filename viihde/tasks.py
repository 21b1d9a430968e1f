"""The queue's tasks: what RQ runs by name (``viihde.tasks.<name>``). Each runs in an app
context (the `flask worker` command's, or a new one under a plain `rq worker`) and hands
over to the layers, as a view or a command does."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import has_app_context
from rq import get_current_job

from viihde.clock import utcnow
from viihde.jobs import campaigns, purge
from viihde.sms import delivery

T = TypeVar("T")


def _in_app_context(work: Callable[[], T]) -> T:
    if has_app_context():
        return work()
    from viihde import create_app  # a plain `rq worker` has no app yet

    with create_app().app_context():
        return work()


def deliver_sms(message_id: int, body: str) -> str:
    """Hand one logged SMS to the provider; RQ retries it on ``delivery.RetryLater``."""

    def work() -> str:
        job = get_current_job()
        final = job is None or not job.retries_left
        return delivery.deliver(message_id, body, utcnow(), final_attempt=final)

    return _in_app_context(work)


def run_campaign(campaign_id: int) -> str:
    """One turn of a campaign's sender."""
    return _in_app_context(
        lambda: campaigns.run(campaign_id, budget_seconds=campaigns.BUDGET_SECONDS)
    )


def purge_register() -> dict[str, int]:
    """The scheduled purge (`rq cron viihde.schedule`), as the system. A category that
    failed (rolled back, the others done) fails the job, as `flask register purge` exits
    1: RQ keeps it among the failed jobs, where an operator looks."""

    def work() -> dict[str, int]:
        report = purge.run(utcnow())
        if report.failures:
            raise purge.PurgeFailed(report.failures)
        return report.counts()

    return _in_app_context(work)
