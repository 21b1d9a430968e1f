"""The fingerprint of the hash key the register's hashes are made with (``register_keys``):
a register does not take another HASH_KEY silently. The first check after this migration
records the key in use (``register.keys``).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from viihde.models.base import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "register_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_register_keys_name")),
    )


def downgrade() -> None:
    op.drop_table("register_keys")
