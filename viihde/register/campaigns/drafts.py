"""What an admin composes and checks before sending: the draft, its message per language
with the footer, a test send to their own phone, and the estimated audience and cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from sqlalchemy import func, select

from viihde.extensions import db
from viihde.models import Campaign, ConsentEvent, LawfulBasis, SmsKind, Subscriber
from viihde.register import consent
from viihde.register.campaigns.state import DRAFT, CampaignStateError, get, locked, require_status
from viihde.register.purposes import configured_keys
from viihde.sms import Staged, stage
from viihde.sms.segments import Segmentation, segmentation
from viihde.sms.texts import campaign_footer, sender_accepts_replies
from viihde.tokens import MAX_SUBSCRIBER_ID, preference_url

#: The languages a campaign is written in (one body column each); others get Finnish.
LANGUAGES = ("fi", "sv", "en")
CENT = Decimal("0.01")


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
    """Save a new campaign as a draft (no commit: the caller commits it with its audit
    entry; flushed, so it has its id)."""
    campaign = Campaign(status=DRAFT, created_by_id=created_by_id, created_at=now, cursor=0)
    _write(campaign, draft)
    db.session.add(campaign)
    db.session.flush()
    return campaign


def update_draft(campaign_id: int, draft: Draft) -> Campaign:
    """Change a draft's name, purpose or texts (no commit); a started campaign stays as sent."""
    campaign = locked(campaign_id)
    require_status(campaign, DRAFT)
    _write(campaign, draft)
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


# The message


def body_for(campaign: Campaign, language: str) -> str:
    """The campaign's text in a language (Finnish for a language it is not written in)."""
    return getattr(campaign, f"body_{campaign_language(language)}")


def campaign_language(code: str | None) -> str:
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


def test_send(campaign_id: int, phone_e164: str, language: str, now: datetime) -> Staged:
    """Stage one language's message (with a sample link) to the admin's own number (the
    caller commits, then sends it). Not a marketing message to the audience: quiet hours
    do not apply."""
    campaign = get(campaign_id)
    if campaign is None:
        raise CampaignStateError("missing")
    body = sample_text(body_for(campaign, language), language)
    return stage(phone_e164, body, SmsKind.CAMPAIGN_TEST, now)


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
        by_consent, by_customer = by_language.get(campaign_language(language), (0, 0))
        if basis == LawfulBasis.CUSTOMER:
            by_customer += count
        else:
            by_consent += count
        by_language[campaign_language(language)] = (by_consent, by_customer)
    return counts
