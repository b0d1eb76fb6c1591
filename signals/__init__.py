"""Normalized signal types shared by detectors, governance and the engine."""

from signals.calibration import apply_platt, clamp01, fit_platt, logit, sigmoid
from signals.model import MEDIA_MODALITIES, Evidence, Modality, Signal, clean_text

__all__ = [
    "MEDIA_MODALITIES",
    "Evidence",
    "Modality",
    "Signal",
    "apply_platt",
    "clamp01",
    "clean_text",
    "fit_platt",
    "logit",
    "sigmoid",
]
