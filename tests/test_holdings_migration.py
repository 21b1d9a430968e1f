"""0014 carries a register made with the schema before it over to holdings: a number
with ``holder_since`` becomes two holdings, every row goes to its holder's, and the
register reads as it did. On SQLite, and on PostgreSQL in a database of its own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from viihde import create_app
from viihde.extensions import db
from viihde.register import consent

from .helpers import folded_states, stored_states
from .settings import SECRET_KEY

SUBSCRIBERS = [
    # 7 changed hands on 20.11. (22:00 UTC); the sync ran on 25.11. at noon.
    (7, "+358401234567", "2026-10-01 09:00:00", "2026-11-19 22:00:00"),
    # 8 never did; 9 entered the register after the change its number went through.
    (8, "+358501234568", "2026-10-02 09:00:00", None),
    (9, "+358501234569", "2026-11-24 09:00:00", "2026-11-19 22:00:00"),
]
EVENTS = [
    (7, 1, "offers", "grant", "signup", "2026-10-01 09:00:00"),
    (7, 2, "new_content", "grant", "signup", "2026-10-01 09:00:00"),
    # The previous holder's link, after the change: it ended their grant.
    (7, 3, "new_content", "withdraw", "preference_page", "2026-11-21 09:00:00"),
    # The sync withdrew what was left of theirs.
    (7, 4, "offers", "withdraw", "register_update", "2026-11-25 12:00:00"),
    # The new holder signed up.
    (7, 5, "offers", "grant", "signup", "2026-11-25 12:30:00"),
    (8, 1, "offers", "grant", "signup", "2026-10-02 09:00:00"),
    (9, 1, "competitions", "grant", "signup", "2026-11-24 09:00:00"),
]
MESSAGES = [
    (5, "+358401234567", 7, "campaign", "2026-10-03 09:00:00"),
    (6, "+358401234567", None, "code", "2026-11-25 12:29:00"),
    (7, "+358501234568", 8, "welcome", "2026-10-02 09:00:00"),
]
CODES = [
    # The code that confirmed 7's first sign-up, before the number was in the register.
    (2, "2026-10-01 08:59:00", None),
    (3, "2026-11-25 12:29:00", 6),
]
REPLIES = [("SM1", "2026-10-03 10:00:00"), ("SM2", "2026-11-25 12:31:00")]
BEFORE_0014 = [
    (
        "INSERT INTO subscribers (id, phone_e164, language, link_key, created_at, confirmed_at,"
        " holder_since) VALUES (:id, :phone, 'fi', 'k', :at, :at, :since)",
        [dict(zip(("id", "phone", "at", "since"), row, strict=True)) for row in SUBSCRIBERS],
    ),
    (
        "INSERT INTO consent_events (subscriber_id, seq, purpose, action, source, actor,"
        " created_at, privacy_notice_version, consent_text_version) VALUES (:subscriber, :seq,"
        " :purpose, :action, :source, 'subject', :at, '1', 's')",
        [
            dict(zip(("subscriber", "seq", "purpose", "action", "source", "at"), row, strict=True))
            for row in EVENTS
        ],
    ),
    (
        "INSERT INTO sms_messages (id, phone_e164, subscriber_id, kind, body, segments, backend,"
        " status, attempts, created_at, updated_at) VALUES (:id, :phone, :subscriber, :kind,"
        " 'Hei', 1, 'file', 'sent', 1, :at, :at)",
        [
            dict(zip(("id", "phone", "subscriber", "kind", "at"), row, strict=True))
            for row in MESSAGES
        ],
    ),
    (
        "INSERT INTO verifications (id, phone_e164, kind, code_hash, language, purposes,"
        " privacy_notice_version, attempts, created_at, expires_at, sms_message_id) VALUES"
        " (:id, '+358401234567', 'signup', 'h', 'fi', 'offers', '1', 1, :at, :at, :sms)",
        [dict(zip(("id", "at", "sms"), row, strict=True)) for row in CODES],
    ),
    (
        "INSERT INTO inbound_messages (provider, message_sid, phone_e164, body, received_at)"
        " VALUES ('twilio', :sid, '+358401234567', 'Hei', :at)",
        [dict(zip(("sid", "at"), row, strict=True)) for row in REPLIES],
    ),
    (
        "INSERT INTO campaigns (id, name, purpose, body_fi, body_sv, body_en, status, created_at)"
        " VALUES (1, 'Talvi', 'offers', 'Hei', 'Hej', 'Hi', 'finished', '2026-10-01 09:00:00')",
        [{}],
    ),
    (
        "INSERT INTO campaign_messages (campaign_id, subscriber_id, sms_message_id, status,"
        " language, basis, created_at) VALUES (1, 7, 5, 'sent', 'fi', 'consent',"
        " '2026-10-03 09:00:00')",
        [{}],
    ),
    (
        "INSERT INTO tombstones (phone_hash, source, erased_at) VALUES ('h', 'retention',"
        " '2026-10-01 09:00:00')",
        [{}],
    ),
]


def at(text_time: str) -> datetime:
    return datetime.fromisoformat(text_time).replace(tzinfo=UTC)


CHANGE = at("2026-11-19 22:00:00")


def rows(statement: str, **values) -> list[tuple]:
    with db.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(statement), values).all()]


def holdings_of(subscriber_id: int) -> list[tuple]:
    """(id, started_at, ended_at) of each holding, the earliest first, times aware."""
    found = rows(
        "SELECT id, started_at, ended_at FROM holdings WHERE subscriber_id = :subscriber"
        " ORDER BY started_at",
        subscriber=subscriber_id,
    )
    return [(i, _aware(start), _aware(end)) for i, start, end in found]


def _aware(moment):
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_a_register_is_carried_over_to_holdings_and_back(empty_database):
    app = create_app(
        {"APP_ENV": "testing", "SECRET_KEY": SECRET_KEY, "SQLALCHEMY_DATABASE_URI": empty_database}
    )
    with app.app_context():
        upgrade(revision="0013")
        with db.engine.begin() as connection:
            for statement, values in BEFORE_0014:
                connection.execute(text(statement), values)
        counts_before = _counts()

        upgrade(revision="0014")

        (earlier, *_), (current, *_) = holdings_of(7)
        assert holdings_of(7) == [
            (earlier, at("2026-10-01 09:00:00"), CHANGE),
            (current, CHANGE, None),
        ]
        (only_8, *_), (only_9, *_) = holdings_of(8) + holdings_of(9)
        assert holdings_of(8) == [(only_8, at("2026-10-02 09:00:00"), None)]
        assert holdings_of(9) == [(only_9, at("2026-11-24 09:00:00"), None)]
        # The previous holder's events (and the withdrawals of them) stay theirs.
        assert rows("SELECT subscriber_id, seq, holding_id FROM consent_events ORDER BY id") == [
            (7, 1, earlier),
            (7, 2, earlier),
            (7, 3, earlier),
            (7, 4, earlier),
            (7, 5, current),
            (8, 1, only_8),
            (9, 1, only_9),
        ]
        assert rows("SELECT id, holding_id FROM sms_messages ORDER BY id") == [
            (5, earlier),
            (6, current),
            (7, only_8),
        ]
        # The code from before the number's first holding is its first holder's.
        verifications = "SELECT id, holding_id, sms_message_id FROM verifications ORDER BY id"
        assert rows(verifications) == [(2, earlier, None), (3, current, 6)]
        assert rows("SELECT message_sid, holding_id FROM inbound_messages ORDER BY id") == [
            ("SM1", earlier),
            ("SM2", current),
        ]
        assert rows("SELECT sms_message_id FROM campaign_messages") == [(5,)]
        assert rows("SELECT holding_id FROM tombstones") == [(None,)]
        assert _counts() == counts_before
        # The register reads as it did: the new holder's offers; nothing of the earlier.
        assert consent.state_of(consent.latest_events(7))["offers"] is True
        assert not any(
            consent.latest_in(earlier)[p].action == "grant" for p in ("offers", "new_content")
        )
        assert consent.state_of(consent.latest_events(8))["offers"] is True
        db.session.remove()  # its transaction holds SQLite's write lock
        _ledger_and_holdings_hold(earlier, current)

        downgrade(revision="0013")
        assert rows("SELECT id, holder_since IS NOT NULL FROM subscribers ORDER BY id") == [
            (7, True),
            (8, False),
            (9, False),
        ]
        assert _aware(rows("SELECT holder_since FROM subscribers WHERE id = 7")[0][0]) == CHANGE
        assert _counts() == counts_before
        assert rows("SELECT id, sms_message_id FROM verifications ORDER BY id") == [
            (2, None),
            (3, 6),
        ]

        upgrade()
        assert len(holdings_of(7)) == 2
        # 0015 stores the current state beside the ledger: its fold, holding by holding.
        assert stored_states() == folded_states() != set()
        for subscriber_id in (7, 8, 9):
            folded = consent.state_of(consent.latest_events(subscriber_id))
            assert consent.current_consent(subscriber_id) == folded
        db.session.remove()
        db.engine.dispose()


def _counts() -> dict[str, int]:
    tables = (
        "subscribers",
        "consent_events",
        "sms_messages",
        "verifications",
        "inbound_messages",
        "campaign_messages",
        "tombstones",
    )
    return {table: rows(f"SELECT count(*) FROM {table}")[0][0] for table in tables}  # noqa: S608


def _ledger_and_holdings_hold(earlier: int, current: int) -> None:
    """The ledger stays append-only but for its holding; one open holding per number."""
    with pytest.raises((IntegrityError, DBAPIError)), db.engine.begin() as connection:
        connection.execute(text("UPDATE consent_events SET action = 'grant' WHERE seq = 4"))
    move = "UPDATE consent_events SET holding_id = :to WHERE holding_id = :since"
    with db.engine.begin() as connection:
        connection.execute(text(move), {"to": current, "since": earlier})
        connection.execute(
            text("UPDATE consent_events SET holding_id = :to WHERE seq < 5 AND subscriber_id = 7"),
            {"to": earlier},
        )
    with pytest.raises(IntegrityError), db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO holdings (subscriber_id, started_at) VALUES (7, '2026-11-26 00:00:00')"
            )
        )
