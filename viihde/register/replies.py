"""Replies people send to our number: STOP, START, HELP in Finnish, Swedish and English.

Each inbound message is stored once per provider message id (Twilio retries
webhooks), so a repeated STOP is one withdrawal; other texts are stored and
acknowledged without a reply.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select

from viihde.extensions import db
from viihde.models import (
    ConsentSource,
    InboundMessage,
    Refusal,
    SmsKind,
    SmsMessage,
    Subscriber,
    open_holding_of,
)
from viihde.models.statements import insert_once
from viihde.phone import normalise_e164, region_of
from viihde.register import consent
from viihde.register.erasure import tombstone_hash
from viihde.register.notices import SMS_START_TEXT_VERSION
from viihde.sms import log_reply, texts
from viihde.tokens import preference_url

STOP, START, HELP = "stop", "start", "help"
KEYWORDS = {
    STOP: {"STOP", "LOPETA", "LOPPU", "POISTA", "STOPPI", "SEIS", "PERU", "POIS", "AVSLUTA",
           "SLUTA", "AVBRYT", "STOPP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPALL",
           "OPTOUT", "REVOKE"},
    START: {"START", "ALOITA", "TILAA", "UNSTOP"},
    HELP: {"HELP", "APUA", "INFO", "HJALP"},
}  # fmt: skip
_WORD = {word: keyword for keyword, words in KEYWORDS.items() for word in words}


#: Twilio's own reading of a reply, when its Advanced Opt-Out is on (``OptOutType``).
_TWILIO_OPT_OUT_TYPES = {"STOP": STOP, "START": START, "HELP": HELP}
#: What may come around a keyword: spaces, punctuation, quotes.
_AROUND = " \t\r\n.,;:!?¡¿\"'«»“”‘’()-"


def keyword_of(body: str, opt_out_type: str | None = None) -> str | None:
    """The keyword a whole message is, ignoring case, accents, invisible characters,
    spaces, quotes and punctuation around it; Twilio's own reading of it (``OptOutType``:
    it has already blocked a number that sent STOP) decides when given."""
    if opt_out_type and opt_out_type.strip().upper() in _TWILIO_OPT_OUT_TYPES:
        return _TWILIO_OPT_OUT_TYPES[opt_out_type.strip().upper()]
    decomposed = unicodedata.normalize("NFKD", body or "")
    plain = "".join(
        ch
        for ch in decomposed
        if not unicodedata.combining(ch) and unicodedata.category(ch) != "Cf"
    )
    return _WORD.get(plain.strip(_AROUND).upper())


def handle_inbound(
    provider: str,
    message_sid: str,
    sender: str,
    body: str,
    now: datetime,
    opt_out_type: str | None = None,
) -> str | None:
    """Store one inbound message and act on its keyword (``keyword_of``); return the reply
    text, if any.

    No commit: the stored message commits with the consent change it causes and the logged
    reply, or not at all, so a request that fails midway is acted on when Twilio retries.
    """
    phone_e164 = normalise_e164(sender)
    if phone_e164 is None or not message_sid:
        return None
    keyword = keyword_of(body, opt_out_type)
    if not _store_once(provider, message_sid, phone_e164, body, keyword, now):
        return None  # a retried webhook: acted on already
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.phone_e164 == phone_e164))
    reply = _act(keyword, phone_e164, subscriber, now)
    if reply and _may_answer(phone_e164, now):
        log_reply(phone_e164, reply, now, subscriber.id if subscriber else None)
        return reply
    return None


def _may_answer(phone_e164: str, now: datetime) -> bool:
    """Is an answer to this number one we send? Only to a number of an allowed region, and
    at most SMS_REPLIES_PER_NUMBER_PER_HOUR an hour: replies count in the sign-up SMS
    budget, and one phone texting HELP in a loop must neither spend it (pausing every
    sign-up) nor run up costs. The keyword is acted on either way."""
    config = current_app.config
    if region_of(phone_e164) not in config["ALLOWED_REGIONS"]:
        return False
    answered = db.session.scalar(
        select(func.count())
        .select_from(SmsMessage)
        .where(
            SmsMessage.phone_e164 == phone_e164,
            SmsMessage.kind == SmsKind.REPLY,
            SmsMessage.created_at > now - timedelta(hours=1),
        )
    )
    return answered < config["SMS_REPLIES_PER_NUMBER_PER_HOUR"]


def _act(
    keyword: str | None, phone_e164: str, subscriber: Subscriber | None, now: datetime
) -> str | None:
    """Do what the keyword asks; return the answer, if the keyword has one. Every STOP also
    leaves a refusal (a keyed hash: no number kept for it) that a purchase from before it
    respects however long the SMS log keeps the reply: a number the register does not
    hold, or whose holder has nothing to withdraw yet, has no ledger to keep it. A START
    lifts it."""
    language = subscriber.language if subscriber else current_app.config["BABEL_DEFAULT_LOCALE"]
    if keyword == STOP:
        if subscriber is not None:
            context = consent.ConsentContext(ConsentSource.SMS_KEYWORD)
            consent.withdraw_all(subscriber.id, context, now)
        db.session.add(Refusal(phone_hash=tombstone_hash(phone_e164), refused_at=now))
        return texts.stop_reply(language)
    if keyword == START:
        db.session.execute(delete(Refusal).where(Refusal.phone_hash == tombstone_hash(phone_e164)))
    if keyword == START and subscriber is not None:
        evidence = consent.Evidence(consent_text_version=SMS_START_TEXT_VERSION)
        context = consent.ConsentContext(ConsentSource.SMS_KEYWORD, evidence=evidence)
        if consent.resume_after_stop(subscriber.id, context, now) or consent.is_subscribed(
            subscriber.id
        ):
            return texts.welcome_message(_link(subscriber), language, replies_reach_us=True)
    if keyword in (START, HELP):
        link = _link(subscriber) if subscriber else current_app.config["PUBLIC_BASE_URL"]
        return texts.help_reply(link, language)
    return None


def _link(subscriber: Subscriber) -> str:
    return preference_url(subscriber.id, subscriber.link_key)


def _store_once(
    provider: str, sid: str, phone_e164: str, body: str, keyword: str | None, now: datetime
) -> bool:
    stored = insert_once(
        InboundMessage,
        {
            "provider": provider,
            "message_sid": sid[:64],
            "phone_e164": phone_e164,
            "holding_id": open_holding_of(phone_e164),
            "body": body[:1600],
            "keyword": keyword,
            "received_at": now,
        },
        unique=("provider", "message_sid"),
    )
    return stored is not None
