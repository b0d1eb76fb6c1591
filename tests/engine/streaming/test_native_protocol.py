"""The native protocol against a real server, by a client that follows the README: a real
recording replayed at real-time pace, bad input answered with errors while the session
goes on, authentication on the handshake, the session limit answered ``busy``, and the
edge pattern (feature_only_cloud: edge signals change the decision, audio is refused)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from tests.engine.streaming.native_client import (
    NativeLive,
    audio_frame,
    connect,
    end,
    meeting_context,
    recv,
    reset_context,
    start,
    stream_real_time,
    until,
)


def test_a_real_recording_at_real_time_pace(native_live: NativeLive, pcm: bytes) -> None:
    async def run() -> tuple[dict, list[dict], dict]:
        seen: list[dict] = []
        async with connect(native_live, native_live.keys["decide"]) as ws:
            await ws.send(start("native-call-1", reset_context()))
            started = await recv(ws)  # first, with the first decision
            await stream_real_time(ws, pcm)  # 4 s: four windows of 1 s
            # The caller stays on the line until a window has been decided (on a loaded
            # machine the detectors may lag the audio by seconds), then hangs up.
            for _ in range(300):
                if any(r["request_id"] == "live:hop" for r in native_live.rows("native-call-1")):
                    break
                await asyncio.sleep(0.05)
            await ws.send(end())
            ended = await until(ws, "ended", seen)
            with pytest.raises(websockets.ConnectionClosedOK):
                await recv(ws)
        return started, seen, ended

    started, seen, ended = asyncio.run(run())
    assert started["session_id"] == "native-call-1"
    assert started["policy"]["id"] == "support-password-reset"
    assert started["raw_audio"] is True
    assert "audio.replay" in started["signals"]
    assert started["decision"]["action"] in ("log", "warn", "step_up", "review", "block")
    assert [m for m in seen if m["type"] == "error"] == []
    assert ended["decision"]["final"] is True
    final = native_live.wait_final("native-call-1")
    assert final["decision_id"] == ended["decision"]["decision_id"]
    hops = [r for r in native_live.rows("native-call-1") if r["request_id"] == "live:hop"]
    assert len(hops) >= 1  # decided during the call, window by window
    assert all(h["decided_at"] < final["decided_at"] for h in hops)
    # The first-pass detectors' signals reached the decision log.
    assert "audio.replay" in {s["name"] for s in json.loads(hops[-1]["signals"])}


def test_bad_input_is_answered_and_the_session_goes_on(native_live: NativeLive) -> None:
    async def run() -> list[dict]:
        answers: list[dict] = []
        async with connect(native_live, native_live.keys["decide"]) as ws:

            async def ask(message: str | bytes) -> None:
                await ws.send(message)
                answers.append(await recv(ws))

            await ask(json.dumps({"v": 1, "type": "context", "update": {}}))  # before start
            await ask(b"\x00" + b"\x00\x00" * 160)  # audio before start
            await ws.send(start("native-bad-1", reset_context()))
            await until(ws, "started")
            await ask(json.dumps({"v": 1, "type": "shout"}))
            await ask(json.dumps({"v": 2, "type": "end"}))
            await ask("{not json")
            await ask(start("native-bad-1", reset_context()))  # duplicate start
            await ask(
                json.dumps({"v": 1, "type": "signals", "signals": [{"name": "audio.replay"}]})
            )
            await ask(json.dumps({"v": 1, "type": "context", "update": {"consent": "yes"}}))
            await ask(b"\x00" + b"\x01\x02\x03")  # odd byte count: not PCM16
            await ask(b"\x07" + b"\x00\x00" * 160)  # party 7 was not declared
            await ask(b"\x00" + b"\x00\x00" * 16_001)  # over one second
            await ask(json.dumps({"v": 1, "type": "end", "pad": "x" * 40_000}))  # too large
            await ask(json.dumps({"v": 1, "type": "embedding", "vector": [0.1] * 8}))
            await ask(
                json.dumps(
                    {"v": 1, "type": "series", "name": "pulse", "times_ms": [0], "values": [1]}
                )
            )
            # ... and the session is unharmed: a context update re-decides, end ends it.
            await ws.send(
                json.dumps(
                    {"v": 1, "type": "context", "update": {"device": {"posture": "compromised"}}}
                )
            )
            changed = await until(ws, "decision")
            answers.append(changed)
            await ws.send(end())
            answers.append(await until(ws, "ended"))
        return answers

    a = asyncio.run(run())
    codes = [(m.get("code"), m.get("field")) for m in a[:-2]]
    assert codes == [
        ("not_started", "type"),
        ("not_started", None),
        ("unknown_type", "type"),
        ("unsupported_version", "v"),
        ("invalid", None),
        ("duplicate_start", "type"),
        ("invalid", "signals.0.modality"),
        ("invalid", "update.consent"),
        ("bad_audio", None),
        ("unknown_party", None),
        ("too_large", None),
        ("too_large", None),
        ("unsupported", "type"),
        ("unsupported", "name"),
    ]
    assert all(m["type"] == "error" and m["fatal"] is False for m in a[:-2])
    assert a[-2]["type"] == "decision" and a[-2]["action"] == "review"
    assert a[-1]["type"] == "ended" and a[-1]["decision"]["final"] is True


def test_the_handshake_needs_a_decide_key(native_live: NativeLive) -> None:
    async def refused(key: str | None) -> tuple[dict, int]:
        async with connect(native_live, key) as ws:
            msg = await recv(ws)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None
            return msg, closed.value.rcvd.code

    for key, code in (
        (None, "unauthenticated"),
        ("lg_not_a_key", "unauthenticated"),
        (native_live.keys["review"], "forbidden"),
    ):
        msg, close = asyncio.run(refused(key))
        assert (msg["type"], msg["code"], msg["fatal"], close) == ("error", code, True, 1008)
    log = native_live.server.log.read_text()
    assert "lg_not_a_key" not in log and native_live.keys["review"] not in log


def test_past_the_session_limit_the_answer_is_busy(native_live: NativeLive) -> None:
    async def run() -> tuple[dict, int]:
        holders = []
        try:
            for i in range(4):  # LIVEGUARD_MAX_LIVE_SESSIONS=4
                ws = await connect(native_live, native_live.keys["decide"])
                holders.append(ws)
                await ws.send(start(f"native-hold-{i}", reset_context()))
                await until(ws, "started")
            async with connect(native_live, native_live.keys["decide"]) as ws:
                await ws.send(start("native-one-too-many", reset_context()))
                msg = await recv(ws)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await recv(ws)
                assert closed.value.rcvd is not None
                return msg, closed.value.rcvd.code
        finally:
            for ws in holders:
                await ws.send(end())
                await until(ws, "ended")
                await ws.close()

    msg, code = asyncio.run(run())
    assert (msg["code"], msg["fatal"], code) == ("busy", True, 1013)
    assert native_live.rows("native-one-too-many") == []
    for i in range(4):
        native_live.wait_final(f"native-hold-{i}")


def _edge_signal(name: str, score: float) -> dict:
    return {
        "name": name,
        "modality": name.split(".")[0],
        "score": score,
        "confidence": 0.95,
        "detector": f"{name.split('.')[1]}@1.0.0",
        "window_ms": 3000,
    }


def test_feature_only_edge_signals_change_the_decision(native_live: NativeLive) -> None:
    async def run() -> tuple[dict, list[dict], dict]:
        answers: list[dict] = []
        async with connect(native_live, native_live.keys["decide"]) as ws:
            await ws.send(start("native-edge-1", meeting_context("edge_meeting")))
            started = await until(ws, "started")
            await ws.send(audio_frame(0, b"\x00\x00" * 1600))  # raw audio stays on the device
            answers.append(await recv(ws))
            signals = [
                _edge_signal("audio.synthetic_voice", 0.97),
                _edge_signal("av.lipsync", 0.95),
                _edge_signal("behavior.turn_taking", 0.9),  # the policy does not read it
            ]
            await ws.send(json.dumps({"v": 1, "type": "signals", "signals": signals}))
            answers.append(await until(ws, "decision"))
            answers.append(await recv(ws))
            await ws.send(end())
            ended = await until(ws, "ended")
        return started, answers, ended

    started, answers, ended = asyncio.run(run())
    assert started["policy"]["id"] == "conference-edge" and started["raw_audio"] is False
    first = started["decision"]["action"]
    assert answers[0]["code"] == "raw_media_not_allowed"
    changed = answers[1]
    assert changed["previous_action"] == first and changed["action"] != first
    assert changed["risk"] > started["decision"]["risk"]
    assert (answers[2]["code"], answers[2]["field"]) == ("signal_not_declared", "signals.2.name")
    # Stored as decided: the edge signals the policy reads, not the one it does not.
    edge = [r for r in native_live.rows("native-edge-1") if r["request_id"] == "live:edge"]
    assert len(edge) == 1
    assert {s["name"] for s in json.loads(edge[0]["signals"])} == {
        "audio.synthetic_voice",
        "av.lipsync",
    }
    assert ended["decision"]["action"] == changed["action"]


def test_the_agent_feed_follows_a_native_session(native_live: NativeLive) -> None:
    """The SSE feed is protocol-neutral: a native session shows there too."""

    async def run() -> list[str]:
        async with connect(native_live, native_live.keys["decide"]) as ws:
            await ws.send(start("native-sse-1", reset_context()))
            await until(ws, "started")
            url = f"{native_live.server.url}/v1/sessions/native-sse-1/events"
            kinds: list[str] = []
            async with httpx.AsyncClient(timeout=10) as client:
                headers = {"Authorization": f"Bearer {native_live.keys['review']}"}
                async with client.stream("GET", url, headers=headers) as resp:
                    assert resp.status_code == 200
                    sent = False
                    async for line in resp.aiter_lines():
                        if line.startswith("event: "):
                            kinds.append(line[7:])
                            if not sent:
                                sent = True
                                await ws.send(end())
                            if line == "event: end":
                                break
            return kinds

    kinds = asyncio.run(run())
    assert kinds[0] == "decision" and "final" in kinds and kinds[-1] == "end"
