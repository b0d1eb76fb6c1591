"""Stage 2 live over the native protocol against a real server: a session whose decision
carries ``second_pass`` gets the heavier detector on its next windows while a concurrent
session does not; its consented excerpt is stored sealed (the row's bytes are not the PCM),
attached to its review item, read back by a reviewer through the API with every read
audited; a session without escalation consent leaves no row and no file."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from pathlib import Path

import httpx
import pytest

from tests.engine.streaming.native_client import (
    ESCALATION_S,
    SR,
    NativeLive,
    connect,
    end,
    meeting_context,
    reset_context,
    start,
    stream_real_time,
    until,
)


async def _call(live: NativeLive, call_id: str, context: dict, pcm: bytes) -> dict:
    async with connect(live, live.keys["decide"]) as ws:
        await ws.send(start(call_id, context))
        started = await until(ws, "started")
        await stream_real_time(ws, pcm)
        await ws.send(end())
        await until(ws, "ended")
    return started


def _signal_names(live: NativeLive, session_id: str) -> list[set[str]]:
    return [
        {s["name"] for s in json.loads(r["signals"] or "[]")}
        for r in live.rows(session_id)
        # The hops and the final decision (which takes the last windows' signals): on a
        # loaded machine the detectors may lag the call so far that only the final does.
        if r["request_id"] in ("live:hop", "live:final")
    ]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def calls(native_live: NativeLive, pcm: bytes) -> dict[str, dict]:
    """Three calls at once, at real-time pace: an obligated, consenting password reset
    on a compromised device (review: a review item), a meeting under a policy without a
    second pass, and a password reset without escalation consent."""
    before = _files(native_live.root)

    async def run() -> list[dict]:
        return list(
            await asyncio.gather(
                _call(
                    native_live,
                    "stage2-obligated",
                    reset_context(escalation=True, device="compromised"),
                    pcm,
                ),
                _call(native_live, "stage2-meeting", meeting_context(), pcm),
                _call(native_live, "stage2-no-consent", reset_context(escalation=False), pcm),
            )
        )

    started = asyncio.run(run())
    for sid in ("stage2-obligated", "stage2-meeting", "stage2-no-consent"):
        native_live.wait_final(sid)
    return {
        "started": {s["session_id"]: s for s in started},
        "new_files": {str(p) for p in _files(native_live.root) - before},
    }


def test_second_pass_runs_on_the_obligated_session_only(
    native_live: NativeLive, calls: dict
) -> None:
    obligated = _signal_names(native_live, "stage2-obligated")
    meeting = _signal_names(native_live, "stage2-meeting")
    assert obligated and meeting
    # audio.synthetic_voice is not a first-pass detector on this server (LIVE_DETECTORS):
    # only the obligation brings it, on the obligated session's windows.
    assert any("audio.synthetic_voice" in names for names in obligated)
    assert not any("audio.synthetic_voice" in names for names in meeting)
    assert all("audio.replay" in names for names in meeting)  # the first pass ran there
    metrics = httpx.get(f"{native_live.server.url}/metrics").text
    assert 'liveguard_second_pass_windows_total{detector="audio.synthetic_voice"}' in metrics


def test_the_consented_excerpt_is_sealed_attached_and_audited(
    native_live: NativeLive, calls: dict, pcm: bytes
) -> None:
    [row] = native_live.query(
        "SELECT * FROM escalated_excerpts WHERE session_id = ?", "stage2-obligated"
    )
    assert row["duration_ms"] == ESCALATION_S * 1000  # never more than the declared window
    sealed = bytes(row["sealed"])
    window = pcm[: ESCALATION_S * SR * 2]
    assert len(sealed) == len(window) + 12 + 16  # nonce + ciphertext + tag
    assert window[SR : SR + 64] not in sealed and sealed[12:-16] != window

    [item] = native_live.query(
        "SELECT r.id FROM review_items r JOIN decision_events e ON e.decision_id = r.decision_id "
        "WHERE e.session_id = ? ORDER BY r.created_at LIMIT 1",
        "stage2-obligated",
    )
    base = f"{native_live.server.url}/v1/reviews/{item['id']}/excerpts"
    review = {"Authorization": f"Bearer {native_live.keys['review']}"}
    listed = httpx.get(base, headers=review)
    assert listed.status_code == 200, listed.text
    [excerpt] = listed.json()["excerpts"]
    assert excerpt["id"] == row["id"] and excerpt["duration_ms"] == ESCALATION_S * 1000

    played = httpx.get(f"{base}/{row['id']}", headers=review)
    assert played.status_code == 200 and played.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(played.content)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SR, 1, 2)
        # The caller's audio right after the obligating decision, bit for bit.
        assert w.readframes(w.getnframes()) == window

    decide = {"Authorization": f"Bearer {native_live.keys['decide']}"}
    assert httpx.get(f"{base}/{row['id']}", headers=decide).status_code == 403
    reads = native_live.query(
        "SELECT * FROM audit_reads WHERE what = ?", f"review:{item['id']}:excerpt:{row['id']}"
    )
    assert len(reads) == 1 and reads[0]["role"] == "review" and reads[0]["count"] == 1
    assert native_live.query(
        "SELECT * FROM audit_reads WHERE what = ?", f"review:{item['id']}:excerpts"
    )
    metrics = httpx.get(f"{native_live.server.url}/metrics").text
    assert 'liveguard_live_escalations_total{outcome="stored"} 1.0' in metrics
    assert native_live.excerpt_key not in native_live.server.log.read_text()  # never logged


def test_without_consent_nothing_leaves_the_runtime(native_live: NativeLive, calls: dict) -> None:
    assert (
        native_live.query(
            "SELECT id FROM escalated_excerpts WHERE session_id IN (?, ?)",
            "stage2-no-consent",
            "stage2-meeting",
        )
        == []
    )
    # No file either: the store's own files (the database, its WAL) and the server log only.
    assert {Path(p).name for p in calls["new_files"]} <= {
        "liveguard.db-wal",
        "liveguard.db-shm",
    }
    log = native_live.server.log.read_text()
    assert '"session":"stage2-no-consent"' in log
    refused = [
        json.loads(line)
        for line in log.splitlines()
        if '"live.escalation_capturing"' in line and "stage2-no-consent" in line
    ]
    assert refused == []
