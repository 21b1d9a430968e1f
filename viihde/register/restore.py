"""After a restore to an earlier moment: the erasures and withdrawals made since, made again.

A database restored to a moment before its failure brings back what people erased since
then and the marketing they stopped (docs/deploy.md, "Restore"). When the failed database
can still be read, ``write_tombstones`` and ``write_withdrawals`` read those promises off
it into two CSV files: its tombstones (keyed hashes, no number) and its withdrawals (with
the number: the restored register may give a subscriber's id to someone new). ``reapply``
keeps them on the restored register, in the caller's transaction, before it serves.

The files may reach back before the restored moment (the times are the app's, taken
before each commit): what the restored register holds already is left as it is, an
erasure it has already (its tombstone, the same moment) and a withdrawal after which the
purpose was granted again alike. Applied twice, they change nothing more.

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
from viihde.hashing import hash_key
from viihde.models import (
    HOLDING_A_NUMBER,
    ConsentActor,
    ConsentEvent,
    ConsentSource,
    ErasureSource,
    Holding,
    Refusal,
    Subscriber,
    Tombstone,
)
from viihde.register import consent, erasure, holdings
from viihde.register.consent import WITHDRAW
from viihde.register.files import BadRow, FileReport, RegisterFileError, rows

TOMBSTONE_COLUMNS = ("phone_hash", "source", "erased_at", "holding_id")
WITHDRAWAL_COLUMNS = ("number", "purpose", "source", "actor", "withdrawn_at")
_HASH = re.compile(r"[0-9a-f]{64}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


#: The source a refusal (``models.Refusal``) has in the tombstones' file: a STOP's keyed
#: hash and time travel with the erasures', which they are like.
REFUSAL = "refusal"


def write_tombstones(moment: datetime, out: TextIO) -> int:
    """The tombstones recorded after ``moment``, then the refusals (a STOP's hash and time,
    source ``refusal``), as CSV; how many rows."""
    writer = csv.writer(out)
    writer.writerow(TOMBSTONE_COLUMNS)
    written = 0
    for row in db.session.execute(
        select(Tombstone.phone_hash, Tombstone.source, Tombstone.erased_at, Tombstone.holding_id)
        .where(Tombstone.erased_at > moment)
        .order_by(Tombstone.id)
    ):
        writer.writerow((*row[:2], row.erased_at.isoformat(), row.holding_id or ""))
        written += 1
    for phone_hash, refused_at in db.session.execute(
        select(Refusal.phone_hash, Refusal.refused_at)
        .where(Refusal.refused_at > moment)
        .order_by(Refusal.id)
    ):
        writer.writerow((phone_hash, REFUSAL, refused_at.isoformat(), ""))
        written += 1
    return written


def write_withdrawals(moment: datetime, out: TextIO) -> int:
    """The withdrawals recorded after ``moment``, each with its number, as CSV; how many."""
    writer = csv.writer(out)
    writer.writerow(WITHDRAWAL_COLUMNS)
    written = 0
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
        written += 1
    return written


@dataclass
class ReapplyReport(FileReport):
    """What ``reapply`` did (or, in a dry run, would do): its counts, and for the audit
    log each change (the number, when the register still holds it; its hash)."""

    numbers_erased: int = 0
    holdings_erased: int = 0
    tombstones_kept: int = 0  # nothing (left) of the number or holding here: its tombstone
    erased_already: int = 0
    purposes_withdrawn: int = 0
    not_granted: int = 0  # withdrawn here already, or never granted here
    granted_since: int = 0  # granted again after the withdrawal: left as it is
    numbers_missing: int = 0  # a withdrawal for a number the register does not hold
    refusals_kept: int = 0  # a STOP's refusal made after the restored moment
    #: (the number, or None with its tombstone hash: one known by its hash alone; "erase"
    #: or "withdraw"; the audit detail).
    changed: list[tuple[str | None, str | None, str, str]] = field(default_factory=list)

    def counts(self) -> str:
        """The counts alone, for the audit log."""
        return (
            f"again after a restore: rows={self.rows_read} bad={len(self.bad_rows)} "
            f"erased={self.numbers_erased} "
            f"holdings_erased={self.holdings_erased} tombstones={self.tombstones_kept} "
            f"erased_already={self.erased_already} withdrawn={self.purposes_withdrawn} "
            f"not_granted={self.not_granted} granted_since={self.granted_since} "
            f"numbers_missing={self.numbers_missing} refusals={self.refusals_kept}"
            + (" dry_run" if self.dry_run else "")
        )


def reapply(
    tombstones: Iterable[str], withdrawals: Iterable[str], now: datetime, dry_run: bool = False
) -> ReapplyReport:
    """Erase again what ``tombstones`` say was erased, and withdraw again what
    ``withdrawals`` say was withdrawn (no commit). A file that cannot be read raises
    RegisterFileError before anything changes."""
    report = ReapplyReport(dry_run=dry_run)
    erasures = _read("erasures", tombstones, TOMBSTONE_COLUMNS, _tombstone_row, report)
    stops = _read("withdrawals", withdrawals, WITHDRAWAL_COLUMNS, _withdrawal_row, report)
    erased = {row[0] for row in erasures if row[1] != REFUSAL}
    numbers = _numbers_by_hash(erased) if erased else {}
    for phone_hash, source, erased_at, holding_id in erasures:
        if source == REFUSAL:
            _refuse_again(phone_hash, erased_at, report)
            continue
        phone = numbers.get(phone_hash)
        _erase_again(phone, phone_hash, source, erased_at, holding_id, report)
    for phone, purpose, source, actor, withdrawn_at in stops:
        _withdraw_again(phone, purpose, source, actor, withdrawn_at, now, report)
    return report


def _read(name: str, lines, columns, parse, report: ReapplyReport) -> list[tuple]:
    """The good rows of one file, parsed; each bad one named by its file and line, and so
    is the file when it cannot be read at all."""
    parsed = []
    try:
        places, numbered = rows(lines, columns)
        for line, row in numbered:
            report.rows_read += 1
            try:
                parsed.append(parse([row[places[column]].strip() for column in columns]))
            except _BadCell as bad:
                report.bad_rows.append(BadRow(line, f"{name}: {bad.reason}"))
            except IndexError:
                report.bad_rows.append(BadRow(line, f"{name}: missing column"))
    except RegisterFileError as error:
        raise RegisterFileError(f"the {name} file: {error}") from None
    return parsed


class _BadCell(ValueError):
    """A cell that cannot be read; the reason never quotes it (it may be a number)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def moment_of(text: str) -> datetime:
    """An ISO 8601 time with its zone, in UTC; ValueError (why, never the text) if not."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("bad time") from None
    if moment.tzinfo is None:
        raise ValueError("a time without its zone")
    return moment.astimezone(UTC)


def _moment(text: str) -> datetime:
    try:
        return moment_of(text)
    except ValueError as error:
        raise _BadCell(str(error)) from None


def _member(kind, text: str):
    try:
        return kind(text)
    except ValueError:
        raise _BadCell("bad source") from None


def _tombstone_row(cells: list[str]) -> tuple[str, ErasureSource, datetime, int | None]:
    phone_hash, source, erased_at, holding_id = cells
    if not _HASH.fullmatch(phone_hash):
        raise _BadCell("not a tombstone's hash")
    if holding_id and not holding_id.isdigit():
        raise _BadCell("bad holding id")
    holding = int(holding_id) if holding_id else None
    if source == REFUSAL:
        return phone_hash, REFUSAL, _moment(erased_at), None
    return phone_hash, _member(ErasureSource, source), _moment(erased_at), holding


def _withdrawal_row(cells: list[str]) -> tuple[str, str, ConsentSource, str, datetime]:
    number, purpose, source, actor, withdrawn_at = cells
    if not _E164.fullmatch(number):  # as the register stored it, whatever the regions now
        raise _BadCell("not a number in E.164")
    if not purpose or not actor:
        raise _BadCell("missing column")
    return number, purpose, _member(ConsentSource, source), actor, _moment(withdrawn_at)


def _numbers_by_hash(wanted: set[str]) -> dict[str, str]:
    """The numbers the restored register holds anything of whose tombstone hash is
    ``wanted``: every distinct number read once, streamed, and hashed with one key."""
    phones = union(*(select(model.phone_e164) for model in HOLDING_A_NUMBER))
    key, found = hash_key(), {}
    for (phone,) in db.session.execute(phones).yield_per(10_000):
        phone_hash = erasure.tombstone_hash(phone, key)
        if phone_hash in wanted:
            found[phone_hash] = phone
    return found


def _erase_again(
    phone: str | None,
    phone_hash: str,
    source: ErasureSource,
    erased_at: datetime,
    holding_id: int | None,
    report: ReapplyReport,
) -> None:
    kept = db.session.scalar(
        select(Tombstone.id).where(
            Tombstone.phone_hash == phone_hash, Tombstone.erased_at == erased_at
        )
    )
    if kept is not None:  # in the restored register, or made again already
        report.erased_already += 1
        return
    detail = f"again after a restore: erased {erased_at.isoformat()} ({source})"
    if holding_id is not None:
        holding = db.session.get(Holding, holding_id)
        subscriber = consent.lock_subscriber(holding.subscriber_id) if holding else None
        if subscriber is not None and phone is not None and subscriber.phone_e164 == phone:
            held = holdings.of_number(subscriber.id)
            if holding.erased_at is not None and held[-1] is holding and holding.ended_at:
                # Erased already, the last, and nobody holds the number since: the
                # erasure of what came after it (``erasure.erase_unheld``).
                erasure.erase_unheld(subscriber, held, source, erased_at)
            else:
                erasure.erase_holding(subscriber, holding, source, erased_at)
            report.holdings_erased += 1
            report.changed.append((phone, phone_hash, "erase", detail))
            return
    elif phone is not None:
        erasure.erase(phone, source, erased_at)
        report.numbers_erased += 1
        report.changed.append((phone, phone_hash, "erase", detail))
        return
    # Nothing of it here (a holding begun after the restored moment, a number gone): its
    # tombstone all the same, so that an import cannot bring the person back.
    erasure.keep_tombstone(phone_hash, source, erased_at)
    report.tombstones_kept += 1
    report.changed.append((None, phone_hash, "erase", f"tombstone only, {detail}"))


def _refuse_again(phone_hash: str, refused_at: datetime, report: ReapplyReport) -> None:
    """A STOP's refusal made after the restored moment, kept again (once)."""
    kept = db.session.scalar(
        select(Refusal.id).where(Refusal.phone_hash == phone_hash, Refusal.refused_at == refused_at)
    )
    if kept is None:
        db.session.add(Refusal(phone_hash=phone_hash, refused_at=refused_at))
        report.refusals_kept += 1


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
    grant = consent.grant_in_force(subscriber.id, purpose)
    if grant is None:
        report.not_granted += 1
        return
    if grant.created_at > withdrawn_at:
        report.granted_since += 1
        return
    # A staff member's id may be someone else's in the restored register: the audit
    # entry names them, the event says the register did it.
    by = ConsentActor.SYSTEM if actor.startswith(f"{ConsentActor.STAFF}:") else actor
    consent.set_consent(subscriber.id, [purpose], False, consent.ConsentContext(source, by), now)
    report.purposes_withdrawn += 1
    detail = (
        f"{purpose} again after a restore: withdrawn {withdrawn_at.isoformat()} ({source}, {actor})"
    )
    report.changed.append((phone, None, "withdraw", detail))
