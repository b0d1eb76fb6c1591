"""Bad input on a Twilio Media Stream gets a clear close code and reason; the service and
the other sessions streaming to it are unharmed; a client that goes away mid-call leaves a
final decision and nothing else behind."""

from __future__ import annotations

import asyncio
import json

import httpx
import websockets

from tests.engine.streaming.conftest import (
    Live,
    connected,
    media,
    params,
    silence,
    start,
    stop,
)


async def _refused(live: Live, *frames: str | bytes) -> tuple[int | None, str | None]:
    """Send ``frames``; the close code and reason the server answered with."""
    async with websockets.connect(live.ws_url, max_size=None) as ws:
        for f in frames:
            await ws.send(f)
        try:
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason


def refused(live: Live, *frames: str | bytes) -> tuple[int | None, str | None]:
    return asyncio.run(_refused(live, *frames))


def test_an_unknown_event_is_refused(live: Live) -> None:
    code, reason = refused(live, connected(), json.dumps({"event": "bogus"}))
    assert (code, reason) == (1008, "unknown event 'bogus'")


def test_media_before_start_is_refused(live: Live, clip: list[bytes]) -> None:
    code, reason = refused(live, connected(), media(1, clip[0]))
    assert (code, reason) == (1008, "media before start")


def test_a_wrong_media_format_is_refused(live: Live) -> None:
    frame = start(
        "CA" + "2" * 32, params(live.keys["decide"]), encoding="audio/l16", sampleRate=16000
    )
    code, reason = refused(live, connected(), frame)
    assert code == 1003
    assert reason is not None and reason.startswith("start.mediaFormat: audio/l16 16000 Hz")


def test_bad_base64_is_refused(live: Live) -> None:
    call = "CA" + "3" * 32
    bad = json.loads(media(1, b"\x00" * 160))
    bad["media"]["payload"] = "not base64!"
    code, reason = refused(
        live, connected(), start(call, params(live.keys["decide"])), json.dumps(bad)
    )
    assert (code, reason) == (1007, "media.payload: not valid base64")


def test_an_oversized_frame_is_refused(live: Live) -> None:
    code, _ = refused(live, connected(), json.dumps({"event": "media", "pad": "x" * 100_000}))
    assert code == 1009


def test_a_binary_frame_is_refused(live: Live) -> None:
    code, reason = refused(live, connected(), b"\x00\x01")
    assert (code, reason) == (1003, "binary frames are not part of Twilio Media Streams")


def test_a_stream_without_a_key_is_refused(live: Live) -> None:
    p = params("")
    del p["liveguard_key"]
    code, reason = refused(live, connected(), start("CA" + "4" * 32, p))
    assert code == 1008
    assert reason is not None and reason.startswith("unauthenticated")


def test_a_key_without_the_decide_role_is_refused(live: Live) -> None:
    code, reason = refused(live, connected(), start("CA" + "5" * 32, params(live.keys["review"])))
    assert code == 1008
    assert reason is not None and reason.startswith("forbidden")


def test_a_named_policy_must_apply_to_the_call(live: Live) -> None:
    p = params(live.keys["decide"], policy="conference-default")
    code, reason = refused(live, connected(), start("CA" + "6" * 32, p))
    assert code == 1008
    assert reason is not None and reason.startswith("policy_not_applicable")


def test_a_mistyped_custom_parameter_is_refused_by_name(live: Live) -> None:
    p = params(live.keys["decide"], consent_media_analysis="yes")
    code, reason = refused(live, connected(), start("CA" + "7" * 32, p))
    assert (code, reason) == (
        1007,
        "customParameters.consent_media_analysis: expected true or false",
    )


def test_an_unknown_custom_parameter_is_refused_by_name(live: Live) -> None:
    p = params(live.keys["decide"], colour="blue")
    code, reason = refused(live, connected(), start("CA" + "8" * 32, p))
    assert (code, reason) == (1007, "customParameters.colour: not a liveguard parameter")


async def _good_beside_bad(live: Live) -> int | None:
    good_call = "CA" + "a" * 32
    async with websockets.connect(live.ws_url) as good:
        await good.send(connected())
        await good.send(start(good_call, params(live.keys["decide"])))
        for i, chunk in enumerate(silence(30), start=1):
            await good.send(media(i, chunk))
        # Another stream misbehaves meanwhile and is closed.
        await _refused(live, connected(), json.dumps({"event": "bogus"}))
        for i, chunk in enumerate(silence(30), start=31):
            await good.send(media(i, chunk))
        await good.send(stop(good_call))
        try:
            async for _ in good:
                pass
        except websockets.ConnectionClosed:
            pass
        return good.close_code


def test_a_bad_stream_leaves_the_others_unharmed(live: Live) -> None:
    assert asyncio.run(_good_beside_bad(live)) == 1000
    assert live.wait_final("CA" + "a" * 32)["action"]


async def _disconnect_mid_call(live: Live, call: str, clip: list[bytes]) -> None:
    ws = await websockets.connect(live.ws_url)
    await ws.send(connected())
    await ws.send(start(call, params(live.keys["decide"])))
    for i, chunk in enumerate(clip[:70], start=1):
        await ws.send(media(i, chunk))
    ws.transport.abort()  # the TCP connection drops: no stop, no close frame


def test_a_client_gone_mid_call_leaves_a_final_decision(live: Live, clip: list[bytes]) -> None:
    call = "CA" + "b" * 32
    asyncio.run(_disconnect_mid_call(live, call, clip))
    final = live.wait_final(call)
    assert json.loads(final["signals"])  # decided on the audio it had streamed


def test_a_client_gone_mid_call_leaves_no_session(live: Live, clip: list[bytes]) -> None:
    call = "CA" + "c" * 32
    asyncio.run(_disconnect_mid_call(live, call, clip))
    live.wait_final(call)
    headers = {"Authorization": f"Bearer {live.keys['decide']}"}
    r = httpx.put(
        f"{live.server.url}/v1/sessions/{call}/context",
        headers=headers,
        json={"device": {"posture": "managed"}},
    )
    assert r.status_code == 404
    metrics = httpx.get(f"{live.server.url}/metrics").text
    assert "liveguard_detector_sessions 0.0" in metrics


def test_out_of_order_and_duplicate_chunks_are_accepted(live: Live) -> None:
    call = "CA" + "d" * 32
    payload = b"\xff" * 160  # μ-law silence

    async def go() -> int | None:
        async with websockets.connect(live.ws_url) as ws:
            await ws.send(connected())
            await ws.send(start(call, params(live.keys["decide"])))
            for i in [1, 3, 2, 2, 5, 4, 4, 1, 6, 8]:  # 7 never comes: a gap
                await ws.send(media(i, payload))
            await ws.send(stop(call))
            try:
                async for _ in ws:
                    pass
            except websockets.ConnectionClosed:
                pass
            return ws.close_code

    assert asyncio.run(go()) == 1000
    assert live.wait_final(call)


def test_a_stream_key_is_never_logged(live: Live) -> None:
    p = params(live.keys["decide"], colour="blue")  # refused after the key was read
    refused(live, connected(), start("CA" + "e" * 31 + "1", p))
    refused(live, connected(), start("CA" + "e" * 31 + "2", params(live.keys["review"])))
    log = live.server.log.read_text()
    assert live.keys["decide"] not in log and live.keys["review"] not in log
    assert '"event":"auth.refused"' in log
