"""An index on the SMS log's (kind, created_at): the sign-up budget counts the last day's
messages of every kind but the campaigns' on each code, and on a campaign day the index on
created_at alone made it walk every campaign message of the day too (60,000 campaign
messages: 13 ms a code on PostgreSQL, a sequential scan).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_sms_messages_kind_created_at", "sms_messages", ["kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_sms_messages_kind_created_at", table_name="sms_messages")
