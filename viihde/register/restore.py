"""After a restore to an earlier moment: the erasures and withdrawals made since, made again.

A database restored to a moment before its failure brings back what people erased since
then and the marketing they stopped (docs/deploy.md, "Restore"). When the failed database
can still be read, ``changes_since`` reads those promises off it into two CSV files: its
tombstones (keyed hashes, no number) and its withdrawals (with the number: the restored
register may give a subscriber's id to someone new). ``reapply`` keeps them on the
restored register, in the caller's transaction; applied twice, it changes nothing more.

What is not brought back, on purpose: sign-ups and grants made after the restored moment
(the person is asked again, never messaged without a record of consent).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy import select, union

from viihde.extensions import db
from viihde.models import (
    ConsentEvent,
    ConsentSource,
    ErasureSource,
    Holding,
    InboundMessage,
    SmsMessage,
    Subscriber,
    Tombstone,
    Verification,
)
from viihde.phone import PhoneError, parse_mobile
from viihde.register import consent, erasure
from viihde.register.consent import WITHDRAW
from viihde.register.files import BadRow, FileReport, rows

TOMBSTONE_COLUMNS = ("phone_hash", "source", "erased_at", "holding_id")
WITHDRAWAL_COLUMNS = ("number", "purpose", "source", "actor", "withdrawn_at")
_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass
class Changes:
    """What ``changes_since`` found."""

    tombstones: int = 0
    withdrawals: int = 0


def changes_since(moment: datetime, tombstones: TextIO, withdrawals: TextIO) -> Changes:
    """Write the erasures and withdrawals recorded after ``moment`` as two CSV files."""
    found = Changes()
    writer = csv.writer(tombstones)
    writer.writerow(TOMBSTONE_COLUMNS)
    for row in db.session.execute(
        select(Tombstone.phone_hash, Tombstone.source, Tombstone.erased_at, Tombstone.holding_id)
        .where(Tombstone.erased_at > moment)
        .order_by(Tombstone.id)
    ):
        writer.writerow(
            (row.phone_hash, row.source, row.erased_at.isoformat(), row.holding_id or "")
        )
        found.tombstones += 1
    writer = csv.writer(withdrawals)
    writer.writerow(WITHDRAWAL_COLUMNS)
    for row in db.session.execute(
        select(
            Subscriber.phone_e164,
            ConsentEvent.purpose,
            ConsentEvent.source,
            ConsentEvent.actor,
            ConsentEvent.created_at,
        )
        .join(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
        .where(ConsentEvent.action == WITHDRAW, ConsentEvent.created_at > moment)
        .order_by(ConsentEvent.subscriber_id, ConsentEvent.seq)
    ):
        writer.writerow((*row[:4], row.created_at.isoformat()))
        found.withdrawals += 1
    return found


@dataclass
class ReapplyReport(FileReport):
    """What ``reapply`` did (or, in a dry run, would do); counts only, never a number."""

    numbers_erased: int = 0
    holdings_erased: int = 0
    tombstones_kept: int = 0  # nothing of the number in the register: its tombstone only
    holdings_missing: int = 0  # a holding begun after the restored moment: nothing of it
    erased_already: int = 0
    purposes_withdrawn: int = 0
    withdrawn_already: int = 0
    numbers_missing: int = 0  # a withdrawal for a number the register does not hold
    #: The numbers changed, with what the audit log says of each (for the caller's entries).
    changed: list[tuple[str, str, str]] = field(default_factory=list)


def reapply(
    tombstones: Iterable[str],
    withdrawals: Iterable[str],
    now: datetime,
    allowed_regions: tuple[str, ...],
    dry_run: bool = False,
) -> ReapplyReport:
    """Erase again what ``tombstones`` say was erased, and withdraw again what
    ``withdrawals`` say was withdrawn (no commit). A file that cannot be read raises
    RegisterFileError before anything changes."""
    report = ReapplyReport(dry_run=dry_run)
    erasures = _read(tombstones, TOMBSTONE_COLUMNS, _tombstone_row, report)
    stops = _read(withdrawals, WITHDRAWAL_COLUMNS, _withdrawal_row(allowed_regions), report)
    if erasures:
        numbers = _numbers_by_hash()
        for phone_hash, source, erased_at, holding_id in erasures:
            _erase_again(numbers.get(phone_hash), phone_hash, source, erased_at, holding_id, report)
    for phone, purpose, source, actor, withdrawn_at in stops:
        _withdraw_again(phone, purpose, source, actor, withdrawn_at, now, report)
    return report


def _read(lines, columns, parse, report: ReapplyReport) -> list[tuple]:
    places, numbered = rows(lines, columns)
    parsed = []
    for line, row in numbered:
        report.rows_read += 1
        try:
            parsed.append(parse([row[places[name]].strip() for name in columns]))
        except (IndexError, ValueError) as error:
            report.bad_rows.append(BadRow(line, str(error) or "bad row"))
    return parsed


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a time without its zone")
    return moment.astimezone(UTC)


def _tombstone_row(cells: list[str]) -> tuple:
    phone_hash, source, erased_at, holding_id = cells
    if not _HASH.fullmatch(phone_hash):
        raise ValueError("not a tombstone's hash")
    return (
        phone_hash,
        ErasureSource(source),
        _moment(erased_at),
        int(holding_id) if holding_id else None,
    )


def _withdrawal_row(allowed_regions: tuple[str, ...]):
    def parse(cells: list[str]) -> tuple:
        number, purpose, source, actor, withdrawn_at = cells
        try:
            phone = parse_mobile(number, allowed_regions)
        except PhoneError as error:
            raise ValueError(f"not a mobile number ({error.reason})") from None
        if not purpose or not actor:
            raise ValueError("missing column")
        return phone, purpose, ConsentSource(source), actor, _moment(withdrawn_at)

    return parse


def _numbers_by_hash() -> dict[str, str]:
    """Every number the restored register holds anything of, by its tombstone hash."""
    phones = union(
        select(Subscriber.phone_e164),
        select(Verification.phone_e164),
        select(SmsMessage.phone_e164),
        select(InboundMessage.phone_e164),
    )
    return {erasure.tombstone_hash(phone): phone for (phone,) in db.session.execute(phones)}


def _erase_again(
    phone: str | None,
    phone_hash: str,
    source: ErasureSource,
    erased_at: datetime,
    holding_id: int | None,
    report: ReapplyReport,
) -> None:
    detail = f"again after a restore: erased {erased_at.isoformat()} ({source})"
    if holding_id is not None:
        holding = db.session.get(Holding, holding_id)
        subscriber = consent.lock_subscriber(holding.subscriber_id) if holding else None
        if subscriber is None or phone is None or subscriber.phone_e164 != phone:
            report.holdings_missing += 1  # begun after the restored moment
        elif holding.erased_at is not None:
            report.erased_already += 1
        else:
            erasure.erase_holding(subscriber, holding, source, erased_at)
            report.holdings_erased += 1
            report.changed.append((phone, "erase", detail))
        return
    if phone is not None:
        erasure.erase(phone, source, erased_at)
        report.numbers_erased += 1
        report.changed.append((phone, "erase", detail))
        return
    kept = db.session.scalar(
        select(Tombstone.id).where(
            Tombstone.phone_hash == phone_hash, Tombstone.erased_at == erased_at
        )
    )
    if kept is not None:
        report.erased_already += 1
        return
    # Nothing of the number here, but an import must still not bring the person back.
    db.session.add(Tombstone(phone_hash=phone_hash, source=source, erased_at=erased_at))
    db.session.flush()
    report.tombstones_kept += 1


def _withdraw_again(
    phone: str,
    purpose: str,
    source: ConsentSource,
    actor: str,
    withdrawn_at: datetime,
    now: datetime,
    report: ReapplyReport,
) -> None:
    subscriber = consent.lock_number(phone)
    if subscriber is None:
        report.numbers_missing += 1
        return
    context = consent.ConsentContext(source, actor=actor)
    if not consent.set_consent(subscriber.id, [purpose], False, context, now):
        report.withdrawn_already += 1
        return
    report.purposes_withdrawn += 1
    detail = f"{purpose} again after a restore: withdrawn {withdrawn_at.isoformat()} ({source})"
    report.changed.append((phone, "withdraw", detail))
