"""audiohook nonces (a signed upgrade's nonce refused on every replica once used)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audiohook_nonces",
        sa.Column("nonce", sa.String(length=256), nullable=False),
        sa.Column("valid_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("nonce"),
    )
    with op.batch_alter_table("audiohook_nonces", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audiohook_nonces_valid_until"), ["valid_until"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audiohook_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audiohook_nonces_valid_until"))
    op.drop_table("audiohook_nonces")
