"""What every live-stream test server fixture shares: the server, its keys and its
decision log (SQLite), read the way the tests check what a stream left behind."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

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
