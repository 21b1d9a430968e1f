"""Test data, made the way the product makes it: through the register's own functions
(the consent ledger's only writer included) and committed, so that each test starts from
the records it names. Times are given by the test, never read from a clock it does not
control.

Plain functions rather than factory_boy: every row worth having comes out of a domain
function (a subscriber with their consent events, a staff member with a hashed password),
which a model factory would go around.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from freezegun import freeze_time

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import InboundMessage, SmsMessage
from viihde.register import accounts, api_tokens, consent, customers, lookup

from .helpers import Outbox, Visitor, sign_in, sync_holders

#: Every test staff member's password (long and unguessable enough for the sign-up rules).
PASSWORD = "kesa-aamu-sataa-lunta-77"
SIGNUP = consent.ConsentContext("signup")
PREFERENCE_PAGE = consent.ConsentContext("preference_page")
#: The console's people: a support agent and an admin.
EMAILS = {"support": "tuki@viihdepaketti.fi", "admin": "paakayttaja@viihdepaketti.fi"}


def number(n: int) -> str:
    """The n-th test number, a Finnish mobile in E.164: number(7) is +358400000007."""
    return f"+35840{n:07d}"


def subscriber(
    app,
    phone: str,
    purposes=("offers",),
    *,
    at: datetime,
    language: str = "fi",
    context: consent.ConsentContext = SIGNUP,
) -> int:
    """Someone who confirmed ``phone`` at ``at`` and granted ``purposes``; their id."""
    with app.app_context():
        subscriber_id = consent.subscribe(phone, purposes, context, at, language).id
        db.session.commit()
        return subscriber_id


def subscribers(app, spec: dict[int, tuple[str, ...]], *, at: datetime, language="fi"):
    """number(n) subscribed to its purposes, for each n in ``spec``; their ids by n."""
    return {
        n: subscriber(app, number(n), purposes, at=at, language=language)
        for n, purposes in spec.items()
    }


def signed_up_on_the_web(app, outbox: Outbox, typed="040 123 4567", landing="/") -> int:
    """Someone who typed ``typed`` on the landing page (``landing``: the ad's address) and
    then the code the SMS brought, in a browser of their own; their id."""
    Visitor(app.test_client(), outbox).sign_up(typed, landing=landing)
    with app.app_context():
        return lookup.subscriber_by_phone(outbox.last()["to"]).id


def customer(
    app, phone: str, purchased_on: date, *, at: datetime | None = None, language: str = "fi"
) -> int:
    """A buyer imported from the customer register (at noon the day after the purchase,
    unless ``at``): the customer purposes granted on the customer-relationship basis."""
    at = at or datetime.combine(purchased_on + timedelta(days=1), time(12), UTC)
    with app.app_context():
        grants = customers.grant_as_customer(phone, purchased_on, language, customers.CONTEXT, at)
        db.session.commit()
        return grants.subscriber.id


def withdrawal(
    app,
    subscriber_id: int,
    purposes=None,
    *,
    at: datetime,
    context: consent.ConsentContext = PREFERENCE_PAGE,
) -> None:
    """The person switches ``purposes`` off (all marketing when None) on their page."""
    with app.app_context():
        if purposes is None:
            consent.withdraw_all(subscriber_id, context, at)
        else:
            consent.set_consent(subscriber_id, purposes, False, context, at)
        db.session.commit()


@dataclass(frozen=True)
class StaffAccount:
    """A staff member's sign-in: the email, and the TOTP secret when one is enrolled."""

    email: str
    totp_secret: str | None
    password: str = PASSWORD


def staff_member(
    app, role: str = "support", email: str | None = None, *, totp: bool = False, at=None
) -> StaffAccount:
    """An account made as `flask staff create` makes it (``at``: now), TOTP enrolled or not."""
    email = email or EMAILS[role]
    with app.app_context():
        staff = accounts.create_staff(email, role, PASSWORD, at or utcnow())
        staff.totp_secret = accounts.new_totp_secret() if totp else None
        db.session.commit()
        return StaffAccount(email, staff.totp_secret)


def signed_in_staff(app, role: str = "support", email: str | None = None, *, totp=None):
    """A browser of a staff member who has just signed in (admins with their second factor,
    unless ``totp`` says otherwise)."""
    account = staff_member(app, role, email, totp=role == "admin" if totp is None else totp)
    client = app.test_client()
    response = sign_in(client, account.email, account.password, account.totp_secret)
    assert response.headers["Location"] == "/staff/", response.status_code
    return client


def api_token(app, name: str = "campaign tool", *, at: datetime) -> str:
    """A bearer token for the audience API; the token itself."""
    with app.app_context():
        plain = api_tokens.create(name, None, at)[1]
        db.session.commit()
        return plain


# A number that changed hands: a scenario shared by the holder and the rights tests.

NUMBER = "+358401234567"
#: The previous holder signed up on 1.10.; the sync ran on 25.11. at noon.
BEFORE = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
SYNCED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
#: The operator's register: the number passed to a new holder on 20.11. ...
CHANGED_ON = "2026-11-20"
#: ... which starts at midnight in Helsinki, 22:00 UTC the day before.
SINCE = datetime(2026, 11, 19, 22, 0, tzinfo=UTC)
#: The new holder signs up half an hour after the sync.
NEW_SIGNUP = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
PREVIOUS_HOLDER = {"REMOTE_ADDR": "203.0.113.9", "HTTP_USER_AGENT": "PreviousHolderPhone/1.0"}
NEW_HOLDER = {"REMOTE_ADDR": "198.51.100.20", "HTTP_USER_AGENT": "NewHolderPhone/2.0"}
PREVIOUS_MARKETING = "Syystarjous vain sinulle"
PREVIOUS_REPLY = "Terveisia edelliselta haltijalta"
NEW_REPLY = "Kiitos, uusi haltija tassa"


@dataclass(frozen=True)
class ChangedHands:
    """The new holder's browser and what only each holder's records hold."""

    new_holder: Visitor
    previous_link: str
    new_link: str

    @property
    def previous_holders_data(self) -> list[str]:
        return [
            *PREVIOUS_HOLDER.values(),
            "vanha-kampanja",
            PREVIOUS_MARKETING,
            PREVIOUS_REPLY,
        ]

    @property
    def new_holders_data(self) -> list[str]:
        return [*NEW_HOLDER.values(), "uusi-kampanja", NEW_REPLY]


def _reply(body: str, at: datetime) -> InboundMessage:
    return InboundMessage(
        provider="twilio",
        message_sid=f"SM{at.timestamp():.0f}",
        phone_e164=NUMBER,
        body=body,
        keyword=None,
        received_at=at,
    )


def a_number_that_changed_hands(app, runner, outbox: Outbox, tmp_path) -> ChangedHands:
    """NUMBER signed up from "vanha-kampanja" on 1.10., got a marketing message and
    replied to it; the operator's register says it passed to a new holder on 20.11.; the
    sync ran on 25.11. at noon, and the new holder signed up from "uusi-kampanja" at 12:30
    and replied at 12:31. The new holder's browser has just confirmed the number."""
    previous = Visitor(app.test_client(), outbox)
    previous.client.environ_base.update(PREVIOUS_HOLDER)
    with freeze_time(BEFORE):
        previous.sign_up("040 123 4567", landing="/?utm_campaign=vanha-kampanja")
    previous_link = outbox.last_link()
    with app.app_context():
        subscriber = lookup.subscriber_by_phone(NUMBER)
        sent = BEFORE + timedelta(days=2)
        db.session.add(
            SmsMessage(
                phone_e164=NUMBER,
                subscriber_id=subscriber.id,
                kind="campaign",
                body=PREVIOUS_MARKETING,
                segments=1,
                backend="file",
                status="delivered",
                created_at=sent,
                updated_at=sent,
            )
        )
        db.session.add(_reply(PREVIOUS_REPLY, sent + timedelta(hours=1)))
        db.session.commit()
    with freeze_time(SYNCED):
        assert sync_holders(runner, tmp_path, f"{NUMBER},{CHANGED_ON}\n").exit_code == 0
    new_holder = Visitor(app.test_client(), outbox)
    new_holder.client.environ_base.update(NEW_HOLDER)
    with freeze_time(NEW_SIGNUP):
        new_holder.sign_up("040 123 4567", landing="/?utm_campaign=uusi-kampanja")
    new_link = outbox.last_link()
    with app.app_context():
        db.session.add(_reply(NEW_REPLY, NEW_SIGNUP + timedelta(minutes=1)))
        db.session.commit()
    return ChangedHands(new_holder, previous_link, new_link)


def sms_row(created_at: datetime, kind: str = "code", status: str = "sent") -> dict:
    """An SMS log row's values, to INSERT as they are (a Core insert, or a role's own)."""
    return {
        "phone_e164": "+358401234567",
        "kind": kind,
        "body": "text",
        "segments": 1,
        "backend": "file",
        "status": status,
        "attempts": 1,
        "created_at": created_at,
        "updated_at": created_at,
    }
