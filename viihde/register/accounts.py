"""Staff accounts: passwords (argon2id), TOTP second factor (pyotp), and session versions.

The only module that knows ``argon2``, ``pyotp`` and ``zxcvbn``.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from zxcvbn import zxcvbn

from viihde.extensions import db
from viihde.hashing import keyed_hash
from viihde.models import StaffMember

ROLES = ("support", "admin")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
MIN_PASSWORD_SCORE = 3  # zxcvbn: 0-4; 3 = "safely unguessable" for an online attack
TOTP_ISSUER = "Viihdepaketti.fi staff"


class PasswordProblem(StrEnum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    COMMON = "common"


class PasswordRejected(ValueError):
    """A new password is not good enough; ``problem`` says why."""

    def __init__(self, problem: PasswordProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class AccountError(ValueError):
    """A staff account command cannot be done (unknown email, email taken, bad role)."""


@dataclass(frozen=True)
class SignIn:
    """The outcome of a password check: who, and what they must do next."""

    staff: StaffMember
    needs_totp: bool
    must_enrol_totp: bool


def password_hasher() -> PasswordHasher:
    """argon2id at the cost the settings name (PASSWORD_HASH_*: t=3, m=64 MiB, p=4 unless set)."""
    config = current_app.config
    return _hasher(
        config["PASSWORD_HASH_TIME_COST"],
        config["PASSWORD_HASH_MEMORY_KIB"],
        config["PASSWORD_HASH_PARALLELISM"],
    )


@cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def check_password(password: str, email: str = "") -> None:
    """Refuse short, overlong and guessable passwords (common ones, the email, the product)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordRejected(PasswordProblem.TOO_SHORT)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordRejected(PasswordProblem.TOO_LONG)
    hints = [email, email.split("@")[0], "viihde", "viihdepaketti", "lucentia"]
    if zxcvbn(password, user_inputs=hints)["score"] < MIN_PASSWORD_SCORE:
        raise PasswordRejected(PasswordProblem.COMMON)


def create_staff(email: str, role: str, password: str, now: datetime) -> StaffMember:
    """Add a named staff member (no commit: the caller commits it with its audit entry)."""
    email = normalise_email(email)
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if "@" not in email:
        raise AccountError("not an email address")
    check_password(password, email)
    staff = StaffMember(
        email=email,
        role=role,
        password_hash=password_hasher().hash(password),
        session_version=1,
        created_at=now,
    )
    try:
        with db.session.begin_nested():
            db.session.add(staff)
    except IntegrityError:
        raise AccountError(f"{email} already has an account") from None
    return staff


def find(email: str) -> StaffMember | None:
    """The staff member with this email, disabled or not."""
    return db.session.scalar(select(StaffMember).where(StaffMember.email == normalise_email(email)))


def by_id(staff_id: int) -> StaffMember | None:
    return db.session.get(StaffMember, staff_id)


def all_staff() -> list[StaffMember]:
    return list(db.session.scalars(select(StaffMember).order_by(StaffMember.email)))


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("a password nobody has, to spend the same time")


def authenticate(email: str, password: str) -> SignIn | None:
    """Check a password; unknown and disabled accounts take the same time and say nothing."""
    hasher = password_hasher()
    staff = find(email)
    candidate = staff.password_hash if staff else _dummy_hash(hasher)
    try:
        hasher.verify(candidate, password)
    except (VerificationError, InvalidHashError):
        return None
    if staff is None or staff.disabled_at is not None:
        return None
    if hasher.check_needs_rehash(staff.password_hash):
        staff.password_hash = hasher.hash(password)  # saved with the sign-in's commit
    enrolled = staff.totp_secret is not None
    return SignIn(
        staff, needs_totp=enrolled, must_enrol_totp=not enrolled and staff.role == "admin"
    )


def new_totp_secret() -> str:
    """160 random bits, base32: what an authenticator app stores."""
    return pyotp.random_base32(32)


