"""audio.replay: a recording played through a loudspeaker into the microphone.

Cues, over the speech frames of the last few seconds: missing low bass (small loudspeakers
roll off below ~300 Hz), slow energy decay after syllables (room reverberation adds a tail
close-talk speech lacks), and spectral smearing between neighbouring frames. A logistic
model over these cues was fitted on clean speech vs simulated replays (loudspeaker filter,
rooms with RT60 0.3-0.9 s) of the shared corpus; no real replay recordings were available.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from detectors.base import BaseDetector
from detectors.frontend import EPS, FREQS, speech_frame_mask
from detectors.params import heuristics
from detectors.protocol import Window
from signals import Evidence, Modality, Signal, sigmoid

LOW = (FREQS >= 50) & (FREQS < 200)
MID = (FREQS >= 300) & (FREQS < 1000)
CUES = ("low_bass_db", "decay_db_per_10ms", "frame_correlation")


def replay_cues(power: np.ndarray, db: np.ndarray) -> np.ndarray | None:
    """The three cues for one window, or None without enough speech."""
    mask = speech_frame_mask(db, range_db=30.0)
    if mask.sum() < 20:
        return None
    sp = power[mask]
    low_bass = 10 * np.log10((sp[:, LOW].sum() + EPS) / (sp[:, MID].sum() + EPS))
    # steepest energy drops (syllable offsets): reverberation makes them shallow
    drops = -np.diff(db)
    top = np.sort(drops)[-max(3, len(drops) // 20) :]
    decay = float(np.mean(top))
    logp = np.log(sp + EPS)
    a, b = logp[:-1] - logp[:-1].mean(1, keepdims=True), logp[1:] - logp[1:].mean(1, keepdims=True)
    corr = (a * b).sum(1) / (np.sqrt((a * a).sum(1) * (b * b).sum(1)) + EPS)
    return np.array([low_bass, decay, float(np.median(corr))])


class ReplayConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    parties: tuple[str, ...] = ("remote",)
    context_windows: int = 3


@dataclass
class ReplayState:
    cues: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=8))


class ReplayDetector(BaseDetector):
    name: ClassVar[str] = "audio.replay"
    version: ClassVar[str] = "1.0.0"
    modality: ClassVar[Modality] = Modality.audio
    consumes: ClassVar[tuple[str, ...]] = ("raw_audio",)
    config_model: ClassVar[type[BaseModel]] = ReplayConfig

    def start(self) -> None:
        p = heuristics().get("replay", {})
        self._mean = np.array(p.get("mean", [-8.0, 3.0, 0.8]))
        self._std = np.array(p.get("std", [6.0, 1.5, 0.1]))
        self._w = np.array(p.get("weights", [-0.8, -1.0, 0.8]))
        self._b = float(p.get("bias", -1.0))
        super().start()

    def new_state(self) -> ReplayState:
        return ReplayState()

    def process(self, window: Window, state: ReplayState) -> Signal | None:
        cfg: ReplayConfig = self.config  # type: ignore[assignment]
        f = window.features
        if window.party not in cfg.parties or f is None or f.power is None:
            return None
        if not hasattr(self, "_w"):
            self.start()
        cues = replay_cues(f.power, f.db)
        if cues is None:
            return None
        state.cues.append(cues)
        c = np.mean(list(state.cues)[-cfg.context_windows :], axis=0)
        z = (c - self._mean) / self._std
        score = sigmoid(float(z @ self._w + self._b))
        n = min(len(state.cues), cfg.context_windows)
        conf = (n / cfg.context_windows) * (0.3 + 0.7 * f.quality.quality)
        if f.quality.narrowband:
            conf *= 0.5  # telephony band-limiting removes the bass cue
        ev = [
            Evidence(
                code="audio.replay_cues" if score >= 0.5 else "audio.live_voice",
                message=(
                    f"Sounds like a recording played through a loudspeaker ({score:.2f})"
                    if score >= 0.5
                    else f"Sounds like a live microphone voice ({score:.2f})"
                ),
                value=round(score, 3),
            ),
            Evidence(
                code="audio.low_bass_db",
                message=f"Bass level vs mid range {c[0]:.1f} dB",
                value=round(float(c[0]), 2),
            ),
            Evidence(
                code="audio.reverb_decay",
                message=f"Syllable decay {c[1]:.1f} dB per 10 ms",
                value=round(float(c[1]), 2),
            ),
        ]
        return self.signal(self.one_sided(score), conf, ev, n * window.duration_ms)
