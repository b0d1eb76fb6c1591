"""escalated excerpts (stage 2: sealed raw audio for human review)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalated_excerpts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("policy_id", sa.String(length=200), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("escalated_excerpts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_escalated_excerpts_session_id"), ["session_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_escalated_excerpts_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("escalated_excerpts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escalated_excerpts_expires_at"))
        batch_op.drop_index(batch_op.f("ix_escalated_excerpts_session_id"))
    op.drop_table("escalated_excerpts")
