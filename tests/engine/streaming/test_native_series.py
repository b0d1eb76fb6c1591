"""A mouth-openness series sent over the native protocol reaches the lip-sync detector (the
hybrid edge pattern: landmarks reduced on the device, audio streamed): with the series the
session gets an ``av.lipsync`` signal, without it none. In process (the app under
TestClient, real detectors), for the frame-exact control of what is sent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from engine.api.app import create_app
from engine.store.db import make_engine
from engine.store.tables import DecisionEventRow
from tests.engine.service.conftest import make_keys, make_settings
from tests.engine.streaming.native_client import SR, audio_frame, end, meeting_context, start


def _final_signals(db_url: str, session_id: str) -> set[str]:
    engine = make_engine(db_url)
    with Session(engine) as s:
        rows = s.execute(
            select(DecisionEventRow).where(DecisionEventRow.session_id == session_id)
        ).scalars()
        finals = [r for r in rows if r.request_id == "live:final"]
    engine.dispose()
    assert len(finals) == 1
    return {sig["name"] for sig in finals[0].signals or []}


def _mouth_from(pcm: bytes) -> tuple[list[float], list[float]]:
    """A mouth-openness track that follows the voice (20 ms frames), as a tracker on the
    speaker's face would give."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    frame = SR // 50
    rms = np.sqrt(np.mean(x[: len(x) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    values = (rms / (rms.max() or 1.0)).round(4).tolist()
    return [i * 20.0 for i in range(len(values))], values


@pytest.mark.parametrize("with_series", [True, False])
def test_a_mouth_series_reaches_lipsync(tmp_path: Path, pcm: bytes, with_series: bool) -> None:
    db = f"sqlite:///{tmp_path / 'liveguard.db'}"
    keys = make_keys(db, "decide")
    app = create_app(
        make_settings(db, live_detectors=["av.lipsync", "audio.replay"]), periodic_purge=False
    )
    times, values = _mouth_from(pcm)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {keys['decide']}"}
        with client.websocket_connect("/v1/streams/liveguard", headers=headers) as ws:
            ws.send_text(start("series-1", meeting_context()))
            started = json.loads(ws.receive_text())
            assert started["type"] == "started" and "av.lipsync" in started["signals"]
            if with_series:
                for i in range(0, len(times), 500):  # ≤ 512 points per message
                    ws.send_text(
                        json.dumps(
                            {
                                "v": 1,
                                "type": "series",
                                "name": "mouth_openness",
                                "times_ms": times[i : i + 500],
                                "values": values[i : i + 500],
                            }
                        )
                    )
            step = SR // 10 * 2
            for off in range(0, len(pcm), step):
                ws.send_bytes(audio_frame(0, pcm[off : off + step]))
            ws.send_text(end())
            while (msg := json.loads(ws.receive_text()))["type"] != "ended":
                assert msg["type"] == "decision", msg  # no error along the way
    names = _final_signals(db, "series-1")
    assert "audio.replay" in names  # the audio was analysed either way
    assert ("av.lipsync" in names) is with_series
