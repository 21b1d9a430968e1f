"""Work that runs outside a request and commits unit by unit: the campaign sender
(campaigns.py) and the purge (purge.py), used by the queue's tasks (viihde/tasks.py), the
views and the commands; and the app's answer to a provider's opt-out (here)."""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from sqlalchemy import select

from viihde.extensions import db
from viihde.models import ConsentActor, ConsentSource, Subscriber
from viihde.register import consent
from viihde.sms import delivery


@delivery.provider_opt_out.connect
def withdraw_after_provider_opt_out(sender: Flask, phone_e164: str, now: datetime) -> None:
    """The provider says the person opted out with it: withdraw all marketing, as a STOP
    would, in the transaction that records what the provider said (no commit: the status
    and the withdrawal commit together, so a crash between them loses neither)."""
    subscriber_id = db.session.scalar(
        select(Subscriber.id).where(Subscriber.phone_e164 == phone_e164)
    )
    if subscriber_id is not None:
        context = consent.ConsentContext(ConsentSource.SMS_KEYWORD, actor=ConsentActor.PROVIDER)
        consent.withdraw_all(subscriber_id, context, now)
