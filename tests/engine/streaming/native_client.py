"""A native-protocol client written from the README ("Native protocol (edge clients and
SDKs)"), and a real ``liveguard serve`` configured for the native tests: its own policy
folder (the bundled password-reset policy with a declared escalation retention and a 2 s
window; the bundled conference policy; a feature_only_cloud copy of it), an escalation
key, and a first pass without the synthetic-voice model so stage 2 has a pool detector."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

from detectors.audio_io import load_audio, shared_data_dir
from tests.engine.service.conftest import POLICIES, Server, make_keys
from tests.engine.streaming.live_server import LiveServer

SR = 16_000
FRAME_MS = 100  # what our client sends per binary frame (the README allows any size ≤ 1 s)
ESCALATION_S = 2
FIRST_PASS = ["audio.quality", "audio.replay"]


def policies(root: Path) -> Path:
    out = root / "policies"
    out.mkdir()
    shutil.copytree(POLICIES / "support-password-reset", out / "support-password-reset")
    df = out / "support-password-reset" / "dataflow.yaml"
    text = df.read_text()
    # The bundled policy declares a 30 s window and 7 days; the tests use a shorter window.
    assert "      max_seconds: 30\n      retention_days: 7\n" in text
    df.write_text(text.replace("      max_seconds: 30\n", f"      max_seconds: {ESCALATION_S}\n"))
    shutil.copytree(POLICIES / "conference-default", out / "conference-default")
    edge = out / "conference-edge"
    shutil.copytree(POLICIES / "conference-default", edge)
    for f in edge.iterdir():
        f.write_text(f.read_text().replace("conference-default", "conference-edge"))
    manifest = edge / "manifest.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "kinds: [team_meeting, external_meeting, webinar, all_hands]", "kinds: [edge_meeting]"
        )
    )
    flow = edge / "dataflow.yaml"
    flow.write_text(flow.read_text().replace("pattern: edge_only", "pattern: feature_only_cloud"))
    return out


class NativeLive(LiveServer):
    route = "/v1/streams/liveguard"

    def __init__(
        self, server: Server, keys: dict[str, str], db: Path, root: Path, excerpt_key: str
    ) -> None:
        super().__init__(server, keys, db)
        self.excerpt_key = excerpt_key
        self.root = root


@pytest.fixture(scope="package")
def native_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeLive]:
    root = tmp_path_factory.mktemp("native")
    db = root / "liveguard.db"
    url = f"sqlite:///{db}"
    keys = make_keys(url, "decide", "review")
    excerpt_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    env = {
        "LIVEGUARD_POLICIES": str(policies(root)),
        "LIVEGUARD_LIVE_PRELOAD_DETECTORS": "true",
        "LIVEGUARD_LIVE_DETECTORS": json.dumps(FIRST_PASS),
        "LIVEGUARD_ESCALATION_KEY": excerpt_key,
        "LIVEGUARD_MAX_LIVE_SESSIONS": "4",
        "LIVEGUARD_STREAM_START_TIMEOUT_S": "3",
    }
    srv = Server(url, root / "server.log", env=env)
    srv.start(timeout=60.0)
    yield NativeLive(srv, keys, db, root, excerpt_key)
    srv.stop()


@pytest.fixture(scope="package")
def pcm() -> bytes:
    """4 s of a real recording (the first clip of the shared manifest), PCM16 LE 16 kHz."""
    manifest = shared_data_dir() / "audio" / "manifest.csv"
    if not manifest.is_file():
        pytest.fail(f"shared data not found at {manifest} (set LIVEGUARD_SHARED_DATA)")
    first = manifest.read_text().splitlines()[1].split(",")[0]
    x = load_audio(shared_data_dir() / "audio" / first)[: 4 * SR]
    assert len(x) == 4 * SR
    return (np.clip(np.round(x * 32768.0), -32768, 32767)).astype("<i2").tobytes()


# --- the protocol's messages, as the README writes them -------------------------------------


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def start(call_id: str, context: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"v": 1, "type": "start", "call_id": call_id, "context": context, **extra})


def reset_context(*, escalation: bool = False, device: str = "managed") -> dict[str, Any]:
    return {
        "channel": "support_call",
        "kind": "password_reset",
        "participant": "external",
        "consent": {"media_analysis": True, "raw_media_escalation": escalation},
        "identity": {"assurance": "substantial"},
        "device": {"posture": device},
    }


def meeting_context(kind: str = "team_meeting") -> dict[str, Any]:
    return {
        "channel": "conference",
        "kind": kind,
        "participant": "external",
        "consent": {"media_analysis": True, "raw_media_escalation": True},
        "identity": {"assurance": "substantial"},
    }


def audio_frame(party: int, samples: bytes) -> bytes:
    return bytes([party]) + samples


def end() -> str:
    return json.dumps({"v": 1, "type": "end"})


async def recv(ws: Any, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until(ws: Any, kind: str, seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Read messages up to the first of ``kind`` (the others go to ``seen``)."""
    while True:
        msg = await recv(ws)
        if msg["type"] == kind:
            return msg
        if seen is not None:
            seen.append(msg)


async def stream_real_time(ws: Any, pcm: bytes, party: int = 0) -> None:
    """PCM16 in FRAME_MS frames, each leaving FRAME_MS after the one before (absolute
    schedule: real-time pace)."""
    step = SR * FRAME_MS // 1000 * 2
    t0 = time.monotonic()
    for i, off in enumerate(range(0, len(pcm), step)):
        delay = t0 + i * FRAME_MS / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.send(audio_frame(party, pcm[off : off + step]))


def connect(live: NativeLive, key: str | None) -> Any:
    return websockets.connect(live.ws_url, additional_headers=bearer(key) if key else None)
