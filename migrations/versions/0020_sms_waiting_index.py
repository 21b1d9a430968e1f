"""A partial index of the SMS log's messages not yet handed to the provider (queued or
sending): the outbox sweep (every worker, every minute) and the backlog gauge
(``viihde_sms_oldest_waiting_seconds``) read those few, not the whole log.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

WAITING = sa.text("status IN ('queued', 'sending')")


def upgrade() -> None:
    op.create_index(
        "ix_sms_messages_waiting",
        "sms_messages",
        ["created_at"],
        postgresql_where=WAITING,
        sqlite_where=WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_sms_messages_waiting", table_name="sms_messages")
