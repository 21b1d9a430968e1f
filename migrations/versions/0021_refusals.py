"""Refusals: every STOP texted to us, kept as a keyed hash of the number and when
(``models.Refusal``), so that a purchase from before it brings no marketing however long
the SMS log keeps the reply; a START lifts it. The replies the log keeps now are turned
into refusals here (each number's last STOP with no START after it), so that the refusals
are the one place ``purchases.stopped_since`` reads.

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
    refusals = op.create_table(
        "refusals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("refused_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refusals")),
    )
    op.create_index(op.f("ix_refusals_phone_hash"), "refusals", ["phone_hash"])
    stops = _standing_stops()
    if stops:
        op.bulk_insert(refusals, stops)


def _standing_stops() -> list[dict]:
    """Each number's last STOP or START in the kept replies, where it is a STOP, as a
    refusal (hashed under the app's hash key, as the app hashes: ``flask db upgrade``
    runs in the app)."""
    from viihde.hashing import hash_key
    from viihde.register.erasure import tombstone_hash

    replies = sa.table(
        "inbound_messages",
        sa.column("id", sa.Integer()),
        sa.column("phone_e164", sa.String()),
        sa.column("keyword", sa.String()),
        sa.column("received_at", UTCDateTime()),
    )
    rows = op.get_bind().execute(
        sa.select(replies.c.phone_e164, replies.c.keyword, replies.c.received_at)
        .where(replies.c.keyword.in_(("stop", "start")))
        .order_by(replies.c.received_at, replies.c.id)
    )
    last = {phone: (keyword, at) for phone, keyword, at in rows}
    if not last:
        return []
    key = hash_key()
    return [
        {"phone_hash": tombstone_hash(phone, key), "refused_at": at}
        for phone, (keyword, at) in last.items()
        if keyword == "stop"
    ]


def downgrade() -> None:
    op.drop_index(op.f("ix_refusals_phone_hash"), table_name="refusals")
    op.drop_table("refusals")
