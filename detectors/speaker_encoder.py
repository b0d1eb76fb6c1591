"""The speaker encoder (resemblyzer's GE2E LSTM exported to ONNX) and its input features.

Input: 40-band mel *power* frames (not log), 25 ms / 10 ms, from the shared STFT; any
number of frames (resemblyzer uses 160-frame partials; the detector uses the 60 speech
frames of one window) gives one L2-normalised 256-d embedding.
Exported by `detectors/training/export_speaker_encoder.py` from the weights inside the
resemblyzer wheel (Apache-2.0).
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np

from detectors.frontend import N_FFT, SR, WIN
from detectors.onnx_model import MODELS_DIR, OnnxModel

EMBEDDING_DIM = 256
TARGET_DBFS = -30.0  # resemblyzer's volume normalisation (increase only)
MODEL_FILES = {"fp32": "speaker_encoder.onnx", "int8": "speaker_encoder.int8.onnx"}


@lru_cache(maxsize=1)
def _mel_fb() -> np.ndarray:
    # resemblyzer uses n_fft = 400; our STFT zero-pads the same 400-sample window to 512,
    # so the slaney-normalised bands sum 512/400 times more bins: scale back.
    fb = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=40).T.astype(np.float32)
    return fb * (WIN / N_FFT)


def mel_frames(power: np.ndarray) -> np.ndarray:
    return power @ _mel_fb()


def volume_gain(mean_square: float) -> float:
    """Power gain that brings the audio to -30 dBFS, never down (as resemblyzer does)."""
    dbfs = 10 * np.log10(mean_square + 1e-12)
    return float(10 ** (max(0.0, TARGET_DBFS - dbfs) / 10))


class SpeakerEncoder:
    def __init__(self, variant: str = "fp32") -> None:
        self.model = OnnxModel(MODELS_DIR / MODEL_FILES[variant])
        # Built now, not on the first call's first window: librosa loads its lazy
        # submodules (numba, joblib, pooch: ~1.5 s) the first time a filterbank is asked for.
        _mel_fb()

    def embed(self, partials: np.ndarray) -> np.ndarray:
        """(batch, frames, 40) mel power -> (batch, 256) unit vectors, in one model call."""
        return self.model.session.run(None, {"mels": partials.astype(np.float32)})[0]
