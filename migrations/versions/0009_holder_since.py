"""When a number last passed to a new holder (``subscribers.holder_since``), so the person
holding it now sees only the records of their own holding.

A plain ALTER TABLE on every database, never batch mode: on SQLite batch mode would
rebuild subscribers, and dropping the old table (foreign keys are on) would cascade to
the consent ledger and lose the table's AUTOINCREMENT. SQLite has had ADD and DROP
COLUMN since 3.35; no trigger is on subscribers, and the ledger's stays as it is.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "subscribers", sa.Column("holder_since", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade():
    op.drop_column("subscribers", "holder_since")
