"""Campaigns: a marketing SMS to everyone who has a purpose granted, written per language
by an admin, then sent by the campaign sender.

The sender goes through the audience in subscriber id order, one message at a time. It
reads the campaign's status again before each message (a pause takes effect at once),
waits out quiet hours, keeps to CAMPAIGN_MESSAGES_PER_SECOND, and checks the person's
consent under a lock on their row at the moment their message goes out. The unique
(campaign, subscriber) row makes sure nobody gets a campaign twice, whatever twin
senders or retries do. A message whose sender died between logging it and handing it
over is handed over by a later turn, if the person's consent still stands.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app, has_app_context
from redis.exceptions import RedisError
from sqlalchemy import exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from . import config, consent
from .clock import HELSINKI, utcnow
from .extensions import db
from .models import (
    CAMPAIGN_SMS_KIND,
    CAMPAIGN_STATUSES,
    CAMPAIGN_TEST_SMS_KIND,
    Campaign,
    CampaignMessage,
    ConsentEvent,
    SmsMessage,
    Subscriber,
)
from .purposes import configured_keys
from .sms import log_sms, send_sms
from .sms.delivery import deliver, in_flight_since
from .sms.queue import enqueue_campaign_sender, sms_queue
from .sms.segments import Segmentation, segmentation
from .sms.texts import campaign_footer, sender_accepts_replies
from .tokens import MAX_SUBSCRIBER_ID, preference_url

log = logging.getLogger(__name__)

DRAFT, SENDING, PAUSED, FINISHED, CANCELLED = CAMPAIGN_STATUSES
SENT, SKIPPED = "sent", "skipped"
#: The languages a campaign is written in (one body column each); others get Finnish.
LANGUAGES = ("fi", "sv", "en")
#: Subscribers read per query while going through the audience.
BATCH = 100
#: A queued sender's turn: then it queues its continuation, so jobs stay short.
BUDGET_SECONDS = 30.0
#: A campaign SMS still queued this long after it was logged lost its sender (killed
#: between the commit and the hand-over, which are milliseconds apart): a later turn
#: hands it over, if the person's consent still stands.
ORPHANED_AFTER = timedelta(seconds=60)
CENT = Decimal("0.01")


class CampaignStateError(ValueError):
    """The campaign's status does not allow this (editing a sent campaign, pausing a draft)."""


class SenderUnavailable(RuntimeError):
    """The queue could not be reached: the campaign waits until it is sent on."""


@dataclass(frozen=True)
class Draft:
    """What an admin writes: a name, the purpose it markets, and the text per language."""

    name: str
    purpose: str
    body_fi: str
    body_sv: str
    body_en: str

    def bodies(self) -> dict[str, str]:
        return {language: getattr(self, f"body_{language}") for language in LANGUAGES}


# Drafts


def create_draft(draft: Draft, created_by_id: int | None, now: datetime) -> Campaign:
    """Save a new campaign as a draft (commits)."""
    campaign = Campaign(status=DRAFT, created_by_id=created_by_id, created_at=now, cursor=0)
    _write(campaign, draft)
    db.session.add(campaign)
    db.session.commit()
    return campaign


def update_draft(campaign_id: int, draft: Draft) -> Campaign:
    """Change a draft's name, purpose or texts (commits); a started campaign stays as sent."""
    campaign = _locked(campaign_id)
    _require(campaign, DRAFT)
    _write(campaign, draft)
    db.session.commit()
    return campaign


def _write(campaign: Campaign, draft: Draft) -> None:
    if draft.purpose not in configured_keys():
        raise ValueError(f"no such consent purpose on offer: {draft.purpose!r}")
    campaign.name, campaign.purpose = draft.name.strip(), draft.purpose
    for language, body in draft.bodies().items():
        setattr(campaign, f"body_{language}", clean_body(body))


