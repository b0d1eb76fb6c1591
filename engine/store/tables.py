"""Table models of the decision store (sqlmodel). Never returned from an endpoint.

Times are aware UTC (sqlmodel's ``UTCDateTime``: ``timestamptz`` on PostgreSQL, UTC text
on SQLite). ``engine.store.events`` converts between rows and the domain event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=True))


class DecisionEventRow(SQLModel, table=True):
    """One decision as logged: only the manifest-retained part of its input."""

    __tablename__ = "decision_events"

    decision_id: str = Field(primary_key=True, max_length=64)
    schema_version: int = Field(default=1)
    decided_at: datetime = Field(index=True)
    request_id: str | None = Field(default=None, max_length=64)
    session_id: str = Field(max_length=128, index=True)
    policy_id: str = Field(max_length=200, index=True)
    policy_version: str = Field(max_length=64)
    policy_digest: str = Field(max_length=80)
    policy_engine: str = Field(max_length=16)
    action: str = Field(max_length=16)
    risk: float
    degraded: bool
    error: str | None = Field(default=None)
    input: Any = _json()
    signals: Any = _json()
    result: Any = _json()
    timings: Any = _json()
    retention: Any = _json()
    # Whole event gone at expires_at; some fields may go earlier (redact_at).
    expires_at: datetime = Field(index=True)
    redact_at: datetime | None = Field(default=None, index=True)


class ReviewItemRow(SQLModel, table=True):
    __tablename__ = "review_items"

    id: str = Field(primary_key=True, max_length=32)
    decision_id: str = Field(max_length=64, unique=True)
    policy_id: str = Field(max_length=200, index=True)
    policy_version: str = Field(max_length=64)
    queue: str = Field(max_length=64)
    status: str = Field(max_length=16, index=True)  # open | claimed | resolved
    created_at: datetime = Field(index=True)
    sla_due_at: datetime
    checklist: Any = _json()
    claimed_by: str | None = Field(default=None, max_length=32)
    claimed_at: datetime | None = None
    outcome: str | None = Field(default=None, max_length=32)
    note: str | None = None
    resolved_by: str | None = Field(default=None, max_length=32)
    resolved_at: datetime | None = None
    expires_at: datetime = Field(index=True)


class ShadowResultRow(SQLModel, table=True):
    """A candidate policy's answer to a live request; never the answer the caller got."""

    __tablename__ = "shadow_results"

    id: int | None = Field(default=None, primary_key=True)
    decision_id: str = Field(max_length=64, index=True)
    decided_at: datetime = Field(index=True)
    policy_id: str = Field(max_length=200, index=True)
    candidate: str = Field(max_length=500)
    live_version: str = Field(max_length=64)
    live_digest: str = Field(max_length=80)
    shadow_version: str = Field(max_length=64)
    shadow_digest: str = Field(max_length=80)
    live_action: str = Field(max_length=16)
    shadow_action: str = Field(max_length=16)
    live_risk: float
    shadow_risk: float
    agree: bool
    error: str | None = None
    result: Any = _json()
    expires_at: datetime = Field(index=True)


class ApiKeyRow(SQLModel, table=True):
    """Only the sha256 of a key is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    key_id: str = Field(primary_key=True, max_length=32)
    key_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    label: str = Field(default="", max_length=200)
    created_at: datetime
    revoked_at: datetime | None = None


class AuditReadRow(SQLModel, table=True):
    """Every read of stored decision events, itself stored."""

    __tablename__ = "audit_reads"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    key_id: str = Field(max_length=32)
    role: str = Field(max_length=16)
    request_id: str | None = Field(default=None, max_length=64)
    what: str = Field(max_length=500)
    decision_ids: Any = _json()
    count: int = 0


class LiveSessionRow(SQLModel, table=True):
    """Where a live session streams (PostgreSQL, several replicas): the session directory
    that lets ``GET /v1/sessions/{id}/events`` on one replica follow a call streamed to
    another. A row lives while its call does: deleted at the session's end, and a row its
    replica stopped refreshing (``seen_at``) is expired by any replica. ``last_event`` is
    the latest event the session's subscribers were told (what the SSE feed shows, nothing
    more), so a late subscriber starts from the current state."""

    __tablename__ = "live_sessions"

    session_id: str = Field(primary_key=True, max_length=128)
    replica_id: str = Field(max_length=32, index=True)
    protocol: str = Field(max_length=32)
    started_at: datetime
    seen_at: datetime = Field(index=True)
    seq: int = 0
    last_event: Any = _json()


class EscalatedExcerptRow(SQLModel, table=True):
    """Raw caller audio escalated for human review (stage 2), sealed with AES-GCM: the
    row holds nonce + ciphertext, never the PCM. Only stored where the policy's data-flow
    manifest allows raw-media escalation and the caller consented; at most the manifest's
    ``escalation.max_seconds``; deleted at ``expires_at`` (its ``retention_days``). Attached
    to the session's review item by ``session_id``; every read is audited."""

    __tablename__ = "escalated_excerpts"

    id: str = Field(primary_key=True, max_length=32)
    session_id: str = Field(max_length=128, index=True)
    decision_id: str = Field(max_length=64)  # the decision whose obligation escalated
    policy_id: str = Field(max_length=200)
    policy_version: str = Field(max_length=64)
    created_at: datetime
    expires_at: datetime = Field(index=True)
    sample_rate: int
    duration_ms: int
    key_id: str = Field(max_length=16)  # which key sealed it (a fingerprint, not the key)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AudioHookNonceRow(SQLModel, table=True):
    """A nonce of a verified AudioHook upgrade signature, held until that signature would
    have expired anyway: the same signed upgrade replayed to any replica sharing the store
    is refused (``engine.store.nonces``). ``valid_until`` is epoch seconds, not a datetime:
    it is computed from and compared with the signature's own ``created``/``expires``
    integers, on every backend alike. The nonce is random (what Genesys sends); nothing of
    the call is stored."""

    __tablename__ = "audiohook_nonces"

    nonce: str = Field(primary_key=True, max_length=256)
    valid_until: float = Field(index=True)
