"""Overload: when the detectors fall behind, the riskiest calls keep their analysis (the
lowest-risk sessions' oldest windows are dropped first, counted by reason) and the backlog
is the runtime's to schedule, not a queue of thread-pool work; a stalled client never
holds up another call on the same replica."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import numpy as np
import websockets
from prometheus_client import CollectorRegistry

from detectors.base import BaseDetector
from detectors.protocol import Window
from detectors.runtime import Emission, RuntimeConfig, StreamingRuntime
from engine.streaming.pump import AudioPump
from signals import Modality, Signal
from tests.engine.streaming.conftest import Live, connected, media, params, start, stop

SR = 16_000


class Slow(BaseDetector):
    """A real plugin that takes its time over each batch, as a loaded replica does."""

    name: ClassVar[str] = "audio.slow"
    version: ClassVar[str] = "1.0.0"
    modality: ClassVar[Modality] = Modality.audio
    consumes: ClassVar[tuple[str, ...]] = ("raw_audio",)

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__()
        self.seconds = seconds
        self.seen: list[tuple[str, int]] = []

    def process(self, window: Window, state: Any) -> Signal | None:
        return self.process_batch([window], [state])[0]

    def process_batch(
        self, windows: Sequence[Window], states: Sequence[Any]
    ) -> list[Signal | None]:
        time.sleep(self.seconds)
        self.seen.extend((w.session_id, w.seq) for w in windows)
        return [self.signal(0.5, 1.0, [], w.duration_ms) for w in windows]


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.05 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def _dropped(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value(
        "liveguard_detector_dropped_windows_total", {"reason": reason}
    )
    return value or 0.0


def test_past_the_replica_bound_the_lowest_risk_sessions_lose_their_oldest_windows() -> None:
    registry = CollectorRegistry()
    det = Slow()
    rt = StreamingRuntime([det], RuntimeConfig(max_pending=4, max_batch=1), registry=registry)
    rt.start()
    rt.open_session("high", risk=0.9)
    rt.open_session("low", risk=0.1)
    for _ in range(3):  # 6 windows arrive, room for 4
        rt.push_audio("low", _noise(1.0))
        rt.push_audio("high", _noise(1.0))
    assert rt.session_stats("low")["dropped"] == 2
    assert rt.session_stats("high")["dropped"] == 0
    assert _dropped(registry, "replica_backlog") == 2
    rt.drain()
    # The riskier call first, all of it; the other's newest window survived.
    assert det.seen == [("high", 0), ("high", 1), ("high", 2), ("low", 2)]


def test_a_session_too_far_behind_loses_its_oldest_windows_counted_by_reason() -> None:
    registry = CollectorRegistry()
    rt = StreamingRuntime([Slow()], RuntimeConfig(max_pending_per_session=3), registry=registry)
    rt.start()
    rt.open_session("a")
    rt.push_audio("a", _noise(10.0))
    assert rt.session_stats("a")["pending"] == 3
    assert _dropped(registry, "session_backlog") == 7
    assert _dropped(registry, "replica_backlog") == 0


async def _flood(pump: AudioPump, lane: ThreadPoolExecutor, drt: StreamingRuntime) -> None:
    loop = asyncio.get_running_loop()
    sessions = {"high-1": 0.9, "high-2": 0.8, "low-1": 0.1, "low-2": 0.2}
    for sid, risk in sessions.items():
        await loop.run_in_executor(lane, drt.open_session, sid)
        pump.set_risk(sid, risk)
    # 3 s of each call arrives in 100 ms blocks before the pump gets to run (a replica
    # fallen behind): 12 windows, more than the replica's bound of 8.
    for block in range(30):
        for i, sid in enumerate(sessions):
            pump.stage(sid, "remote", _noise(0.1, seed=block * 4 + i))
    await pump.idle()


def test_the_pump_leaves_the_backlog_to_the_runtime_scheduler() -> None:
    registry = CollectorRegistry()
    det = Slow(seconds=0.05)
    drt = StreamingRuntime([det], RuntimeConfig(max_pending=8, max_batch=2), registry=registry)
    drt.start()
    lane = ThreadPoolExecutor(max_workers=1)
    decided: list[Emission] = []

    async def absorb(emissions: list[Emission], windows: list[tuple[str, str, int]]) -> None:
        decided.extend(emissions)

    async def in_lane(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(lane, fn, *args)

    pump = AudioPump(drt, in_lane, absorb)
    try:
        asyncio.run(_flood(pump, lane, drt))
    finally:
        lane.shutdown()
    served = [e.session_id for e in decided]
    assert served.count("high-1") == 3 and served.count("high-2") == 3  # nothing lost
    assert served.count("low-1") + served.count("low-2") == 2  # 12 windows, room for 8
    assert _dropped(registry, "replica_backlog") == 4
    assert served[:4] == ["high-1", "high-2", "high-1", "high-2"]  # the riskiest first


# --- on a real server ---------------------------------------------------------------------


async def _stalled_beside_streaming(live: Live, clip: list[bytes]) -> dict[str, Any]:
    stalled, good = "CA" + "5" * 32, "CA" + "6" * 32
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {live.keys['review']}"}
    async with (
        websockets.connect(live.ws_url) as quiet,
        httpx.AsyncClient(timeout=30) as client,
    ):
        # This call sends its start and a few chunks, then neither sends nor reads; an
        # agent's feed of it is opened and never read.
        await quiet.send(connected())
        await quiet.send(start(stalled, params(live.keys["decide"], marks="true")))
        for i, chunk in enumerate(clip[:5], start=1):
            await quiet.send(media(i, chunk))
        url = f"{live.server.url}/v1/sessions/{stalled}/events"
        for _ in range(200):
            feed = await client.send(client.build_request("GET", url, headers=headers), stream=True)
            if feed.status_code == 200:
                break
            await feed.aclose()
            await asyncio.sleep(0.05)
        assert feed.status_code == 200
        # Meanwhile another call streams at real-time pace and is decided as it goes.
        async with websockets.connect(live.ws_url) as ws:
            await ws.send(connected())
            await ws.send(start(good, params(live.keys["decide"], marks="true")))
            t0 = time.monotonic()
            for i, chunk in enumerate(clip, start=1):
                await asyncio.sleep(max(0.0, t0 + (i - 1) * 0.02 - time.monotonic()))
                await ws.send(media(i, chunk))
            out["stop_sent_at"] = time.time()
            await ws.send(stop(good))
            with contextlib.suppress(websockets.ConnectionClosed):
                async for _ in ws:
                    pass
            out["good_close"] = ws.close_code
        await feed.aclose()
        await quiet.send(stop(stalled))
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _ in quiet:
                pass
    out["stalled"], out["good"] = stalled, good
    return out


def test_a_stalled_client_does_not_hold_up_another_call(live: Live, clip: list[bytes]) -> None:
    out = asyncio.run(_stalled_beside_streaming(live, clip))
    assert out["good_close"] == 1000
    hops = [r for r in live.rows(out["good"]) if r["request_id"] == "live:hop"]
    during = [
        r
        for r in hops
        if datetime.fromisoformat(r["decided_at"]).replace(tzinfo=UTC).timestamp()
        < out["stop_sent_at"]
    ]
    assert len(during) >= 2, hops  # decided during the call, hop by hop
    assert all(json.loads(r["signals"]) for r in during)
    assert live.wait_final(out["stalled"])["action"]  # the stalled call still ends decided
    metrics = httpx.get(f"{live.server.url}/metrics").text
    assert "liveguard_detector_sessions 0.0" in metrics  # nothing of either call is left
    assert "liveguard_detector_pending_windows 0.0" in metrics


def test_the_pump_reports_how_far_behind_the_detectors_are() -> None:
    drt = StreamingRuntime([Slow(seconds=0.2)], RuntimeConfig(max_batch=1))
    drt.start()
    lane = ThreadPoolExecutor(max_workers=1)
    lags: list[float] = []

    async def in_lane(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(lane, fn, *args)

    async def absorb(emissions: list[Emission], windows: list[tuple[str, str, int]]) -> None:
        lags.append(pump.lag_s)

    pump = AudioPump(drt, in_lane, absorb)

    async def go() -> None:
        for sid in ("a", "b", "c"):
            await in_lane(drt.open_session, sid)
        for sid in ("a", "b", "c"):
            pump.stage(sid, "remote", _noise(1.0))  # three windows, one per 0.2 s batch
        await pump.idle()

    try:
        asyncio.run(go())
    finally:
        lane.shutdown()
    # After the first batch two windows still wait (~0.2 s), after the last none does.
    assert lags[0] >= 0.15 and lags[-1] == 0.0, lags
    assert pump.lag_s == 0.0
