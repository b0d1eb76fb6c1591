"""audio.voice_consistency: does the voice change identity during the call?

Every few hops, the last 1.6 s of speech (mel frames of speech frames only, kept per
session as features, never audio) is embedded by the speaker encoder (resemblyzer's GE2E
LSTM, ONNX) — one model call for the whole micro-batch. The first two embeddings enrol
the call's own reference; later ones are compared with it (cosine distance), and with an
enrolled voiceprint when the session metadata carries one (`voiceprint`: a 256-d
embedding, so no reference audio is ever kept). Calibration: distances between 1.6 s
partials of the same speaker and of two speakers of the same corpus
(`calibrate_heuristics.py`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import BaseDetector
from detectors.frontend import N_FFT, WIN, _hann, speech_frame_mask
from detectors.params import heuristics
from detectors.protocol import Window
from detectors.speaker_encoder import (
    EMBEDDING_DIM,
    PARTIAL_FRAMES,
    SpeakerEncoder,
    mel_frames,
    volume_gain,
)
from signals import Evidence, Modality, Signal, sigmoid

PARSEVAL = N_FFT / 2 * float((_hann()[:WIN] ** 2).sum())


class VoiceConsistencyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    parties: tuple[str, ...] = ("remote",)
    every_hops: int = Field(5, ge=1, description="Embed every n-th hop (the encoder is the cost).")
    max_embeddings_per_batch: int = Field(4, ge=1, description="Encoder calls per micro-batch.")
    enroll_embeddings: int = Field(2, ge=1, description="Embeddings averaged into the reference.")
    variant: Literal["fp32", "int8"] = Field(
        "fp32", description="int8 is 3x faster but measured far less faithful (model card)."
    )


@dataclass
class VoiceConsistencyState:
    mels: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=PARTIAL_FRAMES))
    mean_squares: deque[float] = field(default_factory=lambda: deque(maxlen=PARTIAL_FRAMES))
    hops: int = 0
    embed_due: bool = False
    reference: list[np.ndarray] = field(default_factory=list)
    max_distance: float = 0.0


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


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
        self._b = float(p.get("platt_b", -5.0))
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
            mask = speech_frame_mask(f.db, range_db=30.0)
            if mask.sum() < 10:
                continue
            # Parseval: an rfft power frame sums to ~ N_FFT/2 * sum((x*hann)^2)
            ms = f.power[mask].sum(axis=1) / PARSEVAL
            st.mels.extend(mel_frames(f.power[mask]))
            st.mean_squares.extend(ms.tolist())
            st.hops += 1
            enrolling = len(st.reference) < cfg.enroll_embeddings  # enrol as early as possible
            due = enrolling or st.embed_due or st.hops % cfg.every_hops == 0
            if len(st.mels) == PARTIAL_FRAMES and due:
                if len(partials) >= cfg.max_embeddings_per_batch:
                    # The encoder is the expensive part: cap its share of a micro-batch so
                    # it cannot stall the other detectors; this session goes next time.
                    st.embed_due = True
                    continue
                st.embed_due = False
                mel = np.stack(st.mels)
                partials.append(mel * volume_gain(float(np.mean(st.mean_squares))))
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
        ref = np.mean(st.reference, axis=0)
        d = cosine_distance(emb, ref)
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
            dv = cosine_distance(emb, np.asarray(vp, dtype=np.float32))
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
        return self.signal(self.one_sided(score), conf, ev, 1_600)


def partial_from_audio(x: np.ndarray, sr: int = 16_000) -> np.ndarray | None:
    """The first 1.6 s of speech of `x` as the streaming detector would build it (for
    calibration and tests): None if there is not enough speech."""
    from detectors.frontend import frame_db, power_spectrogram

    mels: list[np.ndarray] = []
    ms: list[float] = []
    for s in range(0, len(x), sr):
        power = power_spectrogram(x[s : s + sr])
        mask = speech_frame_mask(frame_db(power), range_db=30.0)
        if mask.sum() < 10:
            continue
        mels.extend(mel_frames(power[mask]))
        ms.extend((power[mask].sum(axis=1) / PARSEVAL).tolist())
        if len(mels) >= PARTIAL_FRAMES:
            mel = np.stack(mels[:PARTIAL_FRAMES])
            return mel * volume_gain(float(np.mean(ms[:PARTIAL_FRAMES])))
    return None
