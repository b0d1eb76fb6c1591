"""Bad input on an AudioHook session is answered per the protocol: a refused upgrade is an
HTTP status with a reason; after the upgrade, a ``disconnect`` whose info starts with the
AudioHook error code, then the client's close transaction is answered with ``closed``.
Other sessions are unharmed; a client that goes away mid-call leaves a final decision and
nothing else behind."""

from __future__ import annotations

import asyncio
import json
import uuid
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
    refused,
    upgrade_headers,
)
from tests.engine.streaming.conftest import Live


def url(live: Live) -> str:
    return live.server.url.replace("http://", "ws://") + "/v1/streams/audiohook"


async def _disconnected(live: Live, script: Any, **open_kw: Any) -> dict[str, Any]:
    """Run ``script(client)`` on a fresh session; the server's ``disconnect`` parameters
    (after which the client's close transaction must be answered with ``closed``)."""
    sid = str(uuid.uuid4())
    ws = await connect(url(live), upgrade_headers(live.keys["decide"], sid))
    client = Client(ws, sid)
    try:
        await script(client)
        msg = await client.answer_disconnect()
        return msg["parameters"]  # type: ignore[no-any-return]
    finally:
        await ws.close()


def disconnected(live: Live, script: Any) -> dict[str, Any]:
    return asyncio.run(_disconnected(live, script))


async def opened(c: Client, **kw: Any) -> None:
    msg = await c.open(custom=config(), **kw)
    assert msg["type"] == "opened", msg


# --- the upgrade -------------------------------------------------------------------------


def test_an_upgrade_without_a_key_is_refused_401(live: Live) -> None:
    status, body, _ = asyncio.run(refused(url(live), upgrade_headers(None, str(uuid.uuid4()))))
    assert status == 401
    assert body["error"]["code"] == "unauthenticated"
    assert "X-API-KEY" in body["error"]["message"]


def test_a_key_without_the_decide_role_is_refused_403(live: Live) -> None:
    h = upgrade_headers(live.keys["review"], str(uuid.uuid4()))
    status, body, _ = asyncio.run(refused(url(live), h))
    assert (status, body["error"]["code"]) == (403, "forbidden")


def test_an_upgrade_without_the_audiohook_headers_is_refused_400(live: Live) -> None:
    h = upgrade_headers(live.keys["decide"], "not-a-uuid")
    status, body, _ = asyncio.run(refused(url(live), h))
    assert status == 400
    assert body["error"]["message"] == "audiohook-session-id: a UUID is required"


# --- after the upgrade -------------------------------------------------------------------


def test_a_message_before_open_is_refused(live: Live) -> None:
    async def script(c: Client) -> None:
        await c.send("ping")

    p = disconnected(live, script)
    assert p == {"reason": "error", "info": "409: ping before open"}


def test_audio_before_open_is_refused(live: Live) -> None:
    async def script(c: Client) -> None:
        await c.audio(b"\xff" * 160, 160)

    assert disconnected(live, script)["info"] == "409: audio before opened"


def test_unsupported_media_is_refused_415(live: Live) -> None:
    async def script(c: Client) -> None:
        await c.send(
            "open",
            {
                "organizationId": "d7934305-0972-4844-938e-9060eef73d05",
                "conversationId": str(uuid.uuid4()),
                "participant": {"id": str(uuid.uuid4()), "ani": "", "aniName": "", "dnis": ""},
                "media": [media("opus"), media("PCMU", rate=16000), media("L16", ("internal",))],
                "customConfig": config(),
            },
        )

    info = disconnected(live, script)["info"]
    assert info.startswith("415: no offered media is supported (opus/8000/external, ")
    assert info.endswith("expected PCMU or L16 at 8000 Hz with the external channel")


def test_invalid_json_is_refused_400(live: Live) -> None:
    async def script(c: Client) -> None:
        await c.ws.send("{not json")

    assert disconnected(live, script)["info"] == "400: a text message that is not JSON"


