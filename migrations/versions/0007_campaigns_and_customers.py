"""Campaigns and their recipients, the basis of each consent event (consent or an
existing customer relationship), and daily sign-up totals kept past the code purge.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


#: SQLite's batch mode rebuilds consent_events and drops the trigger 0001 put on it.
SQLITE_APPEND_ONLY = (
    "CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events "
    "BEGIN SELECT RAISE(ABORT, 'consent_events is append-only'); END"
)


def _keep_sqlite_ledger_append_only():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS consent_events_no_update")
        op.execute(SQLITE_APPEND_ONLY)


def upgrade():
    with op.batch_alter_table("consent_events") as batch:
        batch.add_column(
            sa.Column("basis", sa.String(length=16), server_default="consent", nullable=False)
        )
        batch.add_column(sa.Column("purchased_on", sa.Date(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_consent_events_basis"), "basis IN ('consent', 'customer')"
        )
    _keep_sqlite_ledger_append_only()

    op.create_table(
        "signup_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("campaign", sa.String(length=100), server_default="", nullable=False),
        sa.Column("started", sa.Integer(), server_default="0", nullable=False),
        sa.Column("confirmed", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "started >= 0 AND confirmed >= 0",
            name=op.f("ck_signup_totals_counts_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_totals")),
        sa.UniqueConstraint("day", "campaign", name=op.f("uq_signup_totals_day_campaign")),
    )

    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("body_fi", sa.Text(), nullable=False),
        sa.Column("body_sv", sa.Text(), nullable=False),
        sa.Column("body_en", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="draft", nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_subscriber_id", sa.Integer(), nullable=True),
        sa.Column("cursor", sa.Integer(), server_default="0", nullable=False),
        sa.Column("resume_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'sending', 'paused', 'finished', 'cancelled')",
            name=op.f("ck_campaigns_status"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["staff_members.id"],
            name=op.f("fk_campaigns_created_by_id_staff_members"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )

    op.create_table(
        "campaign_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("sms_message_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('sent', 'skipped')", name=op.f("ck_campaign_messages_status")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_messages_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_campaign_messages_subscriber_id_subscribers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["sms_message_id"],
            ["sms_messages.id"],
            name=op.f("fk_campaign_messages_sms_message_id_sms_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_messages")),
        sa.UniqueConstraint(
            "campaign_id",
            "subscriber_id",
            name=op.f("uq_campaign_messages_campaign_id_subscriber_id"),
        ),
    )
    op.create_index(op.f("ix_campaign_messages_campaign_id"), "campaign_messages", ["campaign_id"])
    op.create_index(
        op.f("ix_campaign_messages_subscriber_id"), "campaign_messages", ["subscriber_id"]
    )


def downgrade():
    op.drop_index(op.f("ix_campaign_messages_subscriber_id"), table_name="campaign_messages")
    op.drop_index(op.f("ix_campaign_messages_campaign_id"), table_name="campaign_messages")
    op.drop_table("campaign_messages")
    op.drop_table("campaigns")
    op.drop_table("signup_totals")
    with op.batch_alter_table("consent_events") as batch:
        batch.drop_constraint(op.f("ck_consent_events_basis"), type_="check")
        batch.drop_column("purchased_on")
        batch.drop_column("basis")
    _keep_sqlite_ledger_append_only()