def new_enrolment() -> str:
    """What a session keeps while its authenticator is being set up: 128 random bits, not
    the secret itself (``enrolment_secret`` makes it from them)."""
    return secrets.token_urlsafe(16)


def enrolment_secret(staff_id: int, enrolment: str) -> str:
    """The TOTP secret being set up, made from the session's ``new_enrolment`` under the
    hash key: 160 bits, base32. The session is a signed cookie that whoever holds a copy
    can read; a secret kept in it would give them the second factor for good."""
    digest = bytes.fromhex(keyed_hash("totp-enrolment", f"{staff_id}:{enrolment}"))
    return base64.b32encode(digest[:20]).decode()


def totp_uri(secret: str, email: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step (±1, for clock drift) whose code this is, if any."""
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(step), (code or "").strip()):
            return step
    return None


def verify_totp(staff: StaffMember, code: str, now: datetime) -> bool:
    """Accept a TOTP code once: a step at or before the last accepted one is refused.

    No commit: the step is taken by the caller's commit (a twin request with the same
    code waits on the row and then finds the step taken)."""
    if staff.totp_secret is None:
        return False
    step = _matching_step(staff.totp_secret, code, now)
    if step is None:
        return False
    accepted = db.session.execute(
        update(StaffMember)
        .where(
            StaffMember.id == staff.id,
            or_(StaffMember.totp_last_step.is_(None), StaffMember.totp_last_step < step),
        )
        .values(totp_last_step=step)
    ).rowcount
    return accepted == 1


def enrol_totp(
    staff: StaffMember, secret: str, code: str, now: datetime, replacing: str | None = None
) -> bool:
    """Save a new TOTP secret once the person proves their app shows its codes (no commit).

    Only over the secret the caller saw: none for a first enrolment, ``replacing`` when a
    signed-in person who has just proved the old one sets up a new app. A twin request
    that changed it meanwhile wins; this one saves nothing.
    """
    step = _matching_step(secret, code, now)
    if step is None:
        return False
    current = (
        StaffMember.totp_secret.is_(None)
        if replacing is None
        else StaffMember.totp_secret == replacing
    )
    saved = db.session.execute(
        update(StaffMember)
        .where(StaffMember.id == staff.id, current)
        .values(totp_secret=secret, totp_last_step=step)
        .execution_options(synchronize_session="fetch")
    ).rowcount
    return saved == 1


def record_login(staff: StaffMember, now: datetime) -> None:
    """When the person last signed in (no commit)."""
    staff.last_login_at = now


def _end_sessions(staff: StaffMember) -> None:
    staff.session_version = staff.session_version + 1


def sign_out_everywhere(staff: StaffMember) -> None:
    """End every session of this person, copies of the cookie included (no commit)."""
    _end_sessions(staff)


def sign_out_everyone() -> int:
    """End every staff member's every session (after a signing key leaked: a cookie signed
    with it names an account and its session version); how many accounts. No commit."""
    members = all_staff()
    for staff in members:
        _end_sessions(staff)
    return len(members)


def disable(staff: StaffMember, now: datetime) -> None:
    """Shut the account: its live sessions end at once (no commit)."""
    staff.disabled_at = now
    _end_sessions(staff)


def set_password(staff: StaffMember, password: str) -> None:
    """A new password (checked); live sessions end (no commit)."""
    check_password(password, staff.email)
    staff.password_hash = password_hasher().hash(password)
    _end_sessions(staff)


def reset_totp(staff: StaffMember) -> None:
    """Recovery by another admin: the person enrols a new authenticator at next login
    (no commit)."""
    staff.totp_secret, staff.totp_last_step = None, None
    _end_sessions(staff)


def from_session_token(token: str) -> StaffMember | None:
    """The staff member a session belongs to, if it is still valid (not disabled, not reset)."""
    staff_id, _, version = (token or "").partition(":")
    if not staff_id.isdigit() or not version.isdigit():
        return None
    staff = db.session.get(StaffMember, int(staff_id))
    if staff is None or staff.disabled_at is not None or staff.session_version != int(version):
        return None
    return staff
