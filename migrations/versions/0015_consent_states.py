"""The current consent state, stored beside the ledger: one row per holding and purpose
with the last event's action, basis, consent text version and time, and that event's id
as its proof. Filled from the ledger's fold (the last event of each holding and purpose);
from now on each ledger append writes it in the same transaction.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: The fold of the ledger: each holding's last event per purpose.
FILL = """
    INSERT INTO consent_states
        (holding_id, purpose, granted, event_id, basis, consent_text_version, changed_at)
    SELECT holding_id, purpose, action = 'grant', id, basis, consent_text_version, created_at
    FROM (
        SELECT id, holding_id, purpose, action, basis, consent_text_version, created_at,
               ROW_NUMBER() OVER (PARTITION BY holding_id, purpose ORDER BY seq DESC) AS n
        FROM consent_events
    ) AS ranked
    WHERE n = 1
"""


def upgrade():
    op.create_table(
        "consent_states",
        sa.Column("holding_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("consent_text_version", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "basis IN ('consent', 'customer')", name=op.f("ck_consent_states_basis")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["consent_events.id"],
            name=op.f("fk_consent_states_event_id_consent_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["holding_id"],
            ["holdings.id"],
            name=op.f("fk_consent_states_holding_id_holdings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("holding_id", "purpose", name=op.f("pk_consent_states")),
    )
    op.create_index(
        op.f("ix_consent_states_event_id"), "consent_states", ["event_id"], unique=False
    )
    op.create_index(
        "ix_consent_states_granted_purpose_holding",
        "consent_states",
        ["purpose", "holding_id"],
        unique=False,
        sqlite_where=sa.text("granted"),
        postgresql_where=sa.text("granted"),
    )
    op.execute(FILL)


def downgrade():
    op.drop_index("ix_consent_states_granted_purpose_holding", table_name="consent_states")
    op.drop_index(op.f("ix_consent_states_event_id"), table_name="consent_states")
    op.drop_table("consent_states")
