"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 17:53:16.027419
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "audit_reads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("what", sa.String(length=500), nullable=False),
        sa.Column("decision_ids", sa.JSON(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_reads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_reads_at"), ["at"], unique=False)

    op.create_table(
        "decision_events",
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("policy_id", sa.String(length=200), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("policy_digest", sa.String(length=80), nullable=False),
        sa.Column("policy_engine", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("risk", sa.Float(), nullable=False),
        sa.Column("degraded", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("input", sa.JSON(), nullable=True),
        sa.Column("signals", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=True),
        sa.Column("retention", sa.JSON(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("redact_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("decision_id"),
    )
    with op.batch_alter_table("decision_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_decision_events_decided_at"), ["decided_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_decision_events_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_decision_events_policy_id"), ["policy_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_decision_events_redact_at"), ["redact_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_decision_events_session_id"), ["session_id"], unique=False
        )

    op.create_table(
        "review_items",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("policy_id", sa.String(length=200), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checklist", sa.JSON(), nullable=True),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("resolved_by", sa.String(length=32), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("decision_id"),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_review_items_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_review_items_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_review_items_policy_id"), ["policy_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_items_status"), ["status"], unique=False)

    op.create_table(
        "shadow_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy_id", sa.String(length=200), nullable=False),
        sa.Column("candidate", sa.String(length=500), nullable=False),
        sa.Column("live_version", sa.String(length=64), nullable=False),
        sa.Column("live_digest", sa.String(length=80), nullable=False),
        sa.Column("shadow_version", sa.String(length=64), nullable=False),
        sa.Column("shadow_digest", sa.String(length=80), nullable=False),
        sa.Column("live_action", sa.String(length=16), nullable=False),
        sa.Column("shadow_action", sa.String(length=16), nullable=False),
        sa.Column("live_risk", sa.Float(), nullable=False),
        sa.Column("shadow_risk", sa.Float(), nullable=False),
        sa.Column("agree", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("shadow_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_shadow_results_decided_at"), ["decided_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_shadow_results_decision_id"), ["decision_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_shadow_results_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_shadow_results_policy_id"), ["policy_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("shadow_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shadow_results_policy_id"))
        batch_op.drop_index(batch_op.f("ix_shadow_results_expires_at"))
        batch_op.drop_index(batch_op.f("ix_shadow_results_decision_id"))
        batch_op.drop_index(batch_op.f("ix_shadow_results_decided_at"))

    op.drop_table("shadow_results")
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_items_status"))
        batch_op.drop_index(batch_op.f("ix_review_items_policy_id"))
        batch_op.drop_index(batch_op.f("ix_review_items_expires_at"))
        batch_op.drop_index(batch_op.f("ix_review_items_created_at"))

    op.drop_table("review_items")
    with op.batch_alter_table("decision_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_events_session_id"))
        batch_op.drop_index(batch_op.f("ix_decision_events_redact_at"))
        batch_op.drop_index(batch_op.f("ix_decision_events_policy_id"))
        batch_op.drop_index(batch_op.f("ix_decision_events_expires_at"))
        batch_op.drop_index(batch_op.f("ix_decision_events_decided_at"))

    op.drop_table("decision_events")
    with op.batch_alter_table("audit_reads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_reads_at"))

    op.drop_table("audit_reads")
    op.drop_table("api_keys")
