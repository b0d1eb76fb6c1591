"""audio.synthetic_voice_deep: the second-pass synthetic-voice model (stage 2).

Heavier than the edge screener and run only when a decision's ``second_pass`` obligation
lists it (``second_pass_only``: live sessions put it in the second-pass pool, and
``registry.discover(edge_only=True)`` leaves it out of the always-on set). It reads the current window only, through the same per-window frame arrays the
edge screener uses (no raw media is kept): the screener's statistics plus slower modulation
and spectral-acceleration statistics of the gain- and channel-normalised log bands
(`deep_input.deep_stats`), scored by a bagged ensemble of wide MLPs plus (3.x) the edge
screener's one-class bona fide reference on the same statistics, in one ONNX graph
(see `models/synthetic_voice_deep.md`). Scores are Platt-calibrated on speaker-disjoint
out-of-fold logits; the session score, the confidence (good speech heard, lower on
narrowband and degraded audio) and the evidence work exactly as in the edge screener.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from detectors.deep_input import deep_stats
from detectors.synthetic_voice import SyntheticVoiceConfig, SyntheticVoiceDetector

MODEL_FILES = {"fp32": "synthetic_voice_deep.onnx", "int8": "synthetic_voice_deep.int8.onnx"}


class SyntheticVoiceDeepConfig(SyntheticVoiceConfig):
    """Same knobs as the edge screener (variant, speech thresholds, parties, narrowband)."""


class SyntheticVoiceDeepDetector(SyntheticVoiceDetector):
    name: ClassVar[str] = "audio.synthetic_voice_deep"
    version: ClassVar[str] = "3.2.1"
    #: stage 2 only: live sessions keep it in the second-pass pool (second_pass.split_detectors),
    #: run when a second_pass obligation lists it; never among the always-on edge detectors
    second_pass_only: ClassVar[bool] = True
    config_model: ClassVar[type[BaseModel]] = SyntheticVoiceDeepConfig
    recipe: ClassVar[str] = "deep_stats"
    model_files: ClassVar[dict[str, str]] = MODEL_FILES

    def window_features(self, windows: np.ndarray) -> np.ndarray:
        return deep_stats(windows)
