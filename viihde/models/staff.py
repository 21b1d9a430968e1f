"""Staff accounts, the audit log of what they (and the command line) did, and API tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from viihde.extensions import db
from viihde.models.base import AppendOnly, OutsideText, UTCDateTime, one_of


class AuditAction(StrEnum):
    """What an audit entry records (``AuditEntry.action``)."""

    # A person's data, in the console, at the command line or through the API.
    SEARCH = "search"
    VIEW_CARD = "view_card"
    WITHDRAW = "withdraw"
    SEND_LINK = "send_link"
    EXPORT = "export"
    ERASE = "erase"
    AUDIENCE_EXPORT = "audience_export"
    API_AUDIENCE = "api_audience"
    # The register's files and upkeep.
    SYNC_HOLDERS = "sync_holders"
    IMPORT_CUSTOMERS = "import_customers"
    PURGE = "purge"
    END_CUSTOMER_GRANTS = "end_customer_grants"
    # Campaigns.
    CREATE_CAMPAIGN = "create_campaign"
    EDIT_CAMPAIGN = "edit_campaign"
    TEST_SEND_CAMPAIGN = "test_send_campaign"
    START_CAMPAIGN = "start_campaign"
    PAUSE_CAMPAIGN = "pause_campaign"
    RESUME_CAMPAIGN = "resume_campaign"
    CANCEL_CAMPAIGN = "cancel_campaign"
    # Staff: signing in, accounts, tokens and the log itself.
    LOGIN = "login"
    LOGOUT = "logout"
    ENROL_TOTP = "enrol_totp"
    REPLACE_TOTP = "replace_totp"
    RESET_TOTP = "reset_totp"
    RESET_PASSWORD = "reset_password"  # noqa: S105  # nosec B105 (a name, not a secret)
    CREATE_STAFF = "create_staff"
    DISABLE_STAFF = "disable_staff"
    CREATE_API_TOKEN = "create_api_token"  # noqa: S105  # nosec B105
    REVOKE_API_TOKEN = "revoke_api_token"  # noqa: S105  # nosec B105
    READ_AUDIT_LOG = "read_audit_log"


class StaffMember(UserMixin, db.Model):
    """A named person who may use the support console (no sign-up: created by CLI)."""

    __tablename__ = "staff_members"
    __table_args__ = (CheckConstraint("role IN ('support', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Looked up by what the sign-in form got: NUL characters are dropped (PostgreSQL refuses them).
    email: Mapped[str] = mapped_column(OutsideText(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # argon2id (argon2-cffi's defaults); never the password itself.
    password_hash: Mapped[str] = mapped_column(String(255))
    # The TOTP secret (base32), once enrolled; and the last time step accepted, so a
    # code works only once.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # Bumped by logout-everywhere, disabling and resets: live sessions end at once.
    session_version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def get_id(self) -> str:
        """Flask-Login's session key: id and session version, so a bump logs out."""
        return f"{self.id}:{self.session_version}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class AuditEntry(AppendOnly, db.Model):
    """One read or action on a person's data, or on staff accounts. Append-only."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_subject_hash", "subject_hash"),
        CheckConstraint(one_of("action", AuditAction), name="action"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_members.id"))
    # Who: the staff member's email, "cli:<os user>" for the command line, "api:<token>".
    actor: Mapped[str] = mapped_column(OutsideText(254))  # filtered by what an admin types
    action: Mapped[str] = mapped_column(OutsideText(32), index=True)  # an AuditAction
    # Whose number: the same keyed hash an erasure leaves, and a masked form to read.
    subject_hash: Mapped[str | None] = mapped_column(String(64))
    subject_masked: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(OutsideText(500))
    ip: Mapped[str | None] = mapped_column(String(45))


class ApiToken(db.Model):
    """A bearer token for the company's campaign tool, created by an admin. Only a keyed
    hash of the token is kept: it is shown once, when created."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_members.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_by: Mapped[StaffMember | None] = relationship()
