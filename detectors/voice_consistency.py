"""audio.voice_consistency: does the voice change identity during the call?

The speaker representation is the mean and spread of MFCCs over 3 s of speech frames
(a statistics embedding; compact, not invertible to audio). The first seconds of speech
enrol the call's own reference; later windows are compared with it, and optionally with an
enrolled voiceprint given as an embedding in the session metadata (`voiceprint`), so no
reference audio is ever kept. Calibration: distances between clips of the same speaker and
of different speakers in the shared corpus (`calibrate_heuristics.py`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import BaseDetector
from detectors.frontend import FRAME_FEATURES, N_LFCC, N_MFCC, FeatureStats, aggregate
from detectors.params import heuristics
from detectors.protocol import Window
from signals import Evidence, Modality, Signal, sigmoid

_MFCC = slice(2 * N_LFCC, 2 * N_LFCC + N_MFCC)
EMBEDDING_DIM = 2 * N_MFCC


def embedding(stats: list[FeatureStats]) -> tuple[np.ndarray, int]:
    """Speaker statistics embedding (MFCC mean and std) over the given windows."""
    vec, n = aggregate(stats)
    emb = np.concatenate([vec[_MFCC], vec[FRAME_FEATURES:][_MFCC]])
    return emb, n


def distance(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> float:
    za, zb = a / scale, b / scale
    return float(1.0 - za @ zb / (np.linalg.norm(za) * np.linalg.norm(zb) + 1e-9))


class VoiceConsistencyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    parties: tuple[str, ...] = ("remote",)
    context_windows: int = 3
    enroll_frames: int = Field(250, description="Speech frames (10 ms) for the call reference.")
    min_frames: int = 150


@dataclass
class VoiceConsistencyState:
    context: deque[FeatureStats] = field(default_factory=lambda: deque(maxlen=3))
    reference: list[FeatureStats] = field(default_factory=list)
    reference_frames: int = 0
    max_distance: float = 0.0


class VoiceConsistencyDetector(BaseDetector):
    name: ClassVar[str] = "audio.voice_consistency"
    version: ClassVar[str] = "1.0.0"
    modality: ClassVar[Modality] = Modality.audio
    consumes: ClassVar[tuple[str, ...]] = ("raw_audio", "features.speaker_embedding")
    config_model: ClassVar[type[BaseModel]] = VoiceConsistencyConfig

    def start(self) -> None:
        p = heuristics().get("voice_consistency", {})
        self._scale = np.array(p.get("scale", np.ones(EMBEDDING_DIM)))
        self._a = float(p.get("platt_a", 20.0))
        self._b = float(p.get("platt_b", -4.0))
        super().start()

    def new_state(self) -> VoiceConsistencyState:
        return VoiceConsistencyState()

    def process(self, window: Window, state: VoiceConsistencyState) -> Signal | None:
        cfg: VoiceConsistencyConfig = self.config  # type: ignore[assignment]
        f = window.features
        if window.party not in cfg.parties or f is None or f.stats.n < 20:
            return None
        if not hasattr(self, "_scale"):
            self.start()
        if state.reference_frames < cfg.enroll_frames:
            state.reference.append(f.stats)
            state.reference_frames += f.stats.n
            return None
        state.context.append(f.stats)
        cur, n = embedding(list(state.context))
        if n < cfg.min_frames:
            return None
        ref, _ = embedding(state.reference)
        d = distance(cur, ref, self._scale)
        state.max_distance = max(state.max_distance, d)
        score = sigmoid(self._a * d + self._b)
        ev = [
            Evidence(
                code="audio.voice_changed" if score >= 0.5 else "audio.voice_stable",
                message=(
                    f"The voice no longer matches the start of the call ({score:.2f})"
                    if score >= 0.5
                    else f"Same voice as at the start of the call ({score:.2f})"
                ),
                value=round(d, 4),
            )
        ]
        vp = window.metadata.get("voiceprint") if window.metadata else None
        if vp is not None and len(vp) == EMBEDDING_DIM:
            dv = distance(cur, np.asarray(vp, float), self._scale)
            sv = sigmoid(self._a * dv + self._b)
            score = max(score, sv)
            ev.append(
                Evidence(
                    code="audio.voiceprint_mismatch" if sv >= 0.5 else "audio.voiceprint_match",
                    message=f"Enrolled voiceprint {'does not match' if sv >= 0.5 else 'matches'} ({sv:.2f})",
                    value=round(dv, 4),
                )
            )
        conf = min(1.0, n / 300) * (0.3 + 0.7 * f.quality.quality)
        return self.signal(self.one_sided(score), conf, ev, len(state.context) * window.duration_ms)
