"""Indexes for the SMS budget breaker: messages and confirmations by time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_sms_messages_created_at", "sms_messages", ["created_at"])
    op.create_index("ix_verifications_consumed_at", "verifications", ["consumed_at"])


def downgrade():
    op.drop_index("ix_verifications_consumed_at", table_name="verifications")
    op.drop_index("ix_sms_messages_created_at", table_name="sms_messages")
