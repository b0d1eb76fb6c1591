"""av.lipsync: do the lips move with the voice?

Input: a mouth-openness series from an edge landmark tracker (pushed as the feature
series `mouth_openness`, session time in ms) and the audio envelope the front-end keeps
per 10 ms. Like SyncNet, both are compared over a range of offsets (±600 ms): the peak
correlation, its offset and the margin of the peak over the median correlation give the
verdict. Video frames never reach this detector, only the series.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import BaseDetector
from detectors.protocol import Series, Window
from signals import Evidence, Modality, Signal, sigmoid

FRAME_MS = 10


@dataclass(frozen=True)
class SyncResult:
    offset_ms: int
    peak: float  # correlation at the best offset
    margin: float  # peak minus median over offsets (SyncNet's "confidence")
    active_ratio: float


def sync_offset(
    envelope: np.ndarray, mouth: np.ndarray, max_offset_ms: int = 600, frame_ms: int = FRAME_MS
) -> SyncResult | None:
    """Best lag of `mouth` relative to `envelope` (positive: lips lag the voice)."""
    if len(envelope) != len(mouth) or len(envelope) < 100:
        return None
    a = np.log(envelope + 1e-4)
    a = np.convolve(a, np.ones(5) / 5, mode="same")  # 50 ms smoothing, like a video frame
    b = mouth.astype(np.float64)
    active = float((a > np.percentile(a, 90) - 30 / 8.7).mean())
    if np.std(a) < 1e-6 or np.std(b) < 1e-6:
        return None
    a = (a - a.mean()) / a.std()
    b = (b - b.mean()) / b.std()
    max_lag = max_offset_ms // frame_ms
    corr = []
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            x, y = a[: len(a) - lag], b[lag:]
        else:
            x, y = a[-lag:], b[: len(b) + lag]
        corr.append(float(np.mean(x * y)) if len(x) > 50 else 0.0)
    c = np.array(corr)
    i = int(np.argmax(c))
    return SyncResult((i - max_lag) * frame_ms, float(c[i]), float(c[i] - np.median(c)), active)


def resample_series(
    series: Series, start_ms: float, n: int, frame_ms: int = FRAME_MS
) -> np.ndarray:
    grid = start_ms + np.arange(n) * frame_ms
    return np.interp(grid, series.times_ms, series.values)


class LipSyncConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    parties: tuple[str, ...] = ("remote",)
    series: str = "mouth_openness"
    context_ms: int = Field(6_000, description="Audio envelope and series compared per decision.")
    max_offset_ms: int = 600
    ok_offset_ms: int = Field(200, description="Offsets beyond this count as out of sync.")
    sync_peak: float = Field(0.35, description="Envelope/mouth correlation that counts as sync.")


@dataclass
class LipSyncState:
    env: deque[float] = field(default_factory=lambda: deque(maxlen=1_000))
    env_start_ms: float = 0.0


class LipSyncDetector(BaseDetector):
    name: ClassVar[str] = "av.lipsync"
    version: ClassVar[str] = "1.0.0"
    modality: ClassVar[Modality] = Modality.av
    consumes: ClassVar[tuple[str, ...]] = ("features.audio_envelope", "features.mouth_openness")
    config_model: ClassVar[type[BaseModel]] = LipSyncConfig

    def new_state(self) -> LipSyncState:
        return LipSyncState()

    def process(self, window: Window, state: LipSyncState) -> Signal | None:
        cfg: LipSyncConfig = self.config  # type: ignore[assignment]
        f = window.features
        if window.party not in cfg.parties or f is None:
            return None
        if not state.env:
            state.env_start_ms = window.start_ms
        dropped = max(0, len(state.env) + len(f.envelope) - (state.env.maxlen or 0))
        state.env.extend(f.envelope.tolist())
        state.env_start_ms += dropped * FRAME_MS
        series = window.series.get(cfg.series)
        if series is None or len(series.times_ms) < 10:
            return None
        n_ctx = min(len(state.env), cfg.context_ms // FRAME_MS)
        env = np.array(state.env)[-n_ctx:]
        start = state.env_start_ms + (len(state.env) - n_ctx) * FRAME_MS
        # only the part of the context the series covers
        lo = max(start, series.times_ms[0])
        hi = min(start + n_ctx * FRAME_MS, series.times_ms[-1])
        if hi - lo < 2_000:
            return None
        i0 = int((lo - start) // FRAME_MS)
        n = int((hi - lo) // FRAME_MS)
        env = env[i0 : i0 + n]
        mouth = resample_series(series, lo, len(env))
        res = sync_offset(env, mouth, cfg.max_offset_ms)
        if res is None:
            return None
        off = abs(res.offset_ms)
        # In sync: a strong correlation peak near zero offset. A strong peak far from zero
        # is dubbed or delayed audio; no strong peak anywhere means the lips and the voice
        # are unrelated. `sync_peak` is set on synthetic series, not on real tracker data.
        if off <= cfg.ok_offset_ms:
            score = sigmoid(-8.0 * (res.peak - cfg.sync_peak))
        else:
            score = sigmoid(3.0 + 8.0 * (res.peak - cfg.sync_peak))
        conf = (
            min(1.0, (hi - lo) / cfg.context_ms)
            * min(1.0, res.active_ratio / 0.3)
            * (0.4 + 0.6 * f.quality.quality)
        )
        ev = [
            Evidence(
                code="av.lipsync_mismatch" if score >= 0.5 else "av.lipsync_ok",
                message=(
                    f"Lip movements do not match the voice (offset {res.offset_ms} ms)"
                    if score >= 0.5
                    else f"Lips move with the voice (offset {res.offset_ms} ms)"
                ),
                value=float(res.offset_ms),
            ),
            Evidence(
                code="av.sync_confidence",
                message=f"Audio-visual sync confidence {res.margin:.2f}",
                value=round(res.margin, 3),
            ),
        ]
        return self.signal(self.one_sided(score), conf, ev, int(hi - lo))
