"""Number-holder changes: a reassigned number never gets the previous holder's marketing.

The one module that changes who holds a number. An operator's register lists numbers
that got a new holder and the day of the change (``sync_holders`` reads it); each change
closes the number's open holding at that day and opens the new holder's (``change_holder``):

- What the new holder did between the change and the sync moves to their holding, as far
  as it proves who held the number: a confirmed code (sign-up), a reply from the number
  (STOP, START), a purchase made on or after the change day, and every withdrawal of
  those; the codes, SMS and replies the number sent or got since the change.
- Everything else stays the previous holder's: their grants still in force are withdrawn
  (source ``register_update``) in their holding, so no grant of a closed holding is ever
  in force, and their preference links stop working (the link key changes). A grant made
  through an old link after the change cannot be told apart from theirs: it is withdrawn
  with theirs, never carried over to someone who did not give it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from viihde.clock import helsinki_day, start_of_day
from viihde.extensions import db
from viihde.models import (
    ConsentActor,
    ConsentEvent,
    ConsentSource,
    Holding,
    InboundMessage,
    SmsMessage,
    Verification,
)
from viihde.register import consent, holdings, states
from viihde.register.files import BadRow, FileReport, number_and_day, rows

CONTEXT = consent.ConsentContext(ConsentSource.REGISTER_UPDATE, actor=ConsentActor.SYSTEM)
NUMBER_COLUMN = "number"
DATE_COLUMN = "changed_on"


@dataclass(frozen=True)
class HolderChange:
    """One good row: a number that got a new holder at ``since`` (UTC)."""

    line: int
    phone_e164: str
    since: datetime


@dataclass
class SyncReport(FileReport):
    """What a sync read, skipped and changed (or, in a dry run, would change)."""

    numbers_matched: int = 0
    consents_withdrawn: int = 0
    links_revoked: int = 0

    def counts(self) -> str:
        """The counts alone, for the audit log."""
        return (
            f"rows={self.rows_read} bad={len(self.bad_rows)} matched={self.numbers_matched} "
            f"withdrawn={self.consents_withdrawn} links_revoked={self.links_revoked}"
            + (" dry_run" if self.dry_run else "")
        )


def read_changes(
    lines: Iterable[str], now: datetime, allowed_regions: Sequence[str], report: SyncReport
) -> list[HolderChange]:
    """The good rows of a holder-change CSV; bad ones go to ``report.bad_rows``."""
    columns, numbered = rows(lines, (NUMBER_COLUMN, DATE_COLUMN))
    today = helsinki_day(now)
    changes = []
    for line, row in numbered:
        report.rows_read += 1
        try:
            phone, day = number_and_day(
                row, columns[NUMBER_COLUMN], columns[DATE_COLUMN], today, allowed_regions
            )
        except ValueError as error:
            report.bad_rows.append(BadRow(line, str(error)))
            continue
        changes.append(HolderChange(line, phone, start_of_day(day)))
    return changes


def apply_changes(changes: Iterable[HolderChange], now: datetime, report: SyncReport) -> None:
    """Apply each change (no commit: the whole run is one transaction, the caller's, with
    its audit entry; a dry run rolls it back, so what it reports is exactly what a real
    run would do)."""
    matched: set[int] = set()
    for change in changes:
        outcome = change_holder(change.phone_e164, change.since, now)
        if outcome is None:
            continue
        matched.add(outcome.subscriber_id)
        report.links_revoked += outcome.changed
        report.consents_withdrawn += outcome.withdrawn
    report.numbers_matched = len(matched)


@dataclass(frozen=True)
class Outcome:
    """What one holder change did to a number in the register."""

    subscriber_id: int
    #: A holding was closed and a new one opened (not so when the register knows of the
    #: change, or of a later one, already: an older change never moves anything back).
    changed: bool = False
    withdrawn: int = 0


def change_holder(phone_e164: str, since: datetime, now: datetime) -> Outcome | None:
    """The number passed to a new holder at ``since``: close its open holding there and
    open the new holder's (no commit). None: the number is not in the register."""
    subscriber = consent.lock_number(phone_e164)
    if subscriber is None:
        return None
    previous = holdings.current(subscriber.id)
    if previous is None or since <= previous.started_at:
        return Outcome(subscriber.id)
    previous.ended_at = since
    db.session.flush()  # closed before the next opens: one open holding per number
    new = Holding(subscriber_id=subscriber.id, started_at=since)
    db.session.add(new)
    db.session.flush()
    _move_to(new, previous, since)
    withdrawn = consent.end_holding(subscriber, previous, CONTEXT, now)
    # Not links.revoke_links: it would text a fresh link to the number, which is now
    # the new holder's.
    subscriber.link_key = consent.new_link_key()
    return Outcome(subscriber.id, changed=True, withdrawn=len(withdrawn))


#: The sources that prove who held the number when an event was made.
HOLDERS_OWN = (ConsentSource.SIGNUP, ConsentSource.SMS_KEYWORD)


def _proves_holder(event: ConsentEvent, change_day) -> bool:
    if event.source in HOLDERS_OWN:
        return True
    return event.source == ConsentSource.CUSTOMER_IMPORT and event.purchased_on >= change_day


def _move_to(new: Holding, previous: Holding, since: datetime) -> None:
    """Give the new holding what its holder did from ``since`` on (see the module's words)."""
    change_day = helsinki_day(since)
    moved, granted = [], set()
    for event in db.session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.holding_id == previous.id, ConsentEvent.created_at >= since)
        .order_by(ConsentEvent.seq)
    ):
        if _proves_holder(event, change_day) or (
            event.action == consent.WITHDRAW and event.purpose in granted
        ):
            moved.append(event.id)
            if event.action == consent.GRANT:
                granted.add(event.purpose)
        elif event.action == consent.GRANT:
            granted.discard(event.purpose)
    _reassign(ConsentEvent, ConsentEvent.id.in_(moved), new)
    states.refold([previous.id, new.id])
    for model, time in (
        (Verification, Verification.created_at),
        (SmsMessage, SmsMessage.created_at),
        (InboundMessage, InboundMessage.received_at),
    ):
        _reassign(model, (model.holding_id == previous.id) & (time >= since), new)
    # The identity map may hold these rows with their old holding.
    db.session.expire_all()


def _reassign(model, condition, holding: Holding) -> None:
    db.session.execute(
        update(model)
        .where(condition)
        .values(holding_id=holding.id)
        .execution_options(synchronize_session=False)
    )


def sync_holders(
    lines: Iterable[str], now: datetime, allowed_regions: Sequence[str], dry_run: bool = False
) -> SyncReport:
    """Read a holder-change CSV (text lines or a text file) and apply its good rows at once
    (no commit)."""
    report = SyncReport(dry_run=dry_run)
    changes = read_changes(lines, now, allowed_regions, report)
    apply_changes(changes, now, report)
    return report
