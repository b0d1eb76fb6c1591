"""One live call, replayed at real-time pace over Twilio Media Streams to a real server:
it is decided during the call, an agent's event stream sees the change of action, the
stream client gets a mark, a context update changes the policy's inputs, and the final
decision is in the decision log. The call is replayed once (module fixture); each test
checks one behaviour of that call."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import websockets

from tests.engine.streaming.conftest import Live, connected, media, params, start, stop

CALL = "CA" + "1" * 32
SESSION = "call-live-1"
CONTEXT_AT_CHUNK = 110  # 2.2 s into the call: the caller's device is reported compromised


@dataclass
class Replay:
    marks: list[str] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    context_answer: dict[str, Any] = field(default_factory=dict)
    close_code: int | None = None
    stop_sent_at: float = 0.0


async def _sse(live: Live, out: Replay, subscribed: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {live.keys['review']}"}
    url = f"{live.server.url}/v1/sessions/{SESSION}/events"
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(100):  # the session exists once the server has read our start
            async with client.stream("GET", url, headers=headers) as resp:
                if resp.status_code == 404:
                    await asyncio.sleep(0.05)
                    continue
                assert resp.status_code == 200, await resp.aread()
                subscribed.set()
                kind = ""
                async for line in resp.aiter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        out.events.append((kind, json.loads(line[6:])))
                        if kind == "end":
                            return
                return
        raise AssertionError("the session never appeared")


async def _replay(live: Live, clip: list[bytes]) -> Replay:
    out = Replay()
    async with websockets.connect(live.ws_url) as ws:
        await ws.send(connected())
        await ws.send(start(CALL, params(live.keys["decide"], session_id=SESSION, marks="true")))
        subscribed = asyncio.Event()
        sse = asyncio.create_task(_sse(live, out, subscribed))
        await asyncio.wait_for(subscribed.wait(), 10)

        async def read_marks() -> None:
            try:
                async for msg in ws:
                    frame = json.loads(msg)
                    assert frame["event"] == "mark", frame
                    out.marks.append(frame["mark"]["name"])
            except websockets.ConnectionClosed:
                pass

        reader = asyncio.create_task(read_marks())
        t0 = time.monotonic()
        for i, chunk in enumerate(clip, start=1):
            # Real-time pace: chunk i leaves 20 ms after chunk i-1, on an absolute schedule.
            await asyncio.sleep(max(0.0, t0 + (i - 1) * 0.02 - time.monotonic()))
            await ws.send(media(i, chunk))
            if i == CONTEXT_AT_CHUNK:
                async with httpx.AsyncClient(timeout=10) as client:
                    r = await client.put(
                        f"{live.server.url}/v1/sessions/{SESSION}/context",
                        headers={"Authorization": f"Bearer {live.keys['decide']}"},
                        json={"device": {"posture": "compromised", "new_device": False}},
                    )
                    assert r.status_code == 200, r.text
                    out.context_answer = r.json()
        out.stop_sent_at = time.time()
        await ws.send(stop(CALL))
        await asyncio.wait_for(reader, 15)
        out.close_code = ws.close_code
        await asyncio.wait_for(sse, 15)
    return out


@pytest.fixture(scope="module")
def replay(live: Live, clip: list[bytes]) -> Replay:
    return asyncio.run(_replay(live, clip))


def test_the_call_is_decided_during_the_call_from_its_audio(live: Live, replay: Replay) -> None:
    hops = [r for r in live.rows(SESSION) if r["request_id"] == "live:hop"]
    before_stop = [
        r
        for r in hops
        if datetime.fromisoformat(r["decided_at"]).replace(tzinfo=UTC).timestamp()
        < replay.stop_sent_at
    ]
    assert len(before_stop) >= 2
    assert all(json.loads(r["signals"]) for r in hops)  # each hop decided on detector signals


def test_the_stream_ends_normally(replay: Replay) -> None:
    assert replay.close_code == 1000


def test_the_context_update_changes_the_policy_inputs(replay: Replay) -> None:
    answer = replay.context_answer
    assert answer["action"] == "review"
    assert "compromised_device" in {r["code"].split(".")[-1] for r in answer["reasons"]}


def test_the_event_stream_shows_the_change_of_action_with_its_summary(replay: Replay) -> None:
    changes = [e for kind, e in replay.events if kind == "decision"]
    to_review = [e for e in changes if e["action"] == "review"]
    assert to_review, changes
    assert to_review[0]["previous_action"] not in (None, "review")
    # The change came with the context update: its decision, and its one sentence.
    assert to_review[0]["decision_id"] == replay.context_answer["decision_id"]
    assert to_review[0]["summary"] == replay.context_answer["summary"]
    assert to_review[0]["summary"].startswith("Hold for human review")


def test_the_event_stream_ends_with_the_final_decision(replay: Replay) -> None:
    kinds = [kind for kind, _ in replay.events]
    assert kinds[-2:] == ["final", "end"]
    assert replay.events[-2][1]["action"] == "review"


def test_the_change_of_action_is_pushed_back_as_a_twilio_mark(replay: Replay) -> None:
    assert any(m.startswith("liveguard:review:") for m in replay.marks), replay.marks


def test_the_final_decision_is_in_the_decision_log(live: Live, replay: Replay) -> None:
    final = live.wait_final(SESSION)
    assert final["action"] == "review"
    assert final["policy_id"] == "support-password-reset"
    stored = json.loads(final["input"])
    assert stored["device"]["posture"] == "compromised"


def test_no_state_is_left_once_the_call_ended(live: Live, replay: Replay) -> None:
    headers = {"Authorization": f"Bearer {live.keys['review']}"}
    r = httpx.get(f"{live.server.url}/v1/sessions/{SESSION}/events", headers=headers)
    assert r.status_code == 404
