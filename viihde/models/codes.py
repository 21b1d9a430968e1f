"""One-time codes sent to numbers, each with the consent it will confirm."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from viihde.extensions import db
from viihde.models.base import PHONE, VERSION, UTCDateTime, one_of
from viihde.models.holdings import holding_column
from viihde.models.subscribers import ConsentEvidence


class VerificationKind(StrEnum):
    """What a code is for (``Verification.kind``)."""

    SIGNUP = "signup"  # confirms a sign-up
    STEP_UP = "step_up"  # proves the number again before a right is used


class Verification(ConsentEvidence, db.Model):
    """One one-time code sent to a number, with the consent it will confirm."""

    __tablename__ = "verifications"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint(one_of("kind", VerificationKind), name="kind"),
        Index("ix_verifications_phone_created", "phone_e164", "created_at"),
        Index("ix_verifications_consumed_at", "consumed_at"),
        # The sign-up breaker reads each network's and number range's latest codes of the
        # hour, newest first (``budget``).
        Index("ix_verifications_network_created", "network", "created_at"),
        Index("ix_verifications_wide_network_created", "wide_network", "created_at"),
        Index("ix_verifications_number_range_created", "number_range", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone_e164: Mapped[str] = mapped_column(PHONE)
    kind: Mapped[str] = mapped_column(String(16), server_default=VerificationKind.SIGNUP.value)
    # HMAC of the code under HASH_KEY; the code itself is never stored.
    code_hash: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(5))
    purposes: Mapped[str] = mapped_column(String(255))  # comma-separated purpose keys
    # A step-up confirms no consent text.
    consent_text_version: Mapped[str | None] = mapped_column(VERSION)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The networks a sign-up came from (``networks``: a /24 and /16, or a /48 and /32), so
    # the sign-up breaker can tighten where unconfirmed codes come from.
    network: Mapped[str | None] = mapped_column(String(43))
    wide_network: Mapped[str | None] = mapped_column(String(43))
    # The number's range (``budget.number_range``: all but its last digits), for the same.
    number_range: Mapped[str | None] = mapped_column(String(16))
    # The SMS that carried the code, so the code page can tell if it could not be sent.
    # Whose it is (``models.holdings``); None while the number is not in the register.
    holding_id: Mapped[int | None] = holding_column()
    sms_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("sms_messages.id", ondelete="SET NULL")
    )
