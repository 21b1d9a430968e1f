"""The support console: named staff, sign-in with a second factor, roles, and the audit trail."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pyotp
import pytest
from argon2 import PasswordHasher
from freezegun import freeze_time
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from viihde.clock import utcnow
from viihde.extensions import db
from viihde.models import ApiToken, AppendOnlyError, AuditEntry, ConsentEvent, SmsMessage
from viihde.register import access, accounts, audit, consent, erasure, lookup
from viihde.tokens import TOKEN_PATTERN

from . import factories
from .factories import PASSWORD
from .helpers import Visitor, csrf_token, enter_totp, race, sign_in, typed_in

START = "2026-11-25 12:00:00"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    # The rate limiter's counters keep real time: they expire by their own clock.
    with freeze_time(START, ignore=["limits"]) as frozen:
        yield frozen


@pytest.fixture
def support(app, clock):
    """A signed-in support agent (no second factor enrolled)."""
    return factories.signed_in_staff(app, "support")


@pytest.fixture
def admin(app, clock):
    """A signed-in admin with TOTP."""
    return factories.signed_in_staff(app, "admin")


@pytest.fixture
def subscriber_id(app, outbox, clock) -> int:
    """+358401234567 signed up from the 'talvi' campaign."""
    return factories.signed_up_on_the_web(app, outbox, landing="/?utm_campaign=talvi")


def audit_rows(app) -> list[AuditEntry]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        db.session.expunge_all()
        return rows


def post(client, path: str, form_page: str, **data):
    page = client.get(form_page)
    return client.post(
        path, data={"csrf_token": csrf_token(page.text), **data}, headers={"Accept-Language": "en"}
    )


# Accounts from the command line


def test_staff_accounts_are_created_on_the_command_line(runner, app_context):
    """create --password-stdin makes an argon2id-hashed account; list shows it."""
    result = runner.invoke(
        args=["staff", "create", "Tuki@Viihdepaketti.fi", "--role", "support", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    staff = accounts.find("tuki@viihdepaketti.fi")
    assert staff.password_hash.startswith("$argon2id$")
    assert PASSWORD not in staff.password_hash
    assert "tuki@viihdepaketti.fi\tsupport\tactive" in runner.invoke(args=["staff", "list"]).output


@pytest.mark.parametrize(
    ("password", "problem"),
    [("short1!", "at least 12"), ("password123456", "too easy"), ("viihdepaketti1", "too easy")],
)
def test_weak_passwords_are_refused(runner, app_context, password, problem):
    """Too short, common, or made of the product's own name: refused, nothing created."""
    result = runner.invoke(
        args=["staff", "create", "a@viihdepaketti.fi", "--role", "admin", "--password-stdin"],
        input=password + "\n",
    )
    assert result.exit_code == 1
    assert problem in result.output
    assert accounts.find("a@viihdepaketti.fi") is None


def test_an_email_has_one_account(runner, app_context):
    """Creating the same email twice is refused."""
    args = ["staff", "create", "a@viihdepaketti.fi", "--role", "admin", "--password-stdin"]
    runner.invoke(args=args, input=PASSWORD + "\n")
    result = runner.invoke(args=args, input=PASSWORD + "\n")
    assert result.exit_code == 1
    assert "already" in result.output