def clean_body(body: str) -> str:
    """A text as it is sent: browsers' CRLF line ends as LF, no whitespace around it."""
    return (body or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def get(campaign_id: int) -> Campaign | None:
    """The campaign with this id, if there is one."""
    return db.session.get(Campaign, campaign_id)


def _locked(campaign_id: int) -> Campaign | None:
    """Load and lock (FOR UPDATE on PostgreSQL) the campaign, fresh from the database."""
    return db.session.execute(
        select(Campaign)
        .where(Campaign.id == campaign_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _require(campaign: Campaign | None, *statuses: str) -> None:
    if campaign is None or campaign.status not in statuses:
        db.session.rollback()
        raise CampaignStateError(campaign.status if campaign else "missing")


# The message


def body_for(campaign: Campaign, language: str) -> str:
    """The campaign's text in a language (Finnish for a language it is not written in)."""
    return getattr(campaign, f"body_{_language(language)}")


def _language(code: str | None) -> str:
    return code if code in LANGUAGES else LANGUAGES[0]


def compose(body: str, footer: str) -> str:
    """A campaign message: the text, then the footer on a line of its own."""
    return f"{body}\n{footer}"


def footer(link: str, language: str, customer: bool = False) -> str:
    """How to stop (or, on a customer's first message, to refuse), with the link."""
    replies = sender_accepts_replies(current_app.config["TWILIO_FROM"])
    return campaign_footer(link, language, replies, customer)


def sample_link() -> str:
    """A link as long as any real one can be (the largest id): for estimates and tests."""
    return preference_url(MAX_SUBSCRIBER_ID, "sample")


def sample_text(body: str, language: str, customer: bool = False) -> str:
    """The message as a recipient would get it, with a sample link."""
    return compose(clean_body(body), footer(sample_link(), language, customer))


def test_send(campaign_id: int, phone_e164: str, language: str, now: datetime) -> SmsMessage:
    """Text one language's message (with a sample link) to the admin's own number. Not a
    marketing message to the audience: quiet hours do not apply."""
    campaign = get(campaign_id)
    if campaign is None:
        raise CampaignStateError("missing")
    body = sample_text(body_for(campaign, language), language)
    return send_sms(phone_e164, body, CAMPAIGN_TEST_SMS_KIND, now)


# Estimates


@dataclass(frozen=True)
class LanguagePreview:
    """One language's message with a sample link, its recipients and estimated cost."""

    language: str
    text: str
    segmentation: Segmentation
    #: A customer's first message carries a longer footer (how to refuse).
    customer_segmentation: Segmentation
    recipients: int
    customers: int
    cost: Decimal


def preview(purpose: str, bodies: dict[str, str]) -> list[LanguagePreview]:
    """Per language: segments, encoding, recipients now and the estimated cost (recipients
    x segments x SMS_SEGMENT_PRICE_EUR; customers counted with the longer footer)."""
    counts = audience_counts().get(purpose, {})
    price = segment_price()
    previews = []
    for language in LANGUAGES:
        ordinary = segmentation(sample_text(bodies[language], language))
        customer = segmentation(sample_text(bodies[language], language, customer=True))
        by_consent, by_customer = counts.get(language, (0, 0))
        cost = price * (by_consent * ordinary.segments + by_customer * customer.segments)
        previews.append(
            LanguagePreview(
                language,
                sample_text(bodies[language], language),
                ordinary,
                customer,
                by_consent + by_customer,
                by_customer,
                cost.quantize(CENT, ROUND_HALF_UP),
            )
        )
    return previews


def segment_price() -> Decimal:
    """The price of one SMS segment in euros."""
    return Decimal(current_app.config["SMS_SEGMENT_PRICE_EUR"])


def audience_counts() -> dict[str, dict[str, tuple[int, int]]]:
    """For each purpose and language: how many have it granted now, on consent and as
    customers (one query over the ledger)."""
    last = (
        select(ConsentEvent.subscriber_id, func.max(ConsentEvent.seq).label("seq"))
        .group_by(ConsentEvent.subscriber_id, ConsentEvent.purpose)
        .subquery()
    )
    rows = db.session.execute(
        select(ConsentEvent.purpose, Subscriber.language, ConsentEvent.basis, func.count())
        .join(last, (ConsentEvent.subscriber_id == last.c.subscriber_id))
        .where(ConsentEvent.seq == last.c.seq, ConsentEvent.action == consent.GRANT)
        .join(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
        .group_by(ConsentEvent.purpose, Subscriber.language, ConsentEvent.basis)
    )
    counts: dict[str, dict[str, tuple[int, int]]] = {}
    for purpose, language, basis, count in rows:
        by_language = counts.setdefault(purpose, {})
        by_consent, by_customer = by_language.get(_language(language), (0, 0))
        if basis == consent.CUSTOMER:
            by_customer += count
        else:
            by_consent += count
        by_language[_language(language)] = (by_consent, by_customer)
    return counts


# Sending: start, pause, resume, cancel


def start(
    campaign_id: int,
    now: datetime,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> Campaign:
    """Start sending a draft: its audience is fixed as everyone up to the newest subscriber
    now; the sender is queued (without a queue it runs here, with ``clock`` and ``sleep``)."""
    campaign = _locked(campaign_id)
    _require(campaign, DRAFT)
    campaign.status, campaign.started_at, campaign.cursor = SENDING, now, 0
    campaign.last_subscriber_id = db.session.scalar(select(func.max(Subscriber.id))) or 0
    db.session.commit()
    _launch(campaign_id, clock, sleep)
    return campaign


def pause(campaign_id: int) -> Campaign:
    """Hold the campaign: the sender stops before its next message."""
    campaign = _locked(campaign_id)
    _require(campaign, SENDING)
    campaign.status, campaign.resume_at = PAUSED, None
    db.session.commit()
    return campaign


def resume(
    campaign_id: int,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
) -> Campaign:
    """Send on from where the campaign stopped (paused, or a sender that is not running)."""
    campaign = _locked(campaign_id)
    _require(campaign, PAUSED, SENDING)
    campaign.status = SENDING
    db.session.commit()
    _launch(campaign_id, clock, sleep)
    return campaign


def cancel(campaign_id: int, now: datetime) -> Campaign:
    """Stop the campaign for good (a draft too); whoever got it keeps their message."""
    campaign = _locked(campaign_id)
    _require(campaign, DRAFT, SENDING, PAUSED)
    campaign.status, campaign.finished_at, campaign.resume_at = CANCELLED, now, None
    db.session.commit()
    return campaign


def _launch(campaign_id: int, clock: Callable[[], datetime], sleep: Callable[[float], None]):
    """Hand the campaign to the queue's worker, or run it here when there is no queue."""
    if sms_queue() is None:
        run(campaign_id, clock=clock, sleep=sleep, budget_seconds=None)
        return
    try:
        enqueue_campaign_sender(campaign_id)
    except RedisError:
        log.warning("campaign_queue_unavailable campaign=%s", campaign_id)
        raise SenderUnavailable(campaign_id) from None


def _continue_later(campaign_id: int, at: datetime | None = None) -> None:
    """Queue the sender's next turn (at ``at``). Without a queue, nothing wakes it:
    sending on after quiet hours is then an admin's press of a button."""
    if sms_queue() is None:
        return
    try:
        enqueue_campaign_sender(campaign_id, at)
    except RedisError:
        log.warning("campaign_queue_unavailable campaign=%s", campaign_id)


# Quiet hours


def next_allowed(now: datetime, quiet_hours: str) -> datetime | None:
    """None when marketing SMS may go out now; else the moment (UTC) quiet hours end.

    Quiet hours are Helsinki wall-clock times, so in UTC they move with daylight saving.
    """
    window = config.quiet_hours_window(quiet_hours)
    if window is None:
        return None
    start, end = window
    local = now.astimezone(HELSINKI)
    moment, day = local.time(), local.date()
    if start < end:
        quiet = start <= moment < end
    else:  # across midnight
        quiet = moment >= start or moment < end
        if moment >= start:
            day += timedelta(days=1)
    if not quiet:
        return None
    return datetime.combine(day, end, HELSINKI).astimezone(UTC)


# The sender


def run_job(campaign_id: int) -> str:
    """The RQ job: one turn of the sender, in an app context."""
    if has_app_context():
        return run(campaign_id, budget_seconds=BUDGET_SECONDS)
    from . import create_app  # a plain `rq worker` has no app yet

    with create_app().app_context():
        return run(campaign_id, budget_seconds=BUDGET_SECONDS)


def run(
    campaign_id: int,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    budget_seconds: float | None = BUDGET_SECONDS,
) -> str:
    """Send the campaign until its audience is done, it is paused or cancelled, quiet
    hours begin (it then schedules itself for their end) or ``budget_seconds`` are spent
    (it then queues its continuation). Returns why it stopped."""
    with _one_sender_at_a_time(campaign_id):
        return _Sender(campaign_id, clock, sleep, budget_seconds).run()


@contextmanager
def _one_sender_at_a_time(campaign_id: int) -> Iterator[None]:
    """Twin senders of a campaign take turns, so that together they keep to the rate.

    PostgreSQL: an advisory lock on a connection of its own, held for the whole turn (a
    twin waits, then finds the work done). SQLite serves one writer at a time anyway.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        yield
        return
    key = {"key": f"viihde.campaign-sender:{campaign_id}"}
    with db.engine.connect() as connection:
        connection.execute(text("SET LOCAL lock_timeout = '240s'"))
        connection.execute(text("SELECT pg_advisory_lock(hashtextextended(:key, 0))"), key)
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), key)
            connection.commit()


def _interval(per_second: float) -> timedelta:
    """The time between two messages, rounded up so the rate is never exceeded."""
    if per_second <= 0:
        return timedelta(0)
    return timedelta(microseconds=math.ceil(1_000_000 / per_second))


class _Sender:
    """One turn of the sender, with its pace and the subscribers it has read ahead."""

    def __init__(self, campaign_id, clock, sleep, budget_seconds: float | None) -> None:
        config = current_app.config
        self.campaign_id, self.clock, self.sleep = campaign_id, clock, sleep
        self.quiet_hours = config["CAMPAIGN_QUIET_HOURS"]
        self.interval = _interval(config["CAMPAIGN_MESSAGES_PER_SECOND"])
        began = clock()
        self.until = None if budget_seconds is None else began + timedelta(seconds=budget_seconds)
        self.next_send = began
        self.ahead: list[int] = []

    def run(self) -> str:
        while True:
            now = self.clock()
            if now < self.next_send:
                self.sleep((self.next_send - now).total_seconds())
                now = self.clock()
            stopped = self._step(now)
            if stopped is not None:
                return stopped

    def _step(self, now: datetime) -> str | None:
        """One recipient; or why the sender stops now."""
        campaign = _locked(self.campaign_id)
        if campaign is None or campaign.status != SENDING:
            db.session.rollback()
            return campaign.status if campaign is not None else "missing"
        resume_at = next_allowed(now, self.quiet_hours)
        if resume_at is not None:
            campaign.resume_at = resume_at
            db.session.commit()
            _continue_later(self.campaign_id, resume_at)
            return "quiet_hours"
        if self.until is not None and now >= self.until:
            db.session.rollback()
            _continue_later(self.campaign_id)
            return "turn_over"
        campaign.resume_at = None
        orphan = _orphan(campaign, now)
        if orphan is not None:
            self._deliver(_adopt(campaign, orphan, now), now)
            return None
        subscriber_id = self._next_recipient(campaign)
        if subscriber_id is None:
            campaign.status, campaign.finished_at = FINISHED, now
            db.session.commit()
            return FINISHED
        self._deliver(_record_recipient(campaign, subscriber_id, now), now)
        return None

    def _deliver(self, outgoing: tuple[int, str] | None, now: datetime) -> None:
        if outgoing is not None:
            deliver(*outgoing, now, final_attempt=True)
            db.session.rollback()  # end the read deliver may leave open: nothing is held asleep
            self.next_send = now + self.interval

    def _next_recipient(self, campaign: Campaign) -> int | None:
        """The next subscriber after the cursor to send to; None when the audience is done."""
        self.ahead = [i for i in self.ahead if i > campaign.cursor]  # a twin may have gone on
        while not self.ahead:
            self.ahead, examined = _candidates(campaign)
            if examined is None:
                return None
            if not self.ahead:
                campaign.cursor = examined
        return self.ahead.pop(0)


def _candidates(campaign: Campaign) -> tuple[list[int], int | None]:
    """The next subscribers after the cursor, in id order, who have the purpose granted,
    or withdrew it after the campaign started (they get a 'skipped' row); and the last id
    looked at (None: nobody is left)."""
    last = (
        select(ConsentEvent.subscriber_id, func.max(ConsentEvent.seq).label("seq"))
        .where(
            ConsentEvent.purpose == campaign.purpose,
            ConsentEvent.subscriber_id > campaign.cursor,
            ConsentEvent.subscriber_id <= campaign.last_subscriber_id,
        )
        .group_by(ConsentEvent.subscriber_id)
        .order_by(ConsentEvent.subscriber_id)
        .limit(BATCH)
        .subquery()
    )
    rows = db.session.execute(
        select(last.c.subscriber_id, ConsentEvent.action, ConsentEvent.created_at)
        .join(
            ConsentEvent,
            (ConsentEvent.subscriber_id == last.c.subscriber_id) & (ConsentEvent.seq == last.c.seq),
        )
        .order_by(last.c.subscriber_id)
    ).all()
    eligible = [
        row.subscriber_id
        for row in rows
        if row.action == consent.GRANT or row.created_at >= campaign.started_at
    ]
    return eligible, (rows[-1].subscriber_id if rows else None)


def _record_recipient(
    campaign: Campaign, subscriber_id: int, now: datetime
) -> tuple[int, str] | None:
    """Under a lock on the subscriber: check their consent now, record them (sent, or
    skipped when consent is gone) and log their SMS, in one commit with the cursor.
    Returns the SMS to deliver (its id and body), if any."""
    campaign.cursor = subscriber_id
    subscriber = db.session.execute(
        select(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if subscriber is None:  # erased meanwhile
        db.session.commit()
        return None
    event = consent.latest_events(subscriber_id).get(campaign.purpose)
    granted = event is not None and event.action == consent.GRANT
    basis = event.basis if granted else None
    first_as_customer = basis == consent.CUSTOMER and not _had_customer_message(subscriber_id)
    language = _language(subscriber.language)
    status = SENT if granted else SKIPPED
    row_id = _insert_recipient(campaign.id, subscriber_id, status, language, basis, now)
    if row_id is None or not granted:  # a twin sender was first, or consent is gone
        db.session.commit()
        return None
    link = preference_url(subscriber.id, subscriber.link_key)
    body = compose(body_for(campaign, language), footer(link, language, first_as_customer))
    message = _log_sms(subscriber, body, now)
    db.session.execute(
        update(CampaignMessage).where(CampaignMessage.id == row_id).values(sms_message_id=message)
    )
    db.session.commit()
    return message, body


def _orphan(campaign: Campaign, now: datetime) -> CampaignMessage | None:
    """The oldest message of the campaign whose sender died before handing it over (still
    queued a while after it was logged), or while handing it over (still "sending" past
    the provider's time-out)."""
    return db.session.scalars(
        select(CampaignMessage)
        .join(SmsMessage, SmsMessage.id == CampaignMessage.sms_message_id)
        .where(
            CampaignMessage.campaign_id == campaign.id,
            CampaignMessage.status == SENT,
            ((SmsMessage.status == "queued") & (SmsMessage.created_at < now - ORPHANED_AFTER))
            | ((SmsMessage.status == "sending") & (SmsMessage.updated_at < in_flight_since(now))),
        )
        .order_by(CampaignMessage.id)
        .limit(1)
    ).first()


def _adopt(campaign: Campaign, orphan: CampaignMessage, now: datetime) -> tuple[int, str] | None:
    """Hand an orphaned message over after all, if the person's consent still stands
    (checked under the lock on their row, as for a new one); else it is not sent: the
    message fails ("consent_withdrawn") and the recipient counts as skipped."""
    message = db.session.get(SmsMessage, orphan.sms_message_id)
    subscriber = db.session.execute(
        select(Subscriber).where(Subscriber.id == orphan.subscriber_id).with_for_update()
    ).scalar_one_or_none()
    event = consent.latest_events(subscriber.id).get(campaign.purpose) if subscriber else None
    if message.status == "sending" or (event is not None and event.action == consent.GRANT):
        db.session.commit()  # deliver settles a dead "sending" itself (outcome unknown)
        return message.id, message.body
    orphan.status = SKIPPED
    message.status, message.error_code, message.updated_at = "failed", "consent_withdrawn", now
    db.session.commit()
    return None


def _had_customer_message(subscriber_id: int) -> bool:
    """Has the subscriber had a campaign message as a customer already?"""
    return db.session.scalar(
        select(
            exists().where(
                CampaignMessage.subscriber_id == subscriber_id,
                CampaignMessage.status == SENT,
                CampaignMessage.basis == consent.CUSTOMER,
            )
        )
    )


def _insert_recipient(
    campaign_id: int, subscriber_id: int, status: str, language: str, basis, now: datetime
) -> int | None:
    """The recipient row, unless the campaign has one for this subscriber already."""
    table = CampaignMessage.__table__
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: psycopg reports no rowcount for INSERT ... ON CONFLICT.
    return db.session.execute(
        insert(table)
        .values(
            campaign_id=campaign_id,
            subscriber_id=subscriber_id,
            status=status,
            language=language,
            basis=basis,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[table.c.campaign_id, table.c.subscriber_id])
        .returning(table.c.id)
    ).scalar_one_or_none()


def _log_sms(subscriber: Subscriber, body: str, now: datetime) -> int:
    """Log the message as queued (the sender hands it over itself, being a job already)."""
    return log_sms(subscriber.phone_e164, body, CAMPAIGN_SMS_KIND, now, subscriber.id).id


# Figures


@dataclass(frozen=True)
class Figures:
    """A campaign and what became of it."""

    campaign: Campaign
    recipients: int = 0
    sent: int = 0
    #: Consent was gone when their turn came.
    skipped: int = 0
    delivered: int = 0
    failed: int = 0
    #: Withdrew the campaign's purpose after their message.
    opted_out: int = 0


def figures(include_drafts: bool = False, limit: int | None = None) -> list[Figures]:
    """Each campaign's figures, newest first."""
    query = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
    if not include_drafts:
        query = query.where(Campaign.status != DRAFT)
    campaigns = list(db.session.scalars(query))
    counts = _message_counts([campaign.id for campaign in campaigns])
    return [Figures(campaign, *counts.get(campaign.id, ())) for campaign in campaigns]


def figures_of(campaign: Campaign) -> Figures:
    """One campaign's figures."""
    return Figures(campaign, *_message_counts([campaign.id]).get(campaign.id, ()))


def _message_counts(campaign_ids: list[int]) -> dict[int, tuple[int, ...]]:
    """Per campaign, in one query: recipients, sent, skipped, delivered, failed, opt-outs."""
    row, sms = CampaignMessage, SmsMessage
    opted_out = exists().where(
        ConsentEvent.subscriber_id == row.subscriber_id,
        ConsentEvent.purpose == Campaign.purpose,
        ConsentEvent.action == consent.WITHDRAW,
        ConsentEvent.created_at >= row.created_at,
    )
    result = db.session.execute(
        select(
            row.campaign_id,
            func.count(),
            func.count().filter(row.status == SENT),
            func.count().filter(row.status == SKIPPED),
            func.count().filter(sms.status == "delivered"),
            func.count().filter(sms.status.in_(("undelivered", "failed"))),
            func.count().filter(row.status == SENT, opted_out),
        )
        .join(Campaign, Campaign.id == row.campaign_id)
        .outerjoin(sms, sms.id == row.sms_message_id)
        .where(row.campaign_id.in_(campaign_ids))
        .group_by(row.campaign_id)
    )
    return {campaign_id: tuple(counts) for campaign_id, *counts in result}
