"""Escalated excerpts: raw caller audio sealed for human review (stage 2, issue 13 point 4).

An excerpt is stored only when the live runtime escalates (the policy's data-flow manifest
allows raw-media escalation, the caller consented, a key is configured); here it is sealed
with AES-256-GCM under ``LIVEGUARD_ESCALATION_KEY`` (a fresh 96-bit nonce per excerpt, the
excerpt and session ids as associated data, so a sealed blob moved onto another row does
not open). The key never reaches a log or a row: rows carry an 8-byte fingerprint of it
(``key_id``), so an excerpt sealed under a rotated-out key is refused by name, not garbled.

Reading is audited before anything is returned (``audit.record_read``); the excerpt is
attached to the review item of its session (review item → its decision → the session).
Deleted at its retention by ``retention.purge``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import secrets
import wave
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, delete, insert, select
from sqlmodel import Session

from engine.core.errors import LiveguardError
from engine.store.audit import record_read
from engine.store.events import utcnow
from engine.store.keys import Principal
from engine.store.tables import DecisionEventRow, EscalatedExcerptRow, ReviewItemRow

_TABLE = EscalatedExcerptRow.__table__  # type: ignore[attr-defined]
_NONCE = 12


class ExcerptKeyInvalid(ValueError):
    code = "escalation_key_invalid"


class EscalationKeyMissing(LiveguardError):
    """An excerpt exists but this replica has no key to open it (a configuration fault)."""

    code = "escalation_key_missing"
    http_status = 503


class ExcerptUnreadable(LiveguardError):
    """The excerpt was sealed under another key (rotated out), or its blob was altered."""

    code = "excerpt_unreadable"
    http_status = 409


class ExcerptKey:
    """The AES-256-GCM key: 32 bytes, given as URL-safe base64 (``openssl rand -base64
    32 | tr '+/' '-_'``). Its repr shows the fingerprint only."""

    def __init__(self, encoded: str) -> None:
        try:
            raw = base64.urlsafe_b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4))
        except (binascii.Error, ValueError):
            raise ExcerptKeyInvalid("escalation_key: not base64") from None
        if len(raw) != 32:
            raise ExcerptKeyInvalid("escalation_key: expected 32 bytes (AES-256)")
        self._aead = AESGCM(raw)
        self.key_id = hashlib.sha256(b"liveguard-excerpt-key:" + raw).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"ExcerptKey(key_id={self.key_id})"

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
        except InvalidTag:
            raise ExcerptUnreadable("the excerpt does not open under this key") from None


def _aad(excerpt_id: str, session_id: str) -> bytes:
    return f"liveguard-excerpt:v1:{excerpt_id}:{session_id}".encode()


@dataclass(frozen=True, slots=True)
class ExcerptInfo:
    id: str
    session_id: str
    decision_id: str
    policy_id: str
    policy_version: str
    created_at: datetime
    expires_at: datetime
    sample_rate: int
    duration_ms: int


def _info(row: EscalatedExcerptRow) -> ExcerptInfo:
    return ExcerptInfo(
        row.id,
        row.session_id,
        row.decision_id,
        row.policy_id,
        row.policy_version,
        row.created_at,
        row.expires_at,
        row.sample_rate,
        row.duration_ms,
    )


def store(
    engine: Engine,
    key: ExcerptKey,
    *,
    session_id: str,
    decision_id: str,
    policy_id: str,
    policy_version: str,
    pcm16: bytes,
    sample_rate: int,
    retention_days: int,
) -> str:
    """Seal and insert one excerpt (PCM16 LE mono); its id."""
    excerpt_id = secrets.token_hex(12)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(_TABLE),
            {
                "id": excerpt_id,
                "session_id": session_id,
                "decision_id": decision_id,
                "policy_id": policy_id,
                "policy_version": policy_version,
                "created_at": now,
                "expires_at": now + timedelta(days=retention_days),
                "sample_rate": sample_rate,
                "duration_ms": len(pcm16) // 2 * 1000 // sample_rate,
                "key_id": key.key_id,
                "sealed": key.seal(pcm16, _aad(excerpt_id, session_id)),
            },
        )
    return excerpt_id


def _review_session(engine: Engine, item_id: str) -> str | None:
    """The session of a review item (through its decision), or None for no such item."""
    with Session(engine) as s:
        return s.execute(
            select(DecisionEventRow.session_id)
            .join(ReviewItemRow, ReviewItemRow.decision_id == DecisionEventRow.decision_id)  # type: ignore[arg-type]
            .where(ReviewItemRow.id == item_id)  # type: ignore[arg-type]
        ).scalar_one_or_none()


def for_review(
    engine: Engine, item_id: str, who: Principal, request_id: str | None = None
) -> list[ExcerptInfo] | None:
    """The live excerpts attached to a review item (None: no such item). Listing them is a
    read of personal data (which sessions were escalated, when), so it is audited too."""
    session_id = _review_session(engine, item_id)
    if session_id is None:
        return None
    with Session(engine) as s:
        rows = s.execute(
            select(EscalatedExcerptRow)
            .where(EscalatedExcerptRow.session_id == session_id)  # type: ignore[arg-type]
            .where(EscalatedExcerptRow.expires_at > utcnow())  # type: ignore[arg-type,operator]
            .order_by(EscalatedExcerptRow.created_at)  # type: ignore[arg-type]
            .limit(100)
        ).scalars()
        out = [_info(r) for r in rows]
    record_read(engine, who, f"review:{item_id}:excerpts", [e.decision_id for e in out], request_id)
    return out


def read(
    engine: Engine,
    key: ExcerptKey | None,
    item_id: str,
    excerpt_id: str,
    who: Principal,
    request_id: str | None = None,
) -> tuple[ExcerptInfo, bytes] | None:
    """(its info, the PCM16) of an excerpt attached to review item ``item_id``; None when
    there is no such excerpt on that item. The read is recorded before it is returned.

    Without a key (``None``) an unknown excerpt is still None (404 to the caller: nothing
    to open, nothing about the configuration told); an existing one is refused."""
    session_id = _review_session(engine, item_id)
    with Session(engine) as s:
        row = s.get(EscalatedExcerptRow, excerpt_id)
        found = (
            row is not None
            and session_id is not None
            and row.session_id == session_id
            and row.expires_at > utcnow()
        )
        info = _info(row) if found and row is not None else None
        sealed = bytes(row.sealed) if found and row is not None else b""
        sealed_by = row.key_id if row is not None else ""
    what = f"review:{item_id}:excerpt:{excerpt_id}"
    record_read(engine, who, what, [info.decision_id] if info else [], request_id)
    if info is None:
        return None
    if key is None:
        raise EscalationKeyMissing("no LIVEGUARD_ESCALATION_KEY: excerpts cannot be opened")
    if sealed_by != key.key_id:
        raise ExcerptUnreadable(
            f"the excerpt was sealed under key {sealed_by}, not the configured {key.key_id}"
        )
    return info, key.open(sealed, _aad(info.id, info.session_id))


def wav(pcm16: bytes, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm16)
    return buf.getvalue()


def purge(engine: Engine, now: datetime) -> int:
    with engine.begin() as conn:
        res = conn.execute(delete(_TABLE).where(_TABLE.c.expires_at <= now))
        return res.rowcount or 0
