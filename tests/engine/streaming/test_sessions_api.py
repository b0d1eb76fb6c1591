"""The context endpoint and the event stream of a live session (no audio needed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import websockets

from tests.engine.streaming.conftest import Live, connected, params, start, stop


@asynccontextmanager
async def session(live: Live, call: str) -> AsyncIterator[None]:
    """A Twilio stream started (no media yet), stopped on exit."""
    async with websockets.connect(live.ws_url) as ws:
        await ws.send(connected())
        await ws.send(start(call, params(live.keys["decide"])))
        async with httpx.AsyncClient() as c:
            h = {"Authorization": f"Bearer {live.keys['decide']}"}
            for _ in range(100):
                r = await c.put(f"{live.server.url}/v1/sessions/{call}/context", headers=h, json={})
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.05)
        yield
        await ws.send(stop(call))


def run(live: Live, call: str, body: Callable[[httpx.AsyncClient], object]) -> object:
    async def go() -> object:
        async with session(live, call), httpx.AsyncClient(timeout=10) as c:
            return await body(c)  # type: ignore[misc]

    return asyncio.run(go())


def test_a_context_update_is_strict_and_names_the_field(live: Live) -> None:
    call = "CA" + "e" * 32

    async def body(c: httpx.AsyncClient) -> httpx.Response:
        return await c.put(
            f"{live.server.url}/v1/sessions/{call}/context",
            headers={"Authorization": f"Bearer {live.keys['decide']}"},
            json={"device": {"posture": "managed", "new_device": "yes"}},
        )

    r = run(live, call, body)
    assert isinstance(r, httpx.Response) and r.status_code == 422
    assert r.json()["errors"][0]["field"] == "device.new_device"


def test_a_context_update_needs_the_decide_role(live: Live) -> None:
    call = "CA" + "f" * 32

    async def body(c: httpx.AsyncClient) -> int:
        r = await c.put(
            f"{live.server.url}/v1/sessions/{call}/context",
            headers={"Authorization": f"Bearer {live.keys['review']}"},
            json={"device": {"posture": "compromised"}},
        )
        return r.status_code

    assert run(live, call, body) == 403


def test_the_event_stream_needs_review_or_decide(live: Live) -> None:
    call = "CA" + "9" * 32

    async def body(c: httpx.AsyncClient) -> int:
        h = {"Authorization": f"Bearer {live.keys['audit']}"}
        r = await c.get(f"{live.server.url}/v1/sessions/{call}/events", headers=h)
        return r.status_code

    assert run(live, call, body) == 403


def test_subscribers_per_session_are_bounded(live: Live) -> None:
    call = "CA" + "8" * 31 + "1"
    url = f"{live.server.url}/v1/sessions/{call}/events"

    async def body(c: httpx.AsyncClient) -> int:
        h = {"Authorization": f"Bearer {live.keys['review']}"}
        async with c.stream("GET", url, headers=h) as a, c.stream("GET", url, headers=h) as b:
            assert (a.status_code, b.status_code) == (200, 200)  # the server's limit is 2
            r = await c.get(url, headers=h)
            return r.status_code

    assert run(live, call, body) == 429


def test_the_event_stream_starts_with_the_current_decision(live: Live) -> None:
    call = "CA" + "8" * 31 + "2"
    url = f"{live.server.url}/v1/sessions/{call}/events"

    async def body(c: httpx.AsyncClient) -> dict[str, object]:
        h = {"Authorization": f"Bearer {live.keys['review']}"}
        async with c.stream("GET", url, headers=h) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    return json.loads(line[6:])  # type: ignore[no-any-return]
        raise AssertionError("no event")

    event = run(live, call, body)
    assert isinstance(event, dict)
    assert event["session_id"] == call and event["summary"]
