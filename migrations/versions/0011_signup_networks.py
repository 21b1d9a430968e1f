"""Where each sign-up code came from (``verifications.network``, ``wide_network``), so the
sign-up breaker tightens the networks whose codes go unconfirmed instead of pausing
everyone.

Plain ALTER TABLE (no batch mode): verifications has no trigger to lose, and SQLite has
had ADD and DROP COLUMN since 3.35.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("verifications", sa.Column("network", sa.String(43), nullable=True))
    op.add_column("verifications", sa.Column("wide_network", sa.String(43), nullable=True))
    op.create_index("ix_verifications_network_created", "verifications", ["network", "created_at"])
    op.create_index(
        "ix_verifications_wide_network_created", "verifications", ["wide_network", "created_at"]
    )


def downgrade():
    op.drop_index("ix_verifications_wide_network_created", table_name="verifications")
    op.drop_index("ix_verifications_network_created", table_name="verifications")
    op.drop_column("verifications", "wide_network")
    op.drop_column("verifications", "network")
