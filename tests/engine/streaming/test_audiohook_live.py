"""One live call over Genesys AudioHook v2, replayed at real-time pace to a real server:
stereo L16 negotiated out of three offers, the caller (external) decided during the call,
a context update answered by an ``event`` message with the change of action, ping/pong,
a client pause whose frames in flight are discarded and counted, and the close
transaction with the final decision as the last event and in the decision log. The call
is replayed once (module fixture); each test checks one behaviour of it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest

from tests.engine.streaming.audiohook_client import (
    Client,
    config,
    connect,
    frame,
    media,
    recording,
    upgrade_headers,
)
from tests.engine.streaming.conftest import Live

SESSION = "ah-live-1"
CONTEXT_AT_S = 2.2  # the caller's device is reported compromised 2.2 s into the call
PAUSE_AT_S = 2.6  # the client pauses here (Genesys: the call is put on hold)
#: Frame sizes cycle, as AudioHook frames may have any size (whole samples).
FRAME_MS = (100, 40, 60, 100, 20)


@dataclass
class Replay:
    opened: dict[str, Any] = field(default_factory=dict)
    pong: dict[str, Any] = field(default_factory=dict)
    ping_seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    closed: dict[str, Any] = field(default_factory=dict)
    context_answer: dict[str, Any] = field(default_factory=dict)
    close_sent_at: float = 0.0
    audiohook_id: str = ""
    conversation: str = ""
    sent_frames: int = 0


def url(live: Live) -> str:
    return live.server.url.replace("http://", "ws://") + "/v1/streams/audiohook"


async def _replay(live: Live) -> Replay:
    out = Replay(audiohook_id=str(uuid.uuid4()), conversation=str(uuid.uuid4()))
    x = recording(4.5)
    silence = np.zeros_like(x)
    ws = await connect(url(live), upgrade_headers(live.keys["decide"], out.audiohook_id))
    client = Client(ws, out.audiohook_id)
    offers = [
        media("opus", ("external",)),  # not ours: skipped
        media("L16", ("external", "internal")),
        media("PCMU", ("external",)),
    ]
    out.opened = await client.open(
        offers, config(session_id=SESSION), conversation=out.conversation
    )
    t0 = time.monotonic()
    i, k, paused = 0, 0, False
    context_done = pause_done = ping_done = False
    while i < len(x):
        if paused:  # on hold for 0.2 s: nothing is sent, and the client says so
            await asyncio.sleep(0.2)
            await client.send("resumed", {"start": client.position, "discarded": "PT0.2S"})
            client.samples += 1600
            i += 1600
            paused = False
            continue
        n = FRAME_MS[k % len(FRAME_MS)] * 8
        k += 1
        # Real-time pace on an absolute schedule: this frame leaves when its audio ends.
        await asyncio.sleep(max(0.0, t0 + (i + n) / 8000 - time.monotonic()))
        await client.audio(frame(x[i : i + n], silence[i : i + n], "L16"), len(x[i : i + n]))
        out.sent_frames += 1
        i += n
        if not ping_done and i >= 8000:
            await client.send("ping", {"rtt": "PT0.012S"})
            out.ping_seq = client.seq
            out.pong = await client.expect("pong")
            ping_done = True
        if not context_done and i >= CONTEXT_AT_S * 8000:
            async with httpx.AsyncClient(timeout=10) as c:
                r = await c.put(
                    f"{live.server.url}/v1/sessions/{SESSION}/context",
                    headers={"Authorization": f"Bearer {live.keys['decide']}"},
                    json={"device": {"posture": "compromised", "new_device": False}},
                )
                assert r.status_code == 200, r.text
                out.context_answer = r.json()
            context_done = True
        if not pause_done and i >= PAUSE_AT_S * 8000:
            await client.send("paused")
            paused, pause_done = True, True
            # Two frames already in flight when the client paused: discarded and counted.
            for _ in range(2):
                await client.audio(frame(x[i : i + 160], silence[i : i + 160], "L16"), 160)
                i += 160
    # The caller stays on the line until its audio has been decided window by window (on a
    # loaded machine the detectors may lag the audio by seconds), then hangs up.
    for _ in range(300):
        if len([r for r in live.rows(SESSION) if r["request_id"] == "live:hop"]) >= 2:
            break
        await client.send("ping")
        await client.expect("pong")
        await asyncio.sleep(0.05)
    out.close_sent_at = time.time()
    out.closed = await client.close()
    out.events = [m for m in client.received if m["type"] == "event"]
    await ws.close()
    return out


@pytest.fixture(scope="module")
def replay(live: Live) -> Replay:
    return asyncio.run(_replay(live))


def decisions(r: Replay) -> list[dict[str, Any]]:
    return [e["parameters"]["entities"][0]["data"] for e in r.events]


def test_the_open_transaction_negotiates_stereo_l16(replay: Replay) -> None:
    assert replay.opened["type"] == "opened"
    assert replay.opened["seq"] == 1 and replay.opened["clientseq"] == 1
    assert replay.opened["parameters"]["media"] == [media("L16", ("external", "internal"))]
    assert replay.opened["parameters"]["startPaused"] is False


def test_the_caller_is_decided_during_the_call_from_its_audio(live: Live, replay: Replay) -> None:
    hops = [r for r in live.rows(SESSION) if r["request_id"] == "live:hop"]
    before_close = [
        r
        for r in hops
        if datetime.fromisoformat(r["decided_at"]).replace(tzinfo=UTC).timestamp()
        < replay.close_sent_at
    ]
    assert len(before_close) >= 2
    assert all(json.loads(r["signals"]) for r in hops)


def test_a_ping_is_answered_with_a_pong(replay: Replay) -> None:
    assert replay.pong["type"] == "pong"
    assert replay.pong["clientseq"] == replay.ping_seq


def test_the_change_of_action_comes_back_as_an_event_with_a_custom_entity(
    replay: Replay,
) -> None:
    entity = replay.events[0]["parameters"]["entities"][0]
    assert entity["type"] == "liveguard_decision"
    changes = [d for d in decisions(replay) if not d["final"]]
    to_review = [d for d in changes if d["action"] == "review"]
    assert to_review, changes
    assert to_review[0]["previous_action"] not in (None, "review")
    assert to_review[0]["decision_id"] == replay.context_answer["decision_id"]
    assert to_review[0]["summary"].startswith("Hold for human review")
    assert to_review[0]["call_id"] == replay.conversation


def test_the_close_transaction_sends_the_final_decision_then_closed(replay: Replay) -> None:
    assert replay.closed["type"] == "closed"
    last = decisions(replay)[-1]
    assert last["final"] is True and last["action"] == "review"
    final_event = replay.events[-1]
    assert final_event["seq"] == replay.closed["seq"] - 1


def test_the_final_decision_is_in_the_decision_log(live: Live, replay: Replay) -> None:
    final = live.wait_final(SESSION)
    assert final["action"] == "review"
    assert final["policy_id"] == "support-password-reset"
    assert final["decision_id"] == decisions(replay)[-1]["decision_id"]
    assert json.loads(final["input"])["device"]["posture"] == "compromised"


def test_frames_sent_across_a_pause_are_discarded_and_counted(live: Live, replay: Replay) -> None:
    assert replay.closed  # the call is over, so its summary line was logged
    lines = [
        json.loads(line) for line in live.server.log.read_text().splitlines() if SESSION in line
    ]
    closed = [e for e in lines if e.get("event") == "live.stream_closed"]
    assert len(closed) == 1, closed
    assert closed[0]["protocol"] == "audiohook"
    assert closed[0]["dropped_frames"] == 2
    assert closed[0]["discarded"] == "PT0.200S"


def test_the_position_is_kept_by_counting_samples(live: Live, replay: Replay) -> None:
    assert replay.closed
    lines = [
        json.loads(line) for line in live.server.log.read_text().splitlines() if SESSION in line
    ]
    closed = [e for e in lines if e.get("event") == "live.stream_closed"]
    # 4.5 s sent in frames of 20 to 100 ms, 0.2 s of it discarded on hold: the server's
    # count is the client's at every message and at the end.
    assert closed[0]["position"] == "PT4.500S"
    assert closed[0]["position_drift"] == "PT0S"


def test_no_state_is_left_once_the_call_ended(live: Live, replay: Replay) -> None:
    headers = {"Authorization": f"Bearer {live.keys['review']}"}
    r = httpx.get(f"{live.server.url}/v1/sessions/{SESSION}/events", headers=headers)
    assert r.status_code == 404
