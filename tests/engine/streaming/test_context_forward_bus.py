"""The control channel itself, between two session buses on the real PostgreSQL: a
decision larger than one NOTIFY payload reaches the asking replica whole (sent in parts)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from engine.store.db import make_engine, migrate
from engine.streaming.events import MAX_PAYLOAD_BYTES, PgSessionBus
from tests.engine.service.conftest import pg_url  # noqa: F401

#: Several payloads' worth once in base64, with characters JSON would escape.
BIG = json.dumps({"summary": 'é"' * 6_000})


async def _forward(url: str) -> tuple[str | None, list[tuple[str, dict[str, Any]]]]:
    owner, asking = PgSessionBus(url), PgSessionBus(url)
    applied: list[tuple[str, dict[str, Any]]] = []

    async def handler(session_id: str, update: dict[str, Any]) -> str:
        applied.append((session_id, update))
        return BIG

    owner.serve_context(handler)
    await owner.start()
    await asking.start()
    try:
        assert await owner.claim("call-bus-big", "twilio")
        got = await asking.forward_context("call-bus-big", {"device": {"posture": "known"}}, 5.0)
    finally:
        await asking.stop()
        await owner.stop()
    return got, applied


def test_a_decision_larger_than_one_notify_reaches_the_asking_replica_whole(
    pg_url: str,  # noqa: F811
) -> None:
    engine = make_engine(pg_url)
    migrate(engine)
    engine.dispose()
    assert len(BIG.encode()) > 2 * MAX_PAYLOAD_BYTES
    got, applied = asyncio.run(_forward(pg_url))
    assert applied == [("call-bus-big", {"device": {"posture": "known"}})]
    assert got == BIG
