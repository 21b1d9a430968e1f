"""An action and its audit entry are one transaction: when the entry cannot be written,
the action does not happen (no consent change, no erasure, no SMS, no account change)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from viihde.extensions import db
from viihde.models import StaffMember, Subscriber
from viihde.register import accounts, consent

from . import factories
from .factories import PASSWORD
from .helpers import csrf_token

NUMBER = "+358401234567"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

REFUSE_SQLITE = (
    "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END"
)
REFUSE_POSTGRESQL = (
    "CREATE FUNCTION audit_refused() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$",
    "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION audit_refused()",
)


@pytest.fixture
def clock():
    with freeze_time("2026-11-25 12:00:00", ignore=["limits"]) as frozen:
        yield frozen


@pytest.fixture
def audit_fails(app):
    """From now on the database refuses every new audit entry (as a full disk would)."""

    def refuse() -> None:
        with app.app_context(), db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                for statement in REFUSE_POSTGRESQL:
                    connection.execute(text(statement))
            else:
                connection.execute(text(REFUSE_SQLITE))

    yield refuse
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text("DROP TRIGGER IF EXISTS audit_refused ON audit_entries")
                           if connection.dialect.name == "postgresql"
                           else text("DROP TRIGGER IF EXISTS audit_refused"))  # fmt: skip
        if connection.dialect.name == "postgresql":
            connection.execute(text("DROP FUNCTION IF EXISTS audit_refused()"))


@pytest.fixture
def subscriber_id(app, outbox, clock) -> int:
    """+358401234567 signed up."""
    return factories.signed_up_on_the_web(app, outbox)


def card_token(client, subscriber_id: int) -> str:
    """The card's form token, read while the audit log still works."""
    return csrf_token(client.get(f"/staff/card/{subscriber_id}").text)


def post_on_card(client, subscriber_id: int, token: str, action: str, **data):
    return client.post(f"/staff/card/{subscriber_id}/{action}", data={"csrf_token": token, **data})


def test_a_withdrawal_is_not_recorded_without_its_audit_entry(
    app, subscriber_id, audit_fails, clock
):
    support = factories.signed_in_staff(app, "support", "support@viihdepaketti.fi", totp=True)
    token = card_token(support, subscriber_id)
    audit_fails()
    with pytest.raises(DBAPIError):
        post_on_card(support, subscriber_id, token, "withdraw", reason="phoned on 25.11.")
    with app.app_context():
        assert consent.is_subscribed(subscriber_id)


def test_an_erasure_does_not_happen_without_its_audit_entry(app, subscriber_id, audit_fails, clock):
    admin = factories.signed_in_staff(app, "admin", "admin@viihdepaketti.fi", totp=True)
    token = card_token(admin, subscriber_id)
    audit_fails()
    with pytest.raises(DBAPIError):
        post_on_card(admin, subscriber_id, token, "erase", reason="asked by letter", confirm="y")
    with app.app_context():
        assert db.session.get(Subscriber, subscriber_id) is not None


def test_no_link_is_texted_without_its_audit_entry(app, subscriber_id, outbox, audit_fails, clock):
    support = factories.signed_in_staff(app, "support", "support@viihdepaketti.fi", totp=True)
    token = card_token(support, subscriber_id)
    sent = len(outbox.messages())
    audit_fails()
    with pytest.raises(DBAPIError):
        post_on_card(support, subscriber_id, token, "send-link")
    assert len(outbox.messages()) == sent


def test_the_command_line_erases_only_with_its_audit_entry(app, runner, subscriber_id, audit_fails):
    audit_fails()
    result = runner.invoke(args=["subject", "erase", "040 123 4567", "--yes"])
    assert result.exit_code != 0
    with app.app_context():
        assert db.session.get(Subscriber, subscriber_id) is not None


def test_no_staff_account_is_made_or_shut_without_its_audit_entry(app, runner, audit_fails):
    ok = runner.invoke(
        args=["staff", "create", "a@viihdepaketti.fi", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert ok.exit_code == 0, ok.output
    audit_fails()
    made = runner.invoke(
        args=["staff", "create", "b@viihdepaketti.fi", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    shut = runner.invoke(args=["staff", "disable", "a@viihdepaketti.fi"])
    assert made.exit_code != 0 and shut.exit_code != 0
    with app.app_context():
        assert db.session.scalars(select(StaffMember.email)).all() == ["a@viihdepaketti.fi"]
        assert accounts.find("a@viihdepaketti.fi").disabled_at is None


def test_a_holder_sync_changes_nothing_without_its_audit_entry(
    app, runner, subscriber_id, audit_fails, tmp_path, clock
):
    clock.tick(7 * 24 * 3600)  # the number passed to a new holder after the sign-up
    holders = tmp_path / "holders.csv"
    holders.write_text("number,changed_on\n040 123 4567,2026-11-30\n")
    audit_fails()
    result = runner.invoke(args=["register", "sync-holders", str(holders)])
    assert result.exit_code != 0
    with app.app_context():
        assert consent.is_subscribed(subscriber_id)
