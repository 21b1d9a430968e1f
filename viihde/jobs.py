"""The queue's jobs, and what the app does when the SMS plumbing reports a provider's
opt-out. The only module the queue and the scheduler name by path: each job runs in an
app context (the `flask worker` command's, or a new one under a plain `rq worker`) and
calls into the layers, as a view or a command does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from flask import Flask, has_app_context
from rq import get_current_job
from sqlalchemy import select

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import ConsentActor, ConsentSource, Subscriber
from viihde.register import consent, retention
from viihde.register.campaigns import sending
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
    return _in_app_context(lambda: sending.run(campaign_id, budget_seconds=sending.BUDGET_SECONDS))


def purge() -> dict[str, int]:
    """The scheduled purge (`rq cron viihde.schedule`), as the system."""
    return _in_app_context(lambda: retention.purge(utcnow()).counts())


@delivery.provider_opt_out.connect
def withdraw_after_provider_opt_out(sender: Flask, phone_e164: str, now: datetime) -> None:
    """The provider says the person opted out with it: withdraw all marketing, as a STOP
    would (the withdrawal commits)."""
    subscriber_id = db.session.scalar(
        select(Subscriber.id).where(Subscriber.phone_e164 == phone_e164)
    )
    if subscriber_id is not None:
        context = consent.ConsentContext(ConsentSource.SMS_KEYWORD, actor=ConsentActor.PROVIDER)
        consent.withdraw_all(subscriber_id, context, now)
