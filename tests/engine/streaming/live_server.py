"""What every live-stream test server fixture shares: the server, its keys and its
decision log (SQLite), read the way the tests check what a stream left behind."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from tests.engine.service.conftest import Server


class LiveServer:
    #: The stream route this fixture's client speaks.
    route = ""

    def __init__(self, server: Server, keys: dict[str, str], db: Path) -> None:
        self.server = server
        self.keys = keys
        self.db = db
        self.ws_url = server.url.replace("http://", "ws://") + self.route

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, args).fetchall()]

    def rows(self, session_id: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT * FROM decision_events WHERE session_id = ? ORDER BY decided_at", session_id
        )

    def wait_final(self, session_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            finals = [r for r in self.rows(session_id) if r["request_id"] == "live:final"]
            if finals:
                return finals[0]
            time.sleep(0.05)
        raise AssertionError(f"no final decision stored for {session_id}")


async def follow_feed(
    srv: Server,
    key: str,
    session_id: str,
    out: list[tuple[str, dict[str, Any]]],
    ready: asyncio.Event,
    ready_on_first_event: bool = False,
) -> None:
    """An agent's SSE feed of ``session_id`` on ``srv``, retried while it is not yet known;
    every event goes into ``out`` as (event name, data) until ``end``. ``ready`` is set when
    the feed is open, or with ``ready_on_first_event`` when its first event arrived."""
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{srv.url}/v1/sessions/{session_id}/events"
    async with httpx.AsyncClient(timeout=30) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with client.stream("GET", url, headers=headers) as resp:
                if resp.status_code == 404:
                    await asyncio.sleep(0.05)
                    continue
                assert resp.status_code == 200, await resp.aread()
                if not ready_on_first_event:
                    ready.set()
                kind = ""
                async for line in resp.aiter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        out.append((kind, json.loads(line[6:])))
                        ready.set()
                        if kind == "end":
                            return
                return
        raise AssertionError(f"{session_id} never appeared on {srv.url}")
