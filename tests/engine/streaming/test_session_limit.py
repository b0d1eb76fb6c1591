"""What one replica holds for live streams is bounded: past its session limit a new stream
gets "try again later"; a started stream that goes silent gives its slot back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.engine.service.conftest import Server, make_keys
from tests.engine.streaming.conftest import connected, params, start, stop


@pytest.fixture(scope="module")
def one_session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    tmp: Path = tmp_path_factory.mktemp("limit")
    url = f"sqlite:///{tmp / 'liveguard.db'}"
    key = make_keys(url, "decide")["decide"]
    srv = Server(
        url,
        tmp / "server.log",
        env={"LIVEGUARD_MAX_LIVE_SESSIONS": "1", "LIVEGUARD_STREAM_IDLE_TIMEOUT_S": "1"},
    )
    srv.start(timeout=60.0)
    yield srv, key
    srv.stop()


async def live_session(ws_url: str, key: str, session_id: str) -> None:
    """Wait until the server has registered the session (its context answers)."""
    url = ws_url.replace("ws://", "http://").replace("/v1/streams/twilio", "")
    async with httpx.AsyncClient() as c:
        for _ in range(200):
            r = await c.put(
                f"{url}/v1/sessions/{session_id}/context",
                headers={"Authorization": f"Bearer {key}"},
                json={},
            )
            if r.status_code == 200:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"session {session_id} never started")


async def _second_stream(ws_url: str, key: str) -> tuple[int | None, str | None]:
    first_call, second_call = "CA" + "1" * 31 + "0", "CA" + "2" * 31 + "0"
    async with websockets.connect(ws_url) as first:
        await first.send(connected())
        await first.send(start(first_call, params(key)))
        await live_session(ws_url, key, first_call)
        async with websockets.connect(ws_url) as second:
            await second.send(connected())
            await second.send(start(second_call, params(key)))
            try:
                async for _ in second:
                    pass
            except websockets.ConnectionClosed:
                pass
            refused = second.close_code, second.close_reason
        await first.send(stop(first_call))
        # The server closes once the session has ended: its slot is free again after that.
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _ in first:
                pass
    return refused


def test_a_stream_past_the_session_limit_is_told_to_try_again(
    one_session_server: tuple[Server, str],
) -> None:
    srv, key = one_session_server
    ws_url = srv.url.replace("http://", "ws://") + "/v1/streams/twilio"
    code, reason = asyncio.run(_second_stream(ws_url, key))
    assert code == 1013
    assert reason is not None and "max_live_sessions" in reason


async def _silent_stream(ws_url: str, key: str) -> tuple[int | None, str | None]:
    call = "CA" + "3" * 31 + "0"
    async with websockets.connect(ws_url) as ws:
        await ws.send(connected())
        await ws.send(start(call, params(key)))
        try:
            async for _ in ws:  # and then nothing more is sent
                pass
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason


def test_a_silent_stream_is_closed(one_session_server: tuple[Server, str]) -> None:
    srv, key = one_session_server
    ws_url = srv.url.replace("http://", "ws://") + "/v1/streams/twilio"
    assert asyncio.run(_silent_stream(ws_url, key)) == (1008, "no message for 1 s")
