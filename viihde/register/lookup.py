"""Finding a person in the register: by id, by number, by what support typed."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from viihde.extensions import db
from viihde.models import Subscriber
from viihde.phone import PhoneError, compact, parse_mobile


def subscriber_by_id(subscriber_id: int | None) -> Subscriber | None:
    """The subscriber with this id, if there is one."""
    return db.session.get(Subscriber, subscriber_id) if subscriber_id else None


def subscriber_by_phone(phone_e164: str) -> Subscriber | None:
    """The subscriber with this number, if there is one."""
    return db.session.scalar(select(Subscriber).where(Subscriber.phone_e164 == phone_e164))


#: Support may look a number up by its last digits, when it has at least this many.
MIN_LAST_DIGITS = 6


@dataclass(frozen=True)
class Search:
    """What support typed: a whole number (in E.164), or the last digits of one."""

    phone_e164: str | None = None
    last_digits: str | None = None


def read_search(query: str, allowed_regions: list[str]) -> Search:
    """A whole number in any accepted format, else 6+ last digits; else PhoneError.

    Bare digits with neither the trunk 0 nor a country code are always last digits:
    phonenumbers would read "456789" as the (valid) number +358 45 6789. Separators and
    digits of other scripts are read as in a whole number ("123-4567", "٤٥٦٧٨٩").
    """
    typed = compact(query)
    tail = typed.isdecimal() and not typed.startswith(("0", "358"))
    if tail and len(typed) >= MIN_LAST_DIGITS:
        return Search(last_digits=typed)
    try:
        return Search(phone_e164=parse_mobile(query, allowed_regions))
    except PhoneError:
        bare = typed.lstrip("+")
        if bare.isdecimal() and len(bare) >= MIN_LAST_DIGITS:
            return Search(last_digits=bare)
        raise


def find_by_last_digits(digits: str, limit: int = 50) -> list[Subscriber]:
    """Subscribers whose number ends with ``digits`` (support types what the caller reads)."""
    if db.session.get_bind().dialect.name == "postgresql":
        # The reversed number's index serves a prefix (migration 0008); LIKE '%…' scans all.
        ends_with = func.reverse(Subscriber.phone_e164).startswith(digits[::-1], autoescape=True)
    else:
        ends_with = Subscriber.phone_e164.endswith(digits, autoescape=True)
    return list(
        db.session.scalars(
            select(Subscriber).where(ends_with).order_by(Subscriber.phone_e164).limit(limit)
        )
    )
