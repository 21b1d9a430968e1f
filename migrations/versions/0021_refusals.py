"""Refusals: a STOP texted by a number the register did not hold, kept as a keyed hash of
the number and when (``models.Refusal``), so that a purchase from before it brings no
marketing however long the SMS log keeps the reply (the replies it keeps still count:
``purchases.stopped_since`` reads both).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from viihde.models.base import UTCDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refusals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("refused_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refusals")),
    )
    op.create_index(op.f("ix_refusals_phone_hash"), "refusals", ["phone_hash"])


def downgrade() -> None:
    op.drop_index(op.f("ix_refusals_phone_hash"), table_name="refusals")
    op.drop_table("refusals")