def test_an_unknown_message_type_is_refused_405(live: Live) -> None:
    async def script(c: Client) -> None:
        await opened(c)
        await c.send("dance")

    assert disconnected(live, script)["info"] == "405: 'dance' is not an AudioHook client message"


def test_a_seq_out_of_order_is_refused(live: Live) -> None:
    async def script(c: Client) -> None:
        await opened(c)
        c.seq += 1  # seq 2 never sent
        await c.send("ping")

    assert disconnected(live, script)["info"] == "400: seq 3: expected 2 (out of order)"


def test_a_duplicate_seq_is_refused(live: Live) -> None:
    async def script(c: Client) -> None:
        await opened(c)
        c.seq -= 1  # seq 1 again
        await c.send("ping")

    assert disconnected(live, script)["info"] == "400: seq 1: expected 2 (a duplicate)"


def test_a_malformed_envelope_names_the_field(live: Live) -> None:
    async def script(c: Client) -> None:
        await c.send("open", {}, position="1.5 seconds")

    info = disconnected(live, script)["info"]
    assert info.startswith("400: message.position: String should match pattern")


def test_an_oversize_audio_frame_is_refused_413(live: Live) -> None:
    async def script(c: Client) -> None:
        await opened(c)
        await c.audio(b"\xff" * 8001, 8001)  # more than 1 s of PCMU mono

    assert disconnected(live, script)["info"] == "413: an audio frame of more than 1 s"


def test_a_frame_of_partial_samples_is_refused(live: Live) -> None:
    async def script(c: Client) -> None:
        await opened(c, offers=[media("L16", ("external", "internal"))])
        await c.audio(b"\x00" * 6, 1)  # 4 bytes a stereo L16 sample

    info = disconnected(live, script)["info"]
    assert info == "415: an audio frame of 6 bytes is not whole samples (4 bytes each)"


def test_a_message_over_the_frame_bound_closes_1009(live: Live) -> None:
    async def go() -> int | None:
        sid = str(uuid.uuid4())
        ws = await connect(url(live), upgrade_headers(live.keys["decide"], sid))
        await ws.send(json.dumps({"type": "open", "pad": "x" * 100_000}))
        with pytest.raises(Exception):  # noqa: B017 - the server closes; recv raises
            await asyncio.wait_for(ws.recv(), 10)
        return ws.close_code

    assert asyncio.run(go()) == 1009


def test_an_organization_id_other_than_the_upgrade_s_is_unauthorized(live: Live) -> None:
    async def script(c: Client) -> None:
        await c.send(
            "open",
            {
                "organizationId": str(uuid.uuid4()),
                "conversationId": str(uuid.uuid4()),
                "participant": {"id": str(uuid.uuid4()), "ani": "", "aniName": "", "dnis": ""},
                "media": [media()],
                "customConfig": config(),
            },
        )

    p = disconnected(live, script)
    assert p["reason"] == "unauthorized"
    assert p["info"] == "400: organizationId does not match Audiohook-Organization-Id"


def test_an_unknown_custom_config_name_is_refused_by_name(live: Live) -> None:
    async def script(c: Client) -> None:
        await c.open(custom=config(colour="blue"))

    assert disconnected(live, script)["info"] == "400: customConfig.colour: not a liveguard name"


def test_a_mistyped_input_variable_is_refused_by_name(live: Live) -> None:
    async def script(c: Client) -> None:
        await c.open(custom=config(), inputVariables={"consent_media_analysis": "yes"})

    info = disconnected(live, script)["info"]
    assert info == "400: inputVariables.consent_media_analysis: expected true or false"


