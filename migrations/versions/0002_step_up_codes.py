"""Step-up codes: a verification is for a sign-up or for proving the number again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Generated, then edited by hand: the CHECK on kind (autogenerate does not see it).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="signup", nullable=False)
        )
        batch_op.alter_column(
            "consent_text_version", existing_type=sa.VARCHAR(length=32), nullable=True
        )
        batch_op.create_check_constraint("kind", "kind IN ('signup', 'step_up')")


def downgrade():
    op.execute("DELETE FROM verifications WHERE kind = 'step_up'")
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_verifications_kind"), type_="check")
        batch_op.alter_column(
            "consent_text_version", existing_type=sa.VARCHAR(length=32), nullable=False
        )
        batch_op.drop_column("kind")
