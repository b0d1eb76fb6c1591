"""A real ``liveguard serve`` on 127.0.0.1 for the live-stream tests, and a Twilio Media
Streams client that follows Twilio's message spec (websockets, JSON text frames)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from scipy.signal import resample_poly

from detectors.audio_io import load_audio, shared_data_dir
from engine.streaming.twilio import mulaw_encode
from tests.engine.service.conftest import Server, make_keys
from tests.engine.streaming.live_server import LiveServer
from tests.engine.streaming.native_client import native_live, pcm  # noqa: F401 (fixtures)

CHUNK_MS = 20
CHUNK_BYTES = 160  # 20 ms of 8 kHz μ-law, what Twilio sends


class Live(LiveServer):
    """The server, its keys and its decision log; Twilio's route."""

    route = "/v1/streams/twilio"


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("live")
    db = tmp / "liveguard.db"
    url = f"sqlite:///{db}"
    keys = make_keys(url, "decide", "review", "audit")
    # Two subscribers per session, so the bound is reachable in a test; the models load at
    # startup here (the session-limit server loads them on its first session).
    # AudioHook streams are not paused for backlog here (test_audiohook_signatures does
    # that): a loaded test machine must not drop the replayed calls' audio.
    env = {
        "LIVEGUARD_SSE_MAX_SUBSCRIBERS": "2",
        "LIVEGUARD_LIVE_PRELOAD_DETECTORS": "true",
        "LIVEGUARD_AUDIOHOOK_PAUSE_LAG_S": "60",
    }
    srv = Server(url, tmp / "server.log", env=env)
    srv.start(timeout=60.0)
    yield Live(srv, keys, db)
    srv.stop()


@pytest.fixture(scope="package")
def clip() -> list[bytes]:
    """3.5 s of a real recording (VCTK, bona fide), μ-law 8 kHz in 20 ms chunks."""
    manifest = shared_data_dir() / "audio" / "manifest.csv"
    if not manifest.is_file():
        pytest.fail(f"shared data not found at {manifest} (set LIVEGUARD_SHARED_DATA)")
    first = manifest.read_text().splitlines()[1].split(",")[0]
    x16 = load_audio(shared_data_dir() / "audio" / first)[: int(3.5 * 16_000)]
    x8 = resample_poly(x16, 1, 2)
    ulaw = mulaw_encode(x8)
    return [ulaw[i : i + CHUNK_BYTES] for i in range(0, len(ulaw) - CHUNK_BYTES + 1, CHUNK_BYTES)]


# --- Twilio's messages ---------------------------------------------------------------------


def connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start(call_sid: str, params: dict[str, str], **media_format: Any) -> str:
    fmt = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1, **media_format}
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC" + "0" * 32,
                "streamSid": "MZ" + call_sid[-32:].rjust(32, "0"),
                "callSid": call_sid,
                "tracks": ["inbound"],
                "customParameters": params,
                "mediaFormat": fmt,
            },
            "streamSid": "MZ" + call_sid[-32:].rjust(32, "0"),
        }
    )


def media(chunk: int, payload: bytes, track: str = "inbound", seq: int = 0) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq or chunk + 1),
            "media": {
                "track": track,
                "chunk": str(chunk),
                "timestamp": str((chunk - 1) * CHUNK_MS),
                "payload": base64.b64encode(payload).decode(),
            },
            "streamSid": "MZ0",
        }
    )


def stop(call_sid: str) -> str:
    return json.dumps(
        {
            "event": "stop",
            "sequenceNumber": "999",
            "stop": {"accountSid": "AC" + "0" * 32, "callSid": call_sid},
            "streamSid": "MZ0",
        }
    )


def params(key: str, **extra: str) -> dict[str, str]:
    """The customParameters of a password-reset call with consent to media analysis."""
    return {
        "liveguard_key": key,
        "kind": "password_reset",
        "consent_media_analysis": "true",
        "identity_assurance": "substantial",
        "device_posture": "managed",
        **extra,
    }


def silence(n: int) -> list[bytes]:
    return [mulaw_encode(np.zeros(CHUNK_BYTES))] * n
