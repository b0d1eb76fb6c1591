"""audio.synthetic_voice: does the voice carry the marks of a speech synthesizer or vocoder?

4.x (see `models/synthetic_voice.md`): each 1 s window is scored on its own from statistics
over its speech frames (`frontend.window_stats_v3`): of its 64 linear log-band energies
(per-band spread and frame-to-frame change, cepstral and delta-cepstral spread; every
frame's own mean energy and the window's mean spectrum taken out first, so loudness and a
fixed recording channel carry nothing), and of the spectral fine structure below the
envelope (`fine_structure.py`: what a vocoder has to invent). One graph holds a classifier of
the marks known synthesizers leave and a one-class term for how far the window lies outside
real speech (`training/bona_fide_reference.py`), so a synthesizer with none of the known
marks is not scored as real for lack of them. Windows with too little speech are not scored.
The windows of all sessions in a micro-batch are scored in one onnxruntime call; the
session's score is the calibrated average of its window logits, so evidence accumulates
over the call. Only the running logit sum and speech counters are kept per session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import BaseDetector
from detectors.frontend import speech_mask_frames, window_frames, window_stats_v3
from detectors.onnx_model import MODELS_DIR, OnnxModel
from detectors.protocol import Window
from signals import Evidence, Modality, Signal, sigmoid

MODEL_FILES = {"fp32": "synthetic_voice.onnx", "int8": "synthetic_voice.int8.onnx"}


class SyntheticVoiceConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    variant: Literal["fp32", "int8"] = "fp32"
    min_speech_frames: int = Field(30, description="Below this a window is not scored.")
    full_confidence_frames: int = Field(
        300, description="Speech frames (10 ms) for full confidence."
    )
    parties: tuple[str, ...] = ("remote",)
    narrowband_confidence: float = Field(
        0.6, description="Confidence factor on telephony audio, where the model is measured weaker."
    )


@dataclass
class SyntheticVoiceState:
    logit_sum: float = 0.0
    logit_n: int = 0
    frames: int = 0
    good_frames: float = 0.0  # speech frames weighted by window quality


class SyntheticVoiceDetector(BaseDetector):
    name: ClassVar[str] = "audio.synthetic_voice"
    version: ClassVar[str] = "4.2.1"
    modality: ClassVar[Modality] = Modality.audio
    consumes: ClassVar[tuple[str, ...]] = ("raw_audio", "features.spectral_statistics")
    config_model: ClassVar[type[BaseModel]] = SyntheticVoiceConfig
    #: what the evaluation featurizes and retrains for this model (training/recipes.py)
    feature_set: ClassVar[str] = "windows_v4"
    recipe: ClassVar[str] = "v6"
    #: whether the model reads the window arrays' pitch columns (`pitch.py`); 4.x does not,
    #: so the runtime skips computing them (recipes v7-v9 measured them: the card says why
    #: none shipped)
    reads_pitch: ClassVar[bool] = False
    model_files: ClassVar[dict[str, str]] = MODEL_FILES

    _model: OnnxModel | None = None
    operating_score: float = 0.5

    def start(self) -> None:
        cfg: SyntheticVoiceConfig = self.config  # type: ignore[assignment]
        self._model = OnnxModel(MODELS_DIR / self.model_files[cfg.variant])
        meta = self._model.metadata
        self._platt = (float(meta.get("platt_a", 1.0)), float(meta.get("platt_b", 0.0)))
        # the model's own spoof verdict, fitted with its calibration (models before 2.1: 0.5)
        self.operating_score = float(meta.get("operating_score", 0.5))
        super().start()

    def stop(self) -> None:
        self._model = None
        super().stop()

    def model_digest(self) -> str | None:
        return self._model.digest if self._model else None

    def new_state(self) -> SyntheticVoiceState:
        return SyntheticVoiceState()

    def process(self, window: Window, state: SyntheticVoiceState) -> Signal | None:
        return self.process_batch([window], [state])[0]

    def window_features(self, windows: np.ndarray) -> np.ndarray:
        """What the model reads per window (the second-pass subclass reads more)."""
        return window_stats_v3(windows)

    def score_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Raw logits for window statistics (used by evaluation as well)."""
        if self._model is None:
            self.start()
        assert self._model is not None
        logit, _ = self._model.session.run(None, {"features": vectors.astype(np.float32)})
        return logit[:, 0]

    def clip_logits(self, windows: np.ndarray, clip: np.ndarray, n_clips: int) -> np.ndarray:
        """Clip score from cached window arrays: what the detector reports at the clip's end."""
        frames = speech_mask_frames(windows).sum(axis=1)
        ok = frames >= self.config.min_speech_frames  # type: ignore[attr-defined]
        logits = np.zeros(len(windows))
        if ok.any():
            logits[ok] = self.score_vectors(self.window_features(windows[ok]))
        sums = np.bincount(clip[ok], logits[ok], n_clips)
        cnt = np.bincount(clip[ok], None, n_clips)
        out = np.full(n_clips, np.nan)
        out[cnt > 0] = sums[cnt > 0] / cnt[cnt > 0]
        return out

    def calibrated(self, logit: float) -> float:
        a, b = self._platt
        return sigmoid(a * logit + b)

    def process_batch(
        self, windows: Sequence[Window], states: Sequence[SyntheticVoiceState]
    ) -> list[Signal | None]:
        cfg: SyntheticVoiceConfig = self.config  # type: ignore[assignment]
        if self._model is None:
            self.start()
        todo: list[int] = []
        arrays: list[np.ndarray] = []
        for i, w in enumerate(windows):
            if w.party not in cfg.parties or w.features is None or w.features.power is None:
                continue
            todo.append(i)
            arrays.append(window_frames(w.features.power, pitch=self.reads_pitch))
        out: list[Signal | None] = [None] * len(windows)
        if not todo:
            return out
        batch = np.stack(arrays)
        frames = speech_mask_frames(batch).sum(axis=1)
        scored = [j for j in range(len(todo)) if frames[j] >= cfg.min_speech_frames]
        if not scored:
            return out
        logits = self.score_vectors(self.window_features(batch[scored]))  # one call for all
        for j, lg in zip(scored, logits, strict=True):
            i = todo[j]
            w, st = windows[i], states[i]
            assert w.features is not None
            st.logit_sum += float(lg)
            st.logit_n += 1
            st.frames += int(frames[j])
            q = w.features.quality
            st.good_frames += int(frames[j]) * min(1.0, q.speech_ratio / 0.5) * q.quality
            out[i] = self._signal(w, st, float(lg))
        return out

    def _signal(self, w: Window, st: SyntheticVoiceState, window_logit: float) -> Signal:
        cfg: SyntheticVoiceConfig = self.config  # type: ignore[assignment]
        assert w.features is not None
        q = w.features.quality
        score = self.calibrated(st.logit_sum / st.logit_n)
        window_score = self.calibrated(window_logit)
        # Confidence grows with the amount of good speech heard so far in the call; noisy,
        # speechless or dropped-out windows add little.
        conf = min(1.0, st.good_frames / cfg.full_confidence_frames)
        if q.narrowband:
            conf *= cfg.narrowband_confidence
        if score >= self.operating_score:  # the model's own verdict (<= 5 % held-out FA)
            ev = [
                Evidence(
                    code="audio.vocoder_artifacts",
                    message=f"Voice shows speech-synthesis artifacts ({score:.2f})",
                    value=round(score, 3),
                )
            ]
        elif score >= 0.5:
            ev = [
                Evidence(
                    code="audio.weak_vocoder_artifacts",
                    message=f"Some speech-synthesis marks, below the alarm point ({score:.2f})",
                    value=round(score, 3),
                )
            ]
        else:
            ev = [
                Evidence(
                    code="audio.natural_voice",
                    message=f"No speech-synthesis artifacts found ({score:.2f})",
                    value=round(score, 3),
                )
            ]
        ev.append(
            Evidence(
                code="audio.synthetic_window_score",
                message=f"Latest 1 s scored {window_score:.2f}",
                value=round(window_score, 3),
            )
        )
        if q.quality < 0.5:
            ev.append(
                Evidence(
                    code="audio.degraded_input",
                    message="Audio quality is poor, so this result is less certain",
                    value=round(q.quality, 3),
                )
            )
        window_ms = min(st.logit_n, 3_600) * w.duration_ms
        return self.signal(score, conf, ev, min(window_ms, 3_600_000))
