"""An index for support's look-up by the last digits of a number (PostgreSQL).

``LIKE '%234567'`` can use no B-tree, so at a million people every such look-up read
the whole table; the reversed number with text_pattern_ops serves ``LIKE '765432%'``.
SQLite keeps the plain scan (it has no reverse()).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_subscribers_phone_reversed "
            "ON subscribers (reverse(phone_e164) text_pattern_ops)"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_subscribers_phone_reversed")
