"""audio.voice_consistency: does the voice change identity during the call?

Every other hop, the speech frames of the *current window only* (the last 0.6 s of them,
as 40-band mel power) are embedded by the speaker encoder (resemblyzer's GE2E LSTM, ONNX)
— one model call for the whole micro-batch. Nothing of a window outlives it but its
256-d embedding: the session keeps embeddings, never audio or spectrogram frames (a
multi-second mel buffer would have given ~2 points lower EER, but mel frames can be
turned back into intelligible speech). The first two embeddings enrol the call's own
reference; afterwards the mean of the last two embeddings is compared with it (cosine
distance), and with an enrolled voiceprint when the session metadata carries one
(`voiceprint`: a 256-d embedding). Calibration: `calibrate_heuristics.py`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import BaseDetector
from detectors.frontend import N_FFT, WIN, _hann, frame_db, power_spectrogram, speech_frame_mask
from detectors.params import heuristics
from detectors.protocol import Window
from detectors.speaker_encoder import EMBEDDING_DIM, SpeakerEncoder, mel_frames, volume_gain
from signals import Evidence, Modality, Signal, sigmoid

PARSEVAL = N_FFT / 2 * float((_hann()[:WIN] ** 2).sum())
WINDOW_FRAMES = 60  # speech frames per embedding (0.6 s), all from one window


class VoiceConsistencyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    parties: tuple[str, ...] = ("remote",)
    every_hops: int = Field(2, ge=1, description="Embed every n-th hop (the encoder is the cost).")
    max_embeddings_per_batch: int = Field(8, ge=1, description="Encoder calls per micro-batch.")
    enroll_embeddings: int = Field(2, ge=1, description="Embeddings averaged into the reference.")
    compare_embeddings: int = Field(2, ge=1, description="Recent embeddings averaged per verdict.")
    variant: Literal["fp32", "int8"] = Field(
        "fp32", description="int8 is 4x faster but measured far less faithful (model card)."
    )


@dataclass
class VoiceConsistencyState:
    hops: int = 0
    embed_due: bool = False
    reference: list[np.ndarray] = field(default_factory=list)
    recent: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=8))
    max_distance: float = 0.0


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def window_partial(power: np.ndarray, db: np.ndarray) -> np.ndarray | None:
    """The encoder input for one window: its last WINDOW_FRAMES speech frames, volume
    normalised; None when the window holds less speech than that."""
    mask = speech_frame_mask(db, range_db=30.0)
    if mask.sum() < WINDOW_FRAMES:
        return None
    sp = power[mask][-WINDOW_FRAMES:]
    ms = float((sp.sum(axis=1) / PARSEVAL).mean())  # Parseval: mean square of the samples
    return mel_frames(sp) * volume_gain(ms)


def partials_from_audio(x: np.ndarray, sr: int = 16_000) -> list[np.ndarray]:
    """Encoder inputs, one per 1 s window with enough speech, as the detector builds them."""
    out = []
    for s in range(0, len(x) - sr // 2, sr):
        power = power_spectrogram(x[s : s + sr])
        p = window_partial(power, frame_db(power))
        if p is not None:
            out.append(p)
    return out


class VoiceConsistencyDetector(BaseDetector):
    name: ClassVar[str] = "audio.voice_consistency"
    version: ClassVar[str] = "1.1.0"
    modality: ClassVar[Modality] = Modality.audio
    consumes: ClassVar[tuple[str, ...]] = ("raw_audio", "features.speaker_embedding")
    config_model: ClassVar[type[BaseModel]] = VoiceConsistencyConfig

    _encoder: SpeakerEncoder | None = None

    def start(self) -> None:
        cfg: VoiceConsistencyConfig = self.config  # type: ignore[assignment]
        self._encoder = SpeakerEncoder(cfg.variant)
        p = heuristics().get("voice_consistency", {})
        self._a = float(p.get("platt_a", 25.0))
        self._b = float(p.get("platt_b", -8.0))
        super().start()

    def stop(self) -> None:
        self._encoder = None
        super().stop()

    def model_digest(self) -> str | None:
        return self._encoder.model.digest if self._encoder else None

    def new_state(self) -> VoiceConsistencyState:
        return VoiceConsistencyState()

    def calibrated(self, distance: float) -> float:
        return sigmoid(self._a * distance + self._b)

    def process(self, window: Window, state: VoiceConsistencyState) -> Signal | None:
        return self.process_batch([window], [state])[0]

    def process_batch(
        self, windows: Sequence[Window], states: Sequence[VoiceConsistencyState]
    ) -> list[Signal | None]:
        cfg: VoiceConsistencyConfig = self.config  # type: ignore[assignment]
        if self._encoder is None:
            self.start()
        assert self._encoder is not None
        todo: list[int] = []
        partials: list[np.ndarray] = []
        for i, (w, st) in enumerate(zip(windows, states, strict=True)):
            f = w.features
            if w.party not in cfg.parties or f is None or f.power is None:
                continue
            st.hops += 1
            enrolling = len(st.reference) < cfg.enroll_embeddings  # enrol as early as possible
            if not (enrolling or st.embed_due or st.hops % cfg.every_hops == 0):
                continue
            partial = window_partial(f.power, f.db)
            if partial is None:
                st.embed_due = True  # too little speech: try again next window
                continue
            if len(partials) >= cfg.max_embeddings_per_batch:
                # The encoder is the expensive part: cap its share of a micro-batch so it
                # cannot stall the other detectors; this session goes first next time.
                st.embed_due = True
                continue
            st.embed_due = False
            partials.append(partial)
            todo.append(i)
        out: list[Signal | None] = [None] * len(windows)
        if not todo:
            return out
        embeddings = self._encoder.embed(np.stack(partials))  # one call for the batch
        for i, emb in zip(todo, embeddings, strict=True):
            out[i] = self._judge(windows[i], states[i], emb)
        return out

    def _judge(self, w: Window, st: VoiceConsistencyState, emb: np.ndarray) -> Signal | None:
        cfg: VoiceConsistencyConfig = self.config  # type: ignore[assignment]
        assert w.features is not None
        if len(st.reference) < cfg.enroll_embeddings:
            st.reference.append(emb)
            return None
        st.recent.append(emb)
        if len(st.recent) < cfg.compare_embeddings:
            return None
        cur = np.mean(list(st.recent)[-cfg.compare_embeddings :], axis=0)
        d = cosine_distance(cur, np.mean(st.reference, axis=0))
        st.max_distance = max(st.max_distance, d)
        score = self.calibrated(d)
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
        vp = w.metadata.get("voiceprint") if w.metadata else None
        if vp is not None and len(vp) == EMBEDDING_DIM:
            dv = cosine_distance(cur, np.asarray(vp, dtype=np.float32))
            sv = self.calibrated(dv)
            score = max(score, sv)
            ev.append(
                Evidence(
                    code="audio.voiceprint_mismatch" if sv >= 0.5 else "audio.voiceprint_match",
                    message=f"Enrolled voiceprint {'does not match' if sv >= 0.5 else 'matches'} ({sv:.2f})",
                    value=round(dv, 4),
                )
            )
        conf = 0.4 + 0.6 * w.features.quality.quality
        return self.signal(self.one_sided(score), conf, ev, cfg.compare_embeddings * w.duration_ms)