def test_a_connection_probe_is_opened_and_leaves_no_decision(live: Live) -> None:
    null = "00000000-0000-0000-0000-000000000000"

    async def go() -> tuple[str, str]:
        sid = str(uuid.uuid4())
        ws = await connect(url(live), upgrade_headers(live.keys["decide"], sid))
        c = Client(ws, sid)
        first = await c.open(custom={}, conversation=null, supportedLanguages=True)
        assert first["parameters"]["supportedLanguages"] == []  # asked: none transcribed
        last = await c.close()
        await ws.close()
        return first["type"], last["type"]

    assert asyncio.run(go()) == ("opened", "closed")
    assert live.rows(null) == []


# --- the others are unharmed; a client gone mid-call ---------------------------------------


async def _good_beside_bad(live: Live, session: str) -> str:
    sid = str(uuid.uuid4())
    ws = await connect(url(live), upgrade_headers(live.keys["decide"], sid))
    good = Client(ws, sid)
    assert (await good.open(custom=config(session_id=session)))["type"] == "opened"
    silence = frame(np.zeros(800), None, "PCMU")
    for _ in range(5):
        await good.audio(silence, 800)

    async def bad(c: Client) -> None:
        await c.ws.send("{not json")

    await _disconnected(live, bad)  # another session misbehaves meanwhile
    for _ in range(5):
        await good.audio(silence, 800)
    # The client's other messages are taken in stride: a language change, its own error
    # report (it was rate-limited, say) and audio it dropped.
    await good.send("update", {"language": "es-ES"})
    await good.send("error", {"code": 429, "message": "too fast", "retryAfter": "PT1S"})
    await good.send("discarded", {"start": good.position, "discarded": "PT0.5S"})
    good.samples += 4000
    await good.send("ping")
    await good.expect("pong")
    closed = await good.close()
    await ws.close()
    return str(closed["type"])


def test_a_bad_session_leaves_the_others_unharmed(live: Live) -> None:
    assert asyncio.run(_good_beside_bad(live, "ah-good-1")) == "closed"
    assert live.wait_final("ah-good-1")["action"]
    lines = [json.loads(x) for x in live.server.log.read_text().splitlines() if "ah-good-1" in x]
    closed = [e for e in lines if e.get("event") == "live.stream_closed"]
    assert closed[0]["position"] == "PT1.500S"  # 1 s of frames and 0.5 s discarded
    assert closed[0]["position_drift"] == "PT0S" and closed[0]["client_errors"] == 1


async def _gone_mid_call(live: Live, session: str) -> None:
    from tests.engine.streaming.audiohook_client import recording

    x = recording(2.0)
    sid = str(uuid.uuid4())
    ws = await connect(url(live), upgrade_headers(live.keys["decide"], sid))
    c = Client(ws, sid)
    assert (await c.open(custom=config(session_id=session)))["type"] == "opened"
    for i in range(0, len(x), 800):
        await c.audio(frame(x[i : i + 800], None, "PCMU"), len(x[i : i + 800]))
    ws.transport.abort()  # the TCP connection drops: no close transaction, no close frame


def test_a_client_gone_mid_call_leaves_a_final_decision_and_no_session(live: Live) -> None:
    asyncio.run(_gone_mid_call(live, "ah-gone-1"))
    final = live.wait_final("ah-gone-1")
    assert json.loads(final["signals"])  # decided on the audio it had streamed
    r = httpx.put(
        f"{live.server.url}/v1/sessions/ah-gone-1/context",
        headers={"Authorization": f"Bearer {live.keys['decide']}"},
        json={"device": {"posture": "managed"}},
    )
    assert r.status_code == 404
    assert "liveguard_detector_sessions 0.0" in httpx.get(f"{live.server.url}/metrics").text


def test_the_api_key_is_never_logged(live: Live) -> None:
    asyncio.run(refused(url(live), upgrade_headers(live.keys["review"], str(uuid.uuid4()))))
    log = live.server.log.read_text()
    assert live.keys["decide"] not in log and live.keys["review"] not in log
    assert '"route":"/v1/streams/audiohook"' in log
