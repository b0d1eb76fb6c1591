"""The native protocol's bounds, in process (the app under TestClient): a client over the
message rate is told once and its excess dropped while the session goes on; one that only
sends bad input is closed after 64 errors; one that never starts is closed in time. Each
still ends as the README says."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from engine.api.app import create_app
from tests.engine.service.conftest import make_keys, make_settings
from tests.engine.streaming.native_client import end, reset_context, start


@pytest.fixture
def make_app(tmp_path: Path) -> Any:
    def make(rate: int, start_timeout_s: float = 10.0) -> tuple[Any, dict[str, str]]:
        db = f"sqlite:///{tmp_path / 'liveguard.db'}"
        keys = make_keys(db, "decide")
        settings = make_settings(
            db,
            live_detectors=["audio.quality"],
            stream_max_messages_per_s=rate,
            stream_start_timeout_s=start_timeout_s,
        )
        return create_app(settings, periodic_purge=False), keys

    return make


def _messages_until_close(ws: Any) -> tuple[list[dict], int]:
    out: list[dict] = []
    while True:
        try:
            out.append(json.loads(ws.receive_text()))
        except WebSocketDisconnect as exc:
            return out, exc.code


def test_over_the_rate_is_told_once_and_dropped(make_app: Any) -> None:
    app, keys = make_app(10)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {keys['decide']}"}
        with client.websocket_connect("/v1/streams/liveguard", headers=headers) as ws:
            ws.send_text(start("bounds-rate", reset_context()))
            assert json.loads(ws.receive_text())["type"] == "started"
            for _ in range(30):  # well past 10 in this second
                ws.send_text(json.dumps({"v": 1, "type": "shout"}))
            time.sleep(1.1)  # the next second: heard again
            ws.send_text(end())
            msgs, code = _messages_until_close(ws)
    errors = [m["code"] for m in msgs if m["type"] == "error"]
    # 9 answered (start was the first of the second's 10), then one rate_limited, the
    # rest dropped unanswered; the session went on and ended at its end.
    assert errors == ["unknown_type"] * 9 + ["rate_limited"]
    assert msgs[-1]["type"] == "ended" and code == 1000


def test_a_client_sending_only_bad_input_is_closed(make_app: Any) -> None:
    app, keys = make_app(10_000)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {keys['decide']}"}
        with client.websocket_connect("/v1/streams/liveguard", headers=headers) as ws:
            ws.send_text(start("bounds-errors", reset_context()))
            assert json.loads(ws.receive_text())["type"] == "started"
            for _ in range(80):
                ws.send_bytes(b"\x09\x00\x00")  # party 9 was never declared
            msgs, code = _messages_until_close(ws)
    errors = [m for m in msgs if m["type"] == "error"]
    assert len(errors) == 64 and {e["code"] for e in errors} == {"unknown_party"}
    assert msgs[-1]["type"] == "ended"  # the final decision, still
    assert code == 1008


def test_no_start_in_time(make_app: Any) -> None:
    app, keys = make_app(10, start_timeout_s=0.5)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {keys['decide']}"}
        with client.websocket_connect("/v1/streams/liveguard", headers=headers) as ws:
            msgs, code = _messages_until_close(ws)
    assert [m["code"] for m in msgs] == ["invalid"] and code == 1008
