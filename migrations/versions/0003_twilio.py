"""Twilio: delivery status callbacks, inbound replies, send attempts and the 'sending' state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Generated, then edited by hand: plain DateTime types and the CHECK constraints
(autogenerate does not see them).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("message_sid", sa.String(length=64), nullable=False),
        sa.Column("phone_e164", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("keyword", sa.String(length=16), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint(
            "provider", "message_sid", name=op.f("uq_inbound_messages_provider_message_sid")
        ),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbound_messages_phone_e164"), ["phone_e164"], unique=False
        )

    op.create_table(
        "sms_status_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_sid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_status_events")),
        sa.UniqueConstraint(
            "message_sid", "status", name=op.f("uq_sms_status_events_message_sid_status")
        ),
    )
    with op.batch_alter_table("sms_status_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sms_status_events_message_sid"), ["message_sid"], unique=False
        )

    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(op.f("ck_sms_messages_status"), type_="check")
        batch_op.create_check_constraint(
            "status",
            "status IN ('queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed')",
        )
        batch_op.create_check_constraint("attempts_non_negative", "attempts >= 0")

    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms_message_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_verifications_sms_message_id_sms_messages"),
            "sms_messages",
            ["sms_message_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_verifications_sms_message_id_sms_messages"), type_="foreignkey"
        )
        batch_op.drop_column("sms_message_id")

    op.execute("UPDATE sms_messages SET status = 'queued' WHERE status = 'sending'")
    with op.batch_alter_table("sms_messages", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_sms_messages_attempts_non_negative"), type_="check")
        batch_op.drop_constraint(op.f("ck_sms_messages_status"), type_="check")
        batch_op.create_check_constraint(
            "status", "status IN ('queued', 'sent', 'delivered', 'undelivered', 'failed')"
        )
        batch_op.drop_column("sent_at")
        batch_op.drop_column("attempts")

    with op.batch_alter_table("sms_status_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_status_events_message_sid"))

    op.drop_table("sms_status_events")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_messages_phone_e164"))

    op.drop_table("inbound_messages")
