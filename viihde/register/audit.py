"""The audit log: every read of a person's data and every action, by whom, when, from where.

Append-only: the ORM refuses changes and deletions, and so does the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from viihde.extensions import db
from viihde.models import AuditAction, AuditEntry, StaffMember
from viihde.phone import mask
from viihde.register.erasure import tombstone_hash

DETAIL_LENGTH = 500


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff member in the console, or an operator at the command line."""

    label: str
    staff_id: int | None = None
    ip: str | None = None

    @classmethod
    def staff(cls, staff: StaffMember, ip: str | None) -> Actor:
        return cls(staff.email, staff.id, ip)

    @classmethod
    def cli(cls, user: str) -> Actor:
        return cls(f"cli:{user}")


def record(
    actor: Actor,
    action: AuditAction,
    now: datetime,
    *,
    phone_e164: str | None = None,
    subject_hash: str | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """Add one entry to the caller's transaction (no commit: the action and its entry
    commit together, or neither does). The number is kept as a keyed hash and a masked
    form (``subject_hash`` alone: a number known only by its hash, an erased one's)."""
    entry = AuditEntry(
        created_at=now,
        staff_id=actor.staff_id,
        actor=actor.label[:254],
        action=action,
        subject_hash=tombstone_hash(phone_e164) if phone_e164 else subject_hash,
        subject_masked=mask(phone_e164) if phone_e164 else None,
        detail=(detail or "")[:DETAIL_LENGTH] or None,
        ip=actor.ip,
    )
    db.session.add(entry)
    return entry


def entries(
    *,
    actor: str | None = None,
    action: str | None = None,
    phone_e164: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    """The newest entries matching every filter given."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if actor:
        query = query.where(AuditEntry.actor.contains(actor.strip().lower()))
    if action:
        query = query.where(AuditEntry.action == action)
    if phone_e164:
        query = query.where(AuditEntry.subject_hash == tombstone_hash(phone_e164))
    if since:
        query = query.where(AuditEntry.created_at >= since)
    if until:
        query = query.where(AuditEntry.created_at < until)
    return list(db.session.scalars(query))


def actions() -> list[str]:
    """The actions that occur in the log, for the filter."""
    return list(
        db.session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))
    )
