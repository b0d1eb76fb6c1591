"""Escalated excerpts in the store, on SQLite and PostgreSQL: sealed at rest (the row's bytes
are not the audio), attached to the session's review item, every read audited, unreadable
under another key, deleted at their retention by the purge."""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select, text
from sqlmodel import Session

from engine.core.models import DecisionRequest
from engine.service.runtime import Runtime
from engine.store import excerpts
from engine.store.db import make_engine, migrate
from engine.store.events import utcnow
from engine.store.keys import Principal
from engine.store.retention import purge
from engine.store.tables import AuditReadRow, EscalatedExcerptRow, ReviewItemRow
from tests.engine.service.conftest import make_settings, review_body

REVIEWER = Principal(key_id="k_reviewer", role="review")


def _key() -> excerpts.ExcerptKey:
    return excerpts.ExcerptKey(base64.urlsafe_b64encode(os.urandom(32)).decode())


def _pcm(seconds: float = 1.0) -> bytes:
    t = np.arange(int(seconds * 16_000)) / 16_000
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()


def _review_item(db_url: str, session_id: str) -> str:
    rt = Runtime(make_settings(db_url))
    rt.start()
    try:
        asyncio.run(rt.decide(DecisionRequest.model_validate(review_body(session_id))))
    finally:
        rt.stop()
    engine = make_engine(db_url)
    with Session(engine) as s:
        item = s.execute(select(ReviewItemRow)).scalars().all()
    engine.dispose()
    [row] = [i for i in item if i.checklist]  # the one review item of this fresh store
    return row.id


def _audits(engine, what_prefix: str) -> list[AuditReadRow]:
    with Session(engine) as s:
        rows = s.execute(select(AuditReadRow)).scalars().all()
    return [r for r in rows if r.what.startswith(what_prefix)]


def test_sealed_attached_audited_and_purged(any_db: str) -> None:
    item_id = _review_item(any_db, "call-escalated")
    engine = make_engine(any_db)
    migrate(engine)
    key, pcm = _key(), _pcm()
    excerpt_id = excerpts.store(
        engine,
        key,
        session_id="call-escalated",
        decision_id="d" * 32,
        policy_id="support-password-reset",
        policy_version="1.1.0",
        pcm16=pcm,
        sample_rate=16_000,
        retention_days=7,
    )
    # At rest: nonce + ciphertext + tag, and no stretch of the audio in it.
    with engine.connect() as conn:
        sealed = bytes(
            conn.execute(
                text("SELECT sealed FROM escalated_excerpts WHERE id = :i"), {"i": excerpt_id}
            ).scalar_one()
        )
    assert len(sealed) == len(pcm) + 12 + 16
    assert pcm[1000:1064] not in sealed and sealed[12:-16] != pcm

    listed = excerpts.for_review(engine, item_id, REVIEWER, "req-1")
    assert listed is not None and [e.id for e in listed] == [excerpt_id]
    assert listed[0].duration_ms == 1000
    info, audio = excerpts.read(engine, key, item_id, excerpt_id, REVIEWER, "req-2")  # type: ignore[misc]
    assert audio == pcm and info.session_id == "call-escalated"
    [audit] = _audits(engine, f"review:{item_id}:excerpt:")
    assert (audit.key_id, audit.role, audit.request_id, audit.count) == (
        "k_reviewer",
        "review",
        "req-2",
        1,
    )
    assert _audits(engine, f"review:{item_id}:excerpts")  # listing is a read too

    # Another item's id does not open it; another key does not either (and says so).
    assert excerpts.read(engine, key, "0" * 24, excerpt_id, REVIEWER) is None
    with pytest.raises(excerpts.ExcerptUnreadable):
        excerpts.read(engine, _key(), item_id, excerpt_id, REVIEWER)
    # Without a configured key: an unknown excerpt is just not there; a real one is refused.
    assert excerpts.read(engine, None, item_id, "f" * 32, REVIEWER) is None
    with pytest.raises(excerpts.EscalationKeyMissing):
        excerpts.read(engine, None, item_id, excerpt_id, REVIEWER)

    assert purge(engine, utcnow() + timedelta(days=6)).excerpts_deleted == 0
    report = purge(engine, utcnow() + timedelta(days=7, minutes=1))
    assert report.excerpts_deleted == 1
    assert "1 escalated excerpts deleted" in report.line()
    with Session(engine) as s:
        assert s.execute(select(EscalatedExcerptRow)).scalars().all() == []
    engine.dispose()


def test_a_malformed_key_is_refused_without_showing_it() -> None:
    with pytest.raises(excerpts.ExcerptKeyInvalid) as err:
        excerpts.ExcerptKey("c2hvcnQ")  # 5 bytes
    assert "c2hvcnQ" not in str(err.value)
    key = _key()
    assert repr(key) == f"ExcerptKey(key_id={key.key_id})"