def test_cli_actions_are_audited(runner, app, subscriber_id):
    """Account changes and subject exports from the command line leave audit entries."""
    runner.invoke(
        args=["staff", "create", "a@viihdepaketti.fi", "--role", "support", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    runner.invoke(args=["staff", "disable", "a@viihdepaketti.fi"])
    runner.invoke(args=["subject", "export", "040 123 4567"])
    actions = [(e.action, e.actor.startswith("cli:")) for e in audit_rows(app)]
    assert actions == [("create_staff", True), ("disable_staff", True), ("export", True)]


# Signing in


@pytest.mark.parametrize(
    "path",
    [
        "/staff/",
        "/staff/card/1",
        "/staff/audit",
        "/staff/team",
        "/staff/api-tokens",
        "/staff/dashboard",
    ],
)
def test_everything_under_staff_is_refused_to_the_anonymous(client, path):
    """No session: every console page sends to the sign-in page."""
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login"


def test_wrong_password_and_unknown_email_look_the_same(app, clock):
    """The answer never tells which emails have accounts."""
    factories.staff_member(app, "support", "tuki@viihdepaketti.fi")
    known = sign_in(app.test_client(), "tuki@viihdepaketti.fi", "wrong-password-123")
    unknown = sign_in(app.test_client(), "nobody@viihdepaketti.fi", "wrong-password-123")
    assert known.status_code == unknown.status_code == 401
    strip = re.compile(r'value="[^"]*"')
    assert strip.sub("", known.text) == strip.sub("", unknown.text)
    assert "The email or the password is wrong." in known.text


def test_support_staff_may_sign_in_without_a_second_factor(support):
    """Support staff may enrol TOTP but need not."""
    assert support.get("/staff/").status_code == 200


def test_admins_must_enrol_a_second_factor_before_anything_else(app, clock):
    """An admin without TOTP is sent to enrolment and gets in only after it."""
    factories.staff_member(app, "admin", "admin@viihdepaketti.fi")
    client = app.test_client()
    response = sign_in(client, "admin@viihdepaketti.fi", PASSWORD)
    assert response.headers["Location"] == "/staff/totp/enrol"
    assert client.get("/staff/").headers["Location"] == "/staff/login"
    page = client.get("/staff/totp/enrol")
    assert "<svg" in page.text
    secret = re.search(r"<code>([A-Z2-7]{32})</code>", page.text).group(1)
    done = client.post(
        "/staff/totp/enrol",
        data={"csrf_token": csrf_token(page.text), "code": pyotp.TOTP(secret).now()},
    )
    assert done.headers["Location"] == "/staff/"
    assert client.get("/staff/").status_code == 200
    with app.app_context():
        assert accounts.find("admin@viihdepaketti.fi").totp_secret == secret


def test_the_secret_being_enrolled_is_not_in_the_session_cookie(app, clock):
    """The session is a signed cookie, not an encrypted one: a copy taken while the app is
    being set up must not carry the second factor's secret. The same secret is shown on
    every view of the page until it is set up, and another browser gets another."""
    factories.staff_member(app, "admin", "admin@viihdepaketti.fi")
    client = app.test_client()
    sign_in(client, "admin@viihdepaketti.fi", PASSWORD)
    page = client.get("/staff/totp/enrol")
    secret = re.search(r"<code>([A-Z2-7]{32})</code>", page.text).group(1)
    again = re.search(r"<code>([A-Z2-7]{32})</code>", client.get("/staff/totp/enrol").text)
    assert again.group(1) == secret

    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    serializer = app.session_interface.get_signing_serializer(app)
    assert secret not in json.dumps(serializer.loads(cookie))
    other = app.test_client()
    sign_in(other, "admin@viihdepaketti.fi", PASSWORD)
    assert secret not in other.get("/staff/totp/enrol").text


def test_a_totp_code_works_once(app, clock):
    """The same code cannot sign in twice; the next time step's can."""
    secret = factories.staff_member(app, "admin", "admin@viihdepaketti.fi", totp=True).totp_secret
    code = pyotp.TOTP(secret).now()
    first = app.test_client()
    sign_in(first, "admin@viihdepaketti.fi", PASSWORD)
    assert enter_totp(first, code).headers["Location"] == "/staff/"
    second = app.test_client()
    sign_in(second, "admin@viihdepaketti.fi", PASSWORD)
    replay = enter_totp(second, code)
    assert replay.status_code == 401
    assert "used already" in replay.text
    clock.tick(30)
    assert enter_totp(second, pyotp.TOTP(secret).now()).headers["Location"] == "/staff/"


def test_a_wrong_totp_code_is_refused(app, clock):
    """A wrong code keeps the door shut."""
    secret = factories.staff_member(app, "admin", "admin@viihdepaketti.fi", totp=True).totp_secret
    client = app.test_client()
    sign_in(client, "admin@viihdepaketti.fi", PASSWORD)
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    assert enter_totp(client, wrong).status_code == 401
    assert client.get("/staff/").status_code == 302


@pytest.mark.parametrize("script", ["fullwidth", "arabic_indic"])
def test_a_totp_code_in_other_digits_signs_in(app, clock, script):
    """The authenticator's code typed in fullwidth or Arabic-Indic digits is the same code."""
    secret = factories.staff_member(app, "admin", "admin@viihdepaketti.fi", totp=True).totp_secret
    client = app.test_client()
    sign_in(client, "admin@viihdepaketti.fi", PASSWORD)
    code = typed_in(script, pyotp.TOTP(secret).now())
    assert enter_totp(client, code).headers["Location"] == "/staff/"


def guess_from(app, email: str, addresses: list[str]) -> None:
    """Fresh browsers, one per address, each typing a wrong password for ``email``."""
    for n, address in enumerate(addresses):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address
        assert sign_in(client, email, f"guess-{n}-xxxxxx").status_code in (401, 429)


def without_token(page: str) -> str:
    return re.sub(r'name="csrf_token" type="hidden" value="[^"]+"', "", page)


def from_address(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_wrong_passwords_lock_that_account_from_that_client(app, clock):
    """Five wrong passwords for one account from one client: that client waits, even with
    the right password; the person at their own desk signs in; other accounts are free."""
    factories.staff_member(app, "support", "tuki@viihdepaketti.fi")
    guess_from(app, "tuki@viihdepaketti.fi", ["198.51.100.7"] * 5)
    blocked = sign_in(from_address(app, "198.51.100.7"), "tuki@viihdepaketti.fi", PASSWORD)
    assert blocked.status_code == 429
    assert "Too many tries" in blocked.text
    own_desk = sign_in(from_address(app, "192.0.2.10"), "tuki@viihdepaketti.fi", PASSWORD)
    assert own_desk.headers["Location"] == "/staff/"
    factories.staff_member(app, "support", "muu@viihdepaketti.fi")
    assert (
        sign_in(from_address(app, "198.51.100.7"), "muu@viihdepaketti.fi", PASSWORD).status_code
        == 302
    )


@pytest.mark.parametrize("config_overrides", [{"STAFF_LOGIN_LIMIT_PER_ACCOUNT": "4 per hour"}])
def test_guessing_from_everywhere_cannot_lock_out_a_person_with_a_second_factor(app, clock):
    """Wrong passwords from many clients lock sign-in by password alone (an account without
    TOTP waits, and an unknown email looks the same); a correct password followed by a
    TOTP code still gets in."""
    secret = factories.staff_member(app, "admin", "admin@viihdepaketti.fi", totp=True).totp_secret
    factories.staff_member(app, "support", "tuki@viihdepaketti.fi")
    guessers = [f"198.51.100.{n}" for n in range(4)]
    guess_from(app, "admin@viihdepaketti.fi", guessers)
    guess_from(app, "tuki@viihdepaketti.fi", guessers)
    guess_from(app, "nobody@viihdepaketti.fi", guessers)

    admin = from_address(app, "192.0.2.10")
    assert (
        sign_in(admin, "admin@viihdepaketti.fi", PASSWORD, secret).headers["Location"] == "/staff/"
    )
    password_only = sign_in(from_address(app, "192.0.2.11"), "tuki@viihdepaketti.fi", PASSWORD)
    assert password_only.status_code == 429
    unknown = sign_in(from_address(app, "192.0.2.12"), "nobody@viihdepaketti.fi", PASSWORD)
    assert unknown.status_code == 429
    assert without_token(unknown.text).replace("nobody", "tuki") == without_token(
        password_only.text
    )
    wrong = sign_in(from_address(app, "192.0.2.13"), "admin@viihdepaketti.fi", "x" * 12)
    assert wrong.status_code == 429  # under the lock a wrong password says only that


@pytest.mark.parametrize("config_overrides", [{"STAFF_LOGIN_LIMIT_PER_ACCOUNT": "3 per hour"}])
def test_wrong_passwords_arriving_together_from_everywhere_stay_within_the_accounts_limit(
    app, clock
):
    """Eight wrong passwords for one account at once, each from its own address: three are
    checked (401), five find the account locked (429). The account's count is taken in the
    same step as its test, so tries at once cannot all pass it."""
    factories.staff_member(app, "support", "tuki@viihdepaketti.fi")

    def guess(n: int):
        return lambda: (
            sign_in(
                from_address(app, f"198.51.100.{n}"), "tuki@viihdepaketti.fi", "x" * 12
            ).status_code
        )

    statuses = race(*(guess(n) for n in range(8)), app=app)
    assert sorted(statuses) == [401] * 3 + [429] * 5


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0"}])
def test_when_redis_is_down_a_password_alone_does_not_sign_in(app, clock):
    """Redis unreachable (a closed port): the count of wrong passwords from everywhere
    cannot be read, so a right password alone gets the lock's 429 and its message, and no
    session (fail closed, never a 5xx); a password and a TOTP code still get in."""
    factories.staff_member(app, "support", "tuki@viihdepaketti.fi")
    client = app.test_client()
    refused = sign_in(client, "tuki@viihdepaketti.fi", PASSWORD)
    assert refused.status_code == 429
    assert "Too many wrong passwords were typed for this account." in refused.text
    assert client.get("/staff/").headers["Location"] == "/staff/login"
    secret = factories.staff_member(app, "admin", "admin@viihdepaketti.fi", totp=True).totp_secret
    admin = sign_in(app.test_client(), "admin@viihdepaketti.fi", PASSWORD, secret)
    assert admin.headers["Location"] == "/staff/"


def test_password_guessing_is_throttled_per_ip(app, clock):
    """Twenty failures from one address, whatever the emails, and that address waits."""
    client = app.test_client()
    for n in range(20):
        assert sign_in(client, f"user{n}@viihdepaketti.fi", "x" * 12).status_code == 401
    assert sign_in(client, "other@viihdepaketti.fi", "x" * 12).status_code == 429


def test_totp_guessing_is_throttled(app, clock):
    """Five wrong codes for the account, and the sixth try is refused with 429."""
    secret = factories.staff_member(app, "admin", "admin@viihdepaketti.fi", totp=True).totp_secret
    client = app.test_client()
    sign_in(client, "admin@viihdepaketti.fi", PASSWORD)
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    for _ in range(5):
        assert enter_totp(client, wrong).status_code == 401
    assert enter_totp(client, pyotp.TOTP(secret).now()).status_code == 429


def enter_totp_with(client, code: str, **extra):
    page = client.get("/staff/login/totp")
    data = {"csrf_token": csrf_token(page.text), "code": code, **extra}
    return client.post("/staff/login/totp", data=data, headers={"Accept-Language": "en"})


def test_totp_guessing_counts_against_the_pending_account_whatever_the_form_says(app, clock):
    """An email posted with a guess changes nothing: five wrong codes for the account the
    password step proved, in any sessions, and the sixth try (even the right code) waits."""
    secret = factories.staff_member(app, "admin", "admin@viihdepaketti.fi", totp=True).totp_secret
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    for n in range(5):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n}"
        sign_in(client, "admin@viihdepaketti.fi", PASSWORD)
        answer = enter_totp_with(client, wrong, email=f"random{n}@example.com")
        assert answer.status_code == 401
    client = app.test_client()
    sign_in(client, "admin@viihdepaketti.fi", PASSWORD)
    right = enter_totp_with(client, pyotp.TOTP(secret).now(), email="other@example.com")
    assert right.status_code == 429


@pytest.mark.parametrize("role", ["support", "admin"])
def test_a_password_alone_cannot_replace_the_second_factor(app, clock, role):
    """After the password step of an account with TOTP, the enrolment page sends to the
    TOTP step: it shows no new secret, takes no code, signs nobody in, and the person's
    own authenticator keeps working."""
    secret = factories.staff_member(app, role, "staff@viihdepaketti.fi", totp=True).totp_secret
    attacker = app.test_client()
    assert (
        sign_in(attacker, "staff@viihdepaketti.fi", PASSWORD).headers["Location"]
        == "/staff/login/totp"
    )

    page = attacker.get("/staff/totp/enrol")
    assert page.headers["Location"] == "/staff/login/totp"
    own_page = attacker.get("/staff/login/totp")
    forged = attacker.post(
        "/staff/totp/enrol",
        data={"csrf_token": csrf_token(own_page.text), "code": "123456"},
    )
    assert forged.headers["Location"] == "/staff/login/totp"
    assert attacker.get("/staff/").headers["Location"] == "/staff/login"
    with app.app_context():
        assert accounts.find("staff@viihdepaketti.fi").totp_secret == secret
    assert sign_in(app.test_client(), "staff@viihdepaketti.fi", PASSWORD, secret).status_code == 302


def test_replacing_the_authenticator_needs_a_code_from_the_current_one(app, admin, clock):
    """A signed-in admin moves to a new app only by typing a code from the old one first."""
    with app.app_context():
        old = accounts.find("paakayttaja@viihdepaketti.fi").totp_secret
    page = admin.get("/staff/totp/enrol")
    assert 'name="current_code"' in page.text
    new = re.search(r"<code>([A-Z2-7]{32})</code>", page.text).group(1)
    clock.tick(31)  # the sign-in used this step's code of the old app
    refused = admin.post(
        "/staff/totp/enrol",
        data={"csrf_token": csrf_token(page.text), "current_code": "000000",
              "code": pyotp.TOTP(new).now()},
    )  # fmt: skip
    assert refused.status_code == 400
    with app.app_context():
        assert accounts.find("paakayttaja@viihdepaketti.fi").totp_secret == old
    moved = admin.post(
        "/staff/totp/enrol",
        data={"csrf_token": csrf_token(page.text), "current_code": pyotp.TOTP(old).now(),
              "code": pyotp.TOTP(new).now()},
    )  # fmt: skip
    assert moved.headers["Location"] == "/staff/"
    with app.app_context():
        assert accounts.find("paakayttaja@viihdepaketti.fi").totp_secret == new
    assert [e.action for e in audit_rows(app)][-1] == "replace_totp"


def test_a_busy_session_still_ends_twelve_hours_after_sign_in(support, clock):
    """Activity every 20 minutes keeps a session from idling out, never past 12 hours."""
    for _ in range(12 * 3):
        assert support.get("/staff/").status_code == 200
        clock.tick(20 * 60)
    clock.tick(60)
    ended = support.get("/staff/", headers={"Accept-Language": "en"})
    assert ended.headers["Location"] == "/staff/login"
    assert "12 hours" in support.get("/staff/login").text


def test_sign_in_starts_a_new_session(app, outbox, clock):
    """Whatever the browser's session held before is gone after signing in."""
    factories.staff_member(app, "support", "tuki@viihdepaketti.fi")
    client = app.test_client()
    Visitor(client, outbox).submit_number("040 123 4567")  # a pending verification in session
    with client.session_transaction() as before:
        assert "verification" in before
    sign_in(client, "tuki@viihdepaketti.fi", PASSWORD)
    with client.session_transaction() as after:
        assert "verification" not in after
        assert "_user_id" in after


def test_idle_sessions_end_after_thirty_minutes(support, clock):
    """29 idle minutes are fine; 31 sign the person out."""
    clock.tick(29 * 60)
    assert support.get("/staff/").status_code == 200
    clock.tick(31 * 60)
    assert support.get("/staff/").headers["Location"] == "/staff/login"


def test_logout_ends_the_session_and_every_copy_of_it(app, support):
    """A cookie copied before logout does not work after it."""
    stolen = support.get_cookie("session").value
    post(support, "/staff/logout", "/staff/")
    assert support.get("/staff/").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/staff/").status_code == 302


def test_a_disabled_account_is_out_at_once(app, support, runner):
    """Disabling ends live sessions on the next request."""
    runner.invoke(args=["staff", "disable", "tuki@viihdepaketti.fi"])
    assert support.get("/staff/").headers["Location"] == "/staff/login"
    assert sign_in(app.test_client(), "tuki@viihdepaketti.fi", PASSWORD).status_code == 401


def test_every_session_can_be_ended_at_once(app, support, admin, runner):
    """After a signing key leaked: one command ends every staff session (a cookie signed
    with the old key names an account and its session version), and says so in the audit."""
    result = runner.invoke(args=["staff", "sign-out-all"])
    assert result.exit_code == 0, result.output
    for client in (support, admin):
        assert client.get("/staff/").headers["Location"] == "/staff/login"
    (entry,) = [e for e in audit_rows(app) if e.action == "logout" and e.actor.startswith("cli:")]
    assert entry.detail.startswith("every session: ")


# Roles


@pytest.mark.parametrize("path", ["/staff/audit", "/staff/team", "/staff/api-tokens"])
def test_support_cannot_read_the_audit_log_or_manage_the_team(support, path):
    """Admin pages are 403 for support."""
    assert support.get(path).status_code == 403


def test_support_cannot_erase(app, support, subscriber_id):
    """Even a hand-made erase request from support is refused and erases nothing."""
    response = post(
        support,
        f"/staff/card/{subscriber_id}/erase",
        f"/staff/card/{subscriber_id}",
        reason="asked by phone",
        confirm="y",
    )
    assert response.status_code == 403
    with app.app_context():
        assert lookup.subscriber_by_phone("+358401234567") is not None


def test_admin_reaches_every_page(admin, subscriber_id):
    """Admins see the audit log, the team and the dashboard."""
    for path in (
        "/staff/audit",
        "/staff/team",
        "/staff/api-tokens",
        "/staff/dashboard",
        f"/staff/card/{subscriber_id}",
    ):
        assert admin.get(path).status_code == 200, path


#: An id as an attacker writes it: past what an INTEGER column holds, or in other digits.
ODD_IDS = {
    "past int4": lambda _id: str(2**31),
    "past int8": lambda _id: "99999999999999999999",
    "fullwidth": lambda id_: typed_in("fullwidth", str(id_)),
    "arabic-indic": lambda id_: typed_in("arabic_indic", str(id_)),
}


@pytest.mark.parametrize("kind", ODD_IDS)
def test_ids_no_column_holds_or_in_other_digits_are_a_404(app, admin, subscriber_id, kind):
    """/staff/card/2147483648 and the like: a 404 before any query sees the id (PostgreSQL
    would refuse it with an error); an existing id typed in other digits is no address."""
    odd = ODD_IDS[kind]
    with app.app_context():
        admin_id = accounts.find("paakayttaja@viihdepaketti.fi").id
    for method, path in [
        ("GET", f"/staff/card/{odd(subscriber_id)}"),
        ("GET", f"/staff/card/{odd(subscriber_id)}/export"),
        ("POST", f"/staff/team/{odd(admin_id)}/reset-totp"),
        ("POST", f"/staff/api-tokens/{odd(1)}/revoke"),
        ("GET", f"/staff/campaigns/{odd(1)}"),
    ]:
        assert admin.open(path, method=method).status_code == 404, path


def test_admin_recovers_a_colleagues_second_factor(app, admin):
    """Reset TOTP from the team page: the colleague enrols again at next sign-in."""
    secret = factories.staff_member(app, "admin", "kollega@viihdepaketti.fi", totp=True).totp_secret
    with app.app_context():
        colleague_id = accounts.find("kollega@viihdepaketti.fi").id
    post(admin, f"/staff/team/{colleague_id}/reset-totp", "/staff/team")
    client = app.test_client()
    response = sign_in(client, "kollega@viihdepaketti.fi", PASSWORD, secret)
    assert response.headers["Location"] == "/staff/totp/enrol"


# Look-up and the card


@pytest.mark.parametrize(
    "query",
    [
        "040 123 4567",
        "+358401234567",
        "+358 40 123 45 67",
        "040-123 45 67",
        typed_in("fullwidth", "0401234567"),
        typed_in("arabic_indic", "+358401234567"),
    ],
)
def test_search_by_the_number_in_any_format_opens_the_card(support, subscriber_id, query):
    """National, E.164, spaced, dashed, or in another script's digits (as sign-up takes
    them): the same card, never "not in the register"."""
    response = post(support, "/staff/", "/staff/", query=query)
    assert response.headers["Location"] == f"/staff/card/{subscriber_id}"


@pytest.mark.parametrize("digits", ["234567", "123-4567", typed_in("fullwidth", "234567")])
def test_search_by_the_last_six_digits_lists_the_matches(support, subscriber_id, digits):
    """At least six last digits give a list to pick from, however they were typed."""
    response = post(support, "/staff/", "/staff/", query=digits)
    assert f'href="/staff/card/{subscriber_id}"' in response.text
    too_few = post(support, "/staff/", "/staff/", query="4567")
    assert too_few.status_code == 400


def test_card_shows_status_consents_timeline_sms_and_codes(support, subscriber_id):
    """Everything support needs to answer a call, in one place."""
    text = support.get(f"/staff/card/{subscriber_id}", headers={"Accept-Language": "en"}).text
    assert "+358 40 1234567" in text
    assert "Subscribed" in text
    assert "Offers: <strong>yes</strong>" in text
    assert "talvi" in text
    assert "signup-1" in text
    assert "Welcome message" in text
    assert "1 try, confirmed" in text


def test_an_erased_number_shows_its_tombstone(admin, subscriber_id, runner):
    """Searching an erased number shows when it was erased, and nothing else."""
    runner.invoke(args=["subject", "erase", "0401234567", "--yes"])
    response = post(admin, "/staff/", "/staff/", query="0401234567")
    assert response.status_code == 200
    assert "Erased on" in response.text
    assert "Welcome message" not in response.text


def test_recording_a_withdrawal_needs_a_reason_and_names_the_staff_member(
    app, support, subscriber_id
):
    """Without a reason: 400. With one: withdrawals with the staff member as actor."""
    card = f"/staff/card/{subscriber_id}"
    assert post(support, f"{card}/withdraw", card, reason="").status_code == 400
    post(support, f"{card}/withdraw", card, reason="phoned on 25.11.")
    with app.app_context():
        staff_id = accounts.find("tuki@viihdepaketti.fi").id
        withdrawals = db.session.scalars(
            select(ConsentEvent).where(ConsentEvent.action == "withdraw")
        ).all()
        assert {(e.source, e.actor) for e in withdrawals} == {("staff", f"staff:{staff_id}")}
        assert consent.is_subscribed(subscriber_id) is False
    entry = audit_rows(app)[-1]
    assert (entry.action, entry.detail) == ("withdraw", "phoned on 25.11.")


def test_sending_the_preference_link(app, support, subscriber_id, outbox):
    """One SMS with the link, and an audit entry."""
    card = f"/staff/card/{subscriber_id}"
    post(support, f"{card}/send-link", card)
    message = outbox.last()
    assert message["kind"] == "link"
    assert re.search(r"https://viihdepaketti.fi/\S+", message["body"])
    assert audit_rows(app)[-1].action == "send_link"


def test_export_is_the_same_json_as_everywhere_else(app, support, subscriber_id):
    """The console's JSON equals `flask subject export`; the printable page works too."""
    data = json.loads(support.get(f"/staff/card/{subscriber_id}/export.json").text)
    with app.app_context():
        assert data == access.export("+358401234567")
    page = support.get(f"/staff/card/{subscriber_id}/export", headers={"Accept-Language": "en"})
    assert "Data stored about +358 40 1234567" in page.text
    assert [e.detail for e in audit_rows(app) if e.action == "export"] == ["json", "print"]


def test_admin_erases_with_a_reason_and_a_confirmation(app, admin, subscriber_id):
    """No tick: 400 and nothing erased. Ticked with a reason: only a tombstone remains."""
    card = f"/staff/card/{subscriber_id}"
    assert post(admin, f"{card}/erase", card, reason="written request").status_code == 400
    response = post(admin, f"{card}/erase", card, reason="written request", confirm="y")
    assert response.headers["Location"] == "/staff/"
    with app.app_context():
        assert lookup.subscriber_by_phone("+358401234567") is None
        assert db.session.scalar(select(SmsMessage)) is None
    entry = audit_rows(app)[-1]
    assert (entry.action, entry.detail) == ("erase", "written request")


def test_console_pages_are_never_cached(support):
    """Personal data: no-store on every console response."""
    assert support.get("/staff/").headers["Cache-Control"] == "no-store"


# The audit log


def test_every_read_and_action_is_audited_with_who_what_whose_when_where(
    app, support, subscriber_id
):
    """Search, card view: one entry each, with the staff member, masked number and IP."""
    post(support, "/staff/", "/staff/", query="040 123 4567")
    support.get(f"/staff/card/{subscriber_id}")
    entries = [e for e in audit_rows(app) if e.action in ("search", "view_card")]
    assert [e.action for e in entries] == ["search", "view_card"]
    for entry in entries:
        assert entry.actor == "tuki@viihdepaketti.fi"
        assert entry.subject_masked == "+358 40 *** **67"
        assert entry.subject_hash == subjects_hash(app)
        assert entry.ip == "127.0.0.1"
        assert entry.created_at == NOW
    assert all("401234567" not in (e.detail or "") for e in audit_rows(app))


@pytest.mark.parametrize(
    ("who", "action", "data"),
    [("support", "withdraw", {"reason": ""}), ("admin", "erase", {"reason": "asked"})],
)
def test_a_card_shown_again_after_a_form_that_did_not_pass_is_on_record(
    app, request, subscriber_id, who, action, data
):
    """A withdrawal without a reason, an erasure without its tick: the 400 shows the card
    (the number, consents, SMS log) once more, and that showing is a look-up like any."""
    client = request.getfixturevalue(who)
    card = f"/staff/card/{subscriber_id}"
    before = len(audit_rows(app))

    response = post(client, f"{card}/{action}", card, **data)

    assert response.status_code == 400
    assert "+358 40 1234567" in response.text
    # The card the form was on (``post`` opens it first), then the card of the 400.
    new = audit_rows(app)[before:]
    assert [(e.action, e.subject_hash) for e in new] == [("view_card", subjects_hash(app))] * 2


def test_a_last_digit_search_puts_each_number_it_lists_on_record(app, support, outbox):
    """The list shows whole numbers: each is on record as looked up, so the audit log
    filtered by a number finds the search; a search that lists nobody is on record too."""
    for number in ("+358401234567", "+358501234567"):
        factories.subscriber(app, number, at=utcnow())

    listed = post(support, "/staff/", "/staff/", query="1234567")
    nobody = post(support, "/staff/", "/staff/", query="7654321")

    assert "+358 40 1234567" in listed.text and "+358 50 1234567" in listed.text
    assert nobody.status_code == 200
    searches = [e for e in audit_rows(app) if e.action == "search"]
    with app.app_context():
        hashes = [erasure.tombstone_hash(n) for n in ("+358401234567", "+358501234567")]
    assert sorted((e.subject_hash, e.detail) for e in searches[:2]) == sorted(
        (h, "last 7 digits") for h in hashes
    )
    assert [(e.subject_hash, e.detail) for e in searches[2:]] == [(None, "last 7 digits")]
    with app.app_context():
        for number in ("+358401234567", "+358501234567"):
            assert "search" in [e.action for e in audit.entries(phone_e164=number)]
    assert all("1234567" not in (e.detail or "") for e in searches)


@pytest.mark.parametrize("config_overrides", [{"STAFF_SEARCH_LIMIT": "3 per hour"}])
def test_a_staff_member_walking_the_register_by_search_is_stopped(app, support, subscriber_id):
    """STAFF_SEARCH_LIMIT look-ups per staff member; the next is a 429, and nothing of it
    is read or put on record."""
    for digits in ("100000", "200000", "300000"):
        assert post(support, "/staff/", "/staff/", query=digits).status_code == 200
    before = len(audit_rows(app))

    assert post(support, "/staff/", "/staff/", query="040 123 4567").status_code == 429
    assert len(audit_rows(app)) == before


@pytest.mark.parametrize("config_overrides", [{"STAFF_SEARCH_LIMIT": "3 per hour"}])
def test_walking_the_cards_by_their_address_is_stopped_as_searching_is(app, support, subscriber_id):
    """Ids run in order: a card (or an access answer) opened by its address counts as a
    look-up, apart from the searches (one that finds nobody does not count); the next
    past the cap is a 429 that reads and records nothing."""
    card = f"/staff/card/{subscriber_id}"
    assert support.get(f"/staff/card/{subscriber_id + 1}").status_code == 404  # not counted
    for path in (card, f"{card}/export", f"{card}/export.json"):
        assert support.get(path).status_code == 200
    before = len(audit_rows(app))
    assert support.get(card).status_code == 429
    # Nor by an action that does not pass, which shows the card again.
    assert post(support, f"{card}/withdraw", "/staff/", reason="").status_code == 429
    assert len(audit_rows(app)) == before
    assert post(support, "/staff/", "/staff/", query="234567").status_code == 200  # apart


def subjects_hash(app) -> str:
    with app.app_context():
        return erasure.tombstone_hash("+358401234567")


def test_the_audit_log_cannot_be_changed(app, support):
    """Neither the ORM nor plain SQL can edit or delete an entry."""
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry))
        entry.action = "nothing to see"
        with pytest.raises(AppendOnlyError):
            db.session.commit()
        db.session.rollback()
        for statement in ("UPDATE audit_entries SET action = 'x'", "DELETE FROM audit_entries"):
            with pytest.raises(DBAPIError, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()


@pytest.mark.usefixtures("needs_postgresql")
@pytest.mark.parametrize("statement", ["TRUNCATE audit_entries", "TRUNCATE staff_members CASCADE"])
def test_the_audit_log_cannot_be_truncated(app, support, statement):
    """TRUNCATE passes no row trigger: a statement trigger refuses it, also by cascade."""
    with app.app_context():
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
        assert db.session.scalar(select(AuditEntry)) is not None


def test_admin_filters_the_audit_log(app, admin, support, subscriber_id):
    """By number in any format (posted), and by action (posted, or in the address)."""
    post(support, "/staff/", "/staff/", query="040 123 4567")
    by_number = post(admin, "/staff/audit", "/staff/audit", number="040 123 4567")
    assert "<td>search</td>" in by_number.text
    assert "<td>login</td>" not in by_number.text
    for by_action in (
        post(admin, "/staff/audit", "/staff/audit", action="login"),
        admin.get("/staff/audit?action=login"),
    ):
        assert "tuki@viihdepaketti.fi" in by_action.text
        assert "+358 40 *** **67" not in by_action.text


def test_a_number_never_travels_in_the_audit_logs_address(app, admin, support, subscriber_id):
    """The filter form is posted: a number in an address stays in access logs, history and
    Referer headers. A number put in the address by hand filters nothing."""
    page = admin.get("/staff/audit")
    assert re.search(r'<form method="post" action="/staff/audit" class="filters">', page.text)
    post(support, "/staff/", "/staff/", query="040 123 4567")
    by_address = admin.get("/staff/audit?number=040+123+4567")
    assert "<td>login</td>" in by_address.text  # not filtered by the number


@pytest.mark.parametrize("query", ["until=9999-12-31", "since=0001-01-01", "until=1999-12-31"])
def test_audit_dates_out_of_range_are_an_error_and_filter_nothing(admin, query):
    """A day past what a datetime holds (or outside 2000-2099) is a form error, not a 500,
    and the log is shown as if that filter were not there."""
    page = admin.get(f"/staff/audit?{query}", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "Choose a day between the years 2000 and 2099." in page.text
    assert "<td>login</td>" in page.text  # the admin's own sign-in, not filtered away


def test_the_app_has_no_way_to_edit_or_delete_audit_entries(app):
    """The audit log's one route only reads (its POST is the filter form); no other route
    under /staff/audit exists."""
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/staff/audit")]
    assert [(rule.rule, rule.endpoint) for rule in rules] == [("/staff/audit", "staff.audit_log")]
    assert rules[0].methods <= {"GET", "HEAD", "OPTIONS", "POST"}


def test_staff_accounts_cannot_be_created_from_the_web(app):
    """There is no sign-up page."""
    staff_posts = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and "/staff" in rule.rule
    }
    assert not any(
        word in rule for rule in staff_posts for word in ("signup", "register", "create")
    )


def test_throttling_counts_in_redis_when_it_is_configured(app):
    """With REDIS_URL, limits live in Redis, so every app process shares them."""
    from viihde.config import rate_limit_storage

    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"  # the tests' own, per app
    assert rate_limit_storage({"REDIS_URL": "redis://r:6379/0"}) == "redis://r:6379/0"
    assert rate_limit_storage({"REDIS_URL": None}) == "memory://"
    explicit = {"RATELIMIT_STORAGE_URI": "redis://other/1", "REDIS_URL": "redis://r/0"}
    assert rate_limit_storage(explicit) == "redis://other/1"


def test_unknown_emails_cost_the_same_password_check(app, monkeypatch):
    """Timing reveals nothing: an unknown email runs one argon2 verification too."""
    calls = []
    verify = PasswordHasher.verify

    def counted(hasher, hashed, password):
        calls.append(hashed)
        return verify(hasher, hashed, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    with app.app_context():
        accounts.create_staff("tuki@viihdepaketti.fi", "support", PASSWORD, NOW)
        accounts.authenticate("tuki@viihdepaketti.fi", "wrong-password-123")
        accounts.authenticate("nobody@viihdepaketti.fi", "wrong-password-123")
    assert len(calls) == 2
    assert all(h.startswith("$argon2id$") for h in calls)


# Tokens in the console (admins only)


def test_an_admin_makes_a_token_that_is_shown_once_and_works(app, admin, api_people):
    made = post(admin, "/staff/api-tokens", "/staff/api-tokens", name="Kampanjatyökalu")
    assert made.status_code == 200
    plain = re.search(r'<code class="token">(viihde_[^<]+)</code>', made.text).group(1)
    assert audience(app, plain).status_code == 200
    assert plain not in admin.get("/staff/api-tokens").text  # never shown again
    assert "Kampanjatyökalu" in admin.get("/staff/api-tokens").text
    with app.app_context():
        token_id = db.session.query(ApiToken).one().id
    revoked = post(admin, f"/staff/api-tokens/{token_id}/revoke", "/staff/api-tokens")
    assert revoked.status_code == 302
    assert audience(app, plain).status_code == 401
    actions = [row.action for row in audit_rows(app)]
    assert "create_api_token" in actions and "revoke_api_token" in actions


def test_a_token_name_is_needed_and_unique(admin):
    assert post(admin, "/staff/api-tokens", "/staff/api-tokens", name="").status_code == 400
    assert post(admin, "/staff/api-tokens", "/staff/api-tokens", name="tool").status_code == 200
    again = post(admin, "/staff/api-tokens", "/staff/api-tokens", name="tool")
    assert again.status_code == 400 and "exists already" in again.text


def test_support_staff_cannot_make_tokens(app, support):
    assert post(support, "/staff/api-tokens", "/staff/", name="x").status_code == 403
    with app.app_context():
        assert db.session.query(ApiToken).count() == 0


def audience(app, token: str):
    return app.test_client().get(
        "/api/v1/audience?purpose=offers", headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
def api_people(app):
    factories.subscriber(app, "+358401234567", ["offers"], at=utcnow())


def test_support_never_sees_a_live_preference_link(app, support, subscriber_id, outbox, runner):
    """The welcome and a link sent on request reached the person; the card, its SMS log,
    both exports and the command line show a placeholder, never a token that would let
    support act as the person."""
    post(support, f"/staff/card/{subscriber_id}/send-link", f"/staff/card/{subscriber_id}")
    live = [re.search(TOKEN_PATTERN, m["body"]).group(0) for m in outbox.messages()[1:]]
    assert live  # the welcome and the link carried live tokens
    views = [
        support.get(f"/staff/card/{subscriber_id}").text,
        support.get(f"/staff/card/{subscriber_id}/export.json").text,
        support.get(f"/staff/card/{subscriber_id}/export").text,
        runner.invoke(args=["subject", "export", "040 123 4567"]).output,
    ]
    for view in views:
        assert "/[link]" in view
        assert not any(token in view for token in live)
        assert not re.search(r"viihdepaketti\.fi/" + TOKEN_PATTERN, view)


def test_the_card_is_one_transaction_with_its_audit_entry(app, support, subscriber_id):
    """Decision 8 of issue 18: the card is read and rendered in its audit entry's
    transaction and committed before it is sent (it was two transactions, the subscriber
    and the staff member read again after the commit), none after the commit; the
    subscriber read once (by id: not again by number), its holdings once (the scope of
    its records and since when its holder has held it), the SMS log not counted for the
    banner on every page (``budget.pause_hint``): 10 statements (9, and since 2026-12-07
    the number's STOP refusals, shown as its erasures are)."""
    from sqlalchemy import event

    support.get(f"/staff/card/{subscriber_id}")
    sent: list[str] = []
    with app.app_context():
        engine = db.engine

    def on_statement(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append(" ".join(statement.split()))

    def on_commit(conn) -> None:
        sent.append("COMMIT")

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    try:
        response = support.get(f"/staff/card/{subscriber_id}")
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)
    assert response.status_code == 200 and "status--on" in response.text
    statements = [s for s in sent if not s.startswith("BEGIN")]
    assert statements[-1] == "COMMIT" and statements.count("COMMIT") == 1
    assert len(statements) - 1 <= 10, statements
    assert not [s for s in statements if "count(*)" in s]
    assert len([s for s in statements if "FROM subscribers" in s]) == 1
    assert len([s for s in statements if "FROM holdings" in s]) == 1
    assert audit_rows(app)[-1].action == "view_card"
