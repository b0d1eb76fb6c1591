"""The agent's audio analysed for the conversation's rhythm, against a real server: one
two-party call (real recordings: the agent speaks, the caller answers after the same delay
every time, as a voice bot does) replayed at real-time pace over Twilio (both tracks),
AudioHook (stereo, internal = the agent) and the native protocol (a declared agent party),
all at once; the same call without consent to media analysis; and a caller-only Twilio
call. Each test checks one behaviour of those calls, read from the decision log."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from scipy.signal import resample_poly

from engine.streaming.twilio import mulaw_encode
from tests.engine.streaming import audiohook_client as ahc
from tests.engine.streaming import native_client as nc
from tests.engine.streaming.conftest import CHUNK_BYTES, Live, connected, media, params, stop
from tests.engine.streaming.conversation import SR, Call, bot_like_call, pcm16

TURN_TAKING = "behavior.turn_taking"


@dataclass(frozen=True)
class Calls:
    call: Call
    twilio: str
    audiohook: str
    native: str
    native_no_consent: str
    native_silent_agent: str
    native_withdrawn: str
    native_granted: str
    caller_only: str
    caller_only_windows: int


def _hops(live: Live, session: str) -> list[dict[str, Any]]:
    return [r for r in live.rows(session) if r["request_id"] == "live:hop"]


async def _until_decided(live: Live, session: str, windows: int, keepalive: Any = None) -> None:
    """The caller stays on the line until every full window is decided (on a loaded machine
    the detectors may lag the audio by seconds), then hangs up."""
    for _ in range(400):
        if len(_hops(live, session)) >= windows:
            return
        if keepalive is not None:
            await keepalive()
        await asyncio.sleep(0.05)


def _twilio_start(call_sid: str, p: dict[str, str], tracks: list[str]) -> str:
    sid = "MZ" + call_sid[-32:].rjust(32, "0")
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC" + "0" * 32,
                "streamSid": sid,
                "callSid": call_sid,
                "tracks": tracks,
                "customParameters": p,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
            "streamSid": sid,
        }
    )


def _chunks(x16: np.ndarray) -> list[bytes]:
    ulaw = mulaw_encode(resample_poly(x16, 1, 2))
    return [ulaw[i : i + CHUNK_BYTES] for i in range(0, len(ulaw) - CHUNK_BYTES + 1, CHUNK_BYTES)]


async def _twilio(live: Live, session: str, caller: np.ndarray, agent: np.ndarray | None) -> None:
    call_sid = "CA" + uuid.uuid4().hex
    inbound = _chunks(caller)
    outbound = _chunks(agent) if agent is not None else []
    tracks = ["inbound", "outbound"] if agent is not None else ["inbound"]
    async with websockets.connect(live.ws_url) as ws:
        await ws.send(connected())
        await ws.send(
            _twilio_start(call_sid, params(live.keys["decide"], session_id=session), tracks)
        )
        t0 = time.monotonic()
        for i, chunk in enumerate(inbound, start=1):
            await asyncio.sleep(max(0.0, t0 + (i - 1) * 0.02 - time.monotonic()))
            # The caller's chunk first: the server must not let it overtake the agent's.
            await ws.send(media(i, chunk))
            if outbound:
                await ws.send(media(i, outbound[i - 1], track="outbound"))
        await _until_decided(live, session, len(caller) // SR)
        await ws.send(stop(call_sid))
        with pytest.raises(websockets.ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 15)


async def _audiohook(live: Live, session: str, call: Call) -> None:
    ahid = str(uuid.uuid4())
    url = live.server.url.replace("http://", "ws://") + "/v1/streams/audiohook"
    ws = await ahc.connect(url, ahc.upgrade_headers(live.keys["decide"], ahid))
    client = ahc.Client(ws, ahid)
    opened = await client.open(
        [ahc.media("L16", ("external", "internal"))], ahc.config(session_id=session)
    )
    assert opened["type"] == "opened", opened
    caller = resample_poly(call.caller, 1, 2)
    agent = resample_poly(call.agent, 1, 2)
    t0, i, n = time.monotonic(), 0, 800  # 100 ms frames
    while i < len(caller):
        await asyncio.sleep(max(0.0, t0 + (i + n) / 8000 - time.monotonic()))
        await client.audio(
            ahc.frame(caller[i : i + n], agent[i : i + n], "L16"), len(caller[i : i + n])
        )
        i += n

    async def ping() -> None:
        await client.send("ping")
        await client.expect("pong")

    await _until_decided(live, session, call.caller_windows, ping)
    await client.close()
    await ws.close()


async def _withdraw_when_turn_taking_is_signalled(live: Live, session: str) -> None:
    """Once a hop decision carries turn-taking, consent to media analysis is withdrawn."""
    for _ in range(600):
        if any(_turn_taking(r) is not None for r in _hops(live, session)):
            break
        await asyncio.sleep(0.05)
    await _set_media_consent(live, session, False)


async def _grant_after_hops(live: Live, session: str, hops: int) -> None:
    """Once ``hops`` hop decisions are made without it, consent to media analysis is given."""
    for _ in range(600):
        if len(_hops(live, session)) >= hops:
            break
        await asyncio.sleep(0.05)
    await _set_media_consent(live, session, True)


async def _set_media_consent(live: Live, session: str, media: bool) -> None:
    """A context update through the API, as the call platform sends it."""
    body = {"consent": {"media_analysis": media, "raw_media_escalation": False}}
    h = {"Authorization": f"Bearer {live.keys['decide']}"}
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.put(f"{live.server.url}/v1/sessions/{session}/context", headers=h, json=body)
    assert r.status_code == 200, r.text


async def _native(
    live: Live,
    session: str,
    call: Call,
    *,
    consent: bool = True,
    agent_audio: bool = True,
    withdraw: bool = False,
    grant_after: int | None = None,
) -> None:
    url = live.server.url.replace("http://", "ws://") + "/v1/streams/liveguard"
    context = nc.reset_context()
    context["consent"] = {"media_analysis": consent, "raw_media_escalation": False}
    parties = [{"id": 0, "role": "caller"}, {"id": 7, "role": "agent"}]
    async with websockets.connect(url, additional_headers=nc.bearer(live.keys["decide"])) as ws:
        await ws.send(nc.start(session, context, parties=parties))
        assert (await nc.recv(ws))["type"] == "started"
        caller, agent = pcm16(call.caller), pcm16(call.agent)
        step = SR // 10 * 2  # 100 ms of PCM16
        t0 = time.monotonic()
        withdrawing = (
            asyncio.create_task(_withdraw_when_turn_taking_is_signalled(live, session))
            if withdraw
            else asyncio.create_task(_grant_after_hops(live, session, grant_after))
            if grant_after is not None
            else None
        )
        for k, off in enumerate(range(0, len(caller), step)):
            await asyncio.sleep(max(0.0, t0 + (k + 1) * 0.1 - time.monotonic()))
            await ws.send(nc.audio_frame(0, caller[off : off + step]))
            if agent_audio:
                await ws.send(nc.audio_frame(7, agent[off : off + step]))
        if withdrawing is not None:
            await withdrawing
        await _until_decided(live, session, call.caller_windows)
        await ws.send(nc.end())
        await nc.until(ws, "ended")


async def _all(live: Live) -> Calls:
    call = bot_like_call()
    tag = uuid.uuid4().hex[:8]
    calls = Calls(
        call,
        twilio=f"agent-twilio-{tag}",
        audiohook=f"agent-ah-{tag}",
        native=f"agent-native-{tag}",
        native_no_consent=f"agent-native-nc-{tag}",
        native_silent_agent=f"agent-native-silent-{tag}",
        native_withdrawn=f"agent-native-withdrawn-{tag}",
        native_granted=f"agent-native-granted-{tag}",
        caller_only=f"caller-only-{tag}",
        caller_only_windows=4,
    )
    caller_only = call.caller[: int(4.5 * SR)] + call.agent[: int(4.5 * SR)]  # one voice track
    short = Call(np.zeros_like(caller_only), caller_only)
    await asyncio.gather(
        _twilio(live, calls.twilio, call.caller, call.agent),
        _audiohook(live, calls.audiohook, call),
        _native(live, calls.native, call),
        _native(live, calls.native_no_consent, call, consent=False),
        _native(live, calls.native_silent_agent, short, agent_audio=False),
        _native(live, calls.native_withdrawn, call, withdraw=True),
        _native(live, calls.native_granted, call, consent=False, grant_after=8),
        _twilio(live, calls.caller_only, caller_only, None),
    )
    return calls


@pytest.fixture(scope="module")
def calls(live: Live) -> Calls:
    out = asyncio.run(_all(live))
    for session in (
        out.twilio,
        out.audiohook,
        out.native,
        out.native_no_consent,
        out.native_silent_agent,
        out.native_withdrawn,
        out.native_granted,
        out.caller_only,
    ):
        live.wait_final(session)
    return out


def _turn_taking(row: dict[str, Any]) -> dict[str, Any] | None:
    found = [s for s in json.loads(row["signals"]) if s["name"] == TURN_TAKING]
    return found[0] if found else None


@pytest.mark.parametrize("protocol", ["twilio", "audiohook", "native"])
def test_a_caller_answering_after_a_constant_delay_is_flagged_machine_like(
    live: Live, calls: Calls, protocol: str
) -> None:
    final = live.wait_final(getattr(calls, protocol))
    signal = _turn_taking(final)
    assert signal is not None, json.loads(final["signals"])
    assert signal["score"] >= 0.5
    assert signal["evidence"][0]["code"] == "behavior.machine_turn_taking"


@pytest.mark.parametrize("protocol", ["twilio", "audiohook", "native"])
def test_the_agent_track_adds_no_decisions(live: Live, calls: Calls, protocol: str) -> None:
    # One hop decision per caller window, not one per window of either party.
    assert len(_hops(live, getattr(calls, protocol))) == calls.call.caller_windows


def test_turn_taking_is_decided_during_the_call(live: Live, calls: Calls) -> None:
    with_it = [r for r in _hops(live, calls.twilio) if _turn_taking(r) is not None]
    # The fourth reply (turn-taking's minimum) starts about 12 s into the 16 s call.
    assert len(with_it) >= 2, len(with_it)


def test_without_consent_the_agent_track_is_not_analysed(live: Live, calls: Calls) -> None:
    rows = live.rows(calls.native_no_consent)
    assert len(_hops(live, calls.native_no_consent)) == calls.call.caller_windows
    assert all(_turn_taking(r) is None for r in rows)


def test_a_caller_only_call_gets_one_hop_decision_per_window(live: Live, calls: Calls) -> None:
    hops = _hops(live, calls.caller_only)
    assert len(hops) == calls.caller_only_windows
    assert all(_turn_taking(r) is None for r in live.rows(calls.caller_only))


def test_a_declared_agent_that_sends_nothing_does_not_hold_up_the_callers_decisions(
    live: Live, calls: Calls
) -> None:
    # The caller's blocks wait for the agent's at most two blocks, then go on alone.
    assert len(_hops(live, calls.native_silent_agent)) == calls.caller_only_windows


def test_a_withdrawn_consent_forgets_the_turn_taking_measured_under_it(
    live: Live, calls: Calls
) -> None:
    rows = live.rows(calls.native_withdrawn)
    changed = [i for i, r in enumerate(rows) if r["request_id"] == "live:context"]
    assert changed, [r["request_id"] for r in rows]
    before, after = rows[: changed[0]], rows[changed[0] :]
    assert any(_turn_taking(r) is not None for r in before)  # it was there under consent
    assert after and all(_turn_taking(r) is None for r in after)


def _media(row: dict[str, Any]) -> list[str]:
    return [s["name"] for s in json.loads(row["signals"]) if s["name"].startswith("audio.")]


def test_consent_given_mid_call_decides_on_no_audio_from_before_it(
    live: Live, calls: Calls
) -> None:
    """The media detectors did not read the caller's first seconds, so the decision made
    when consent arrives holds no voice signal; the hops after it do."""
    rows = live.rows(calls.native_granted)
    changed = [i for i, r in enumerate(rows) if r["request_id"] == "live:context"]
    assert changed, [r["request_id"] for r in rows]
    assert all(_media(r) == [] for r in rows[: changed[0] + 1])
    assert any("audio.synthetic_voice" in _media(r) for r in rows[changed[0] + 1 :])
