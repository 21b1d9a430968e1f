"""The SMS log keeps preference links without their tokens.

A live link lets whoever reads it act as the person (support, an export, a backup), so
every link in a logged message becomes ``.../[link]``, as new messages are logged from
now on. The pattern is a frozen copy of ``viihde.tokens``' at this revision. Not
reversible: the tokens are gone (they are signatures, re-made from the key when needed).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TOKEN_IN_LINK = re.compile(r"(?<=/)[A-Za-z0-9_-]{2,8}\.[A-Za-z0-9_-]{16}(?![A-Za-z0-9_-])")
BATCH = 1000

messages = sa.table("sms_messages", sa.column("id", sa.Integer), sa.column("body", sa.Text))


def upgrade():
    connection = op.get_bind()
    last = 0
    while True:
        rows = connection.execute(
            sa.select(messages.c.id, messages.c.body)
            .where(messages.c.id > last)
            .order_by(messages.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for message_id, body in rows:
            redacted = TOKEN_IN_LINK.sub("[link]", body or "")
            if redacted != (body or ""):
                connection.execute(
                    messages.update().where(messages.c.id == message_id).values(body=redacted)
                )
        last = rows[-1][0]


def downgrade():
    pass  # the tokens are gone for good
