"""Spectral fine structure (detectors/fine_structure.py) and its place in the window arrays."""

from __future__ import annotations

import numpy as np
import scipy.signal

from detectors.fine_structure import N_FINE, N_SUBBANDS, fine_stats, frame_fine
from detectors.frontend import (
    FINE_COL,
    PITCH_COL,
    SR,
    power_spectrogram,
    speech_mask_frames,
    window_frames,
)

from .helpers import noise


def _voiced(f0: float = 150.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, int(7000 / f0)))
    return (0.1 * x + 0.001 * noise(seconds, 1.0)).astype(np.float32)


def test_noise_residual_spread_is_the_same_at_any_level_and_through_a_fixed_channel() -> None:
    x = noise(1.0, 1.0)
    b, a = scipy.signal.butter(2, 2000, fs=SR)  # a strong, fixed spectral tilt
    base = frame_fine(power_spectrogram(x))[:, :N_SUBBANDS]
    quiet = frame_fine(power_spectrogram(0.001 * x))[:, :N_SUBBANDS]
    tilted = frame_fine(power_spectrogram(scipy.signal.lfilter(b, a, x)))[:, 2:8]
    assert np.allclose(base, quiet, atol=5e-3)  # float32 STFT rounding at -60 dB
    # a chi-square log periodogram: the same spread whatever the level or the channel
    assert abs(base.mean() - tilted.mean()) < 0.15
    assert base.std(axis=0).max() < 1.0


def test_harmonics_raise_the_residual_spread_and_hold_from_frame_to_frame() -> None:
    hiss = frame_fine(power_spectrogram(noise(1.0, 1.0)))
    voiced = frame_fine(power_spectrogram(_voiced()))
    low = slice(0, 4)  # 0-2 kHz, where the harmonics are strongest
    assert voiced[:, low].mean() > hiss[:, low].mean() + 0.5
    corr = slice(N_SUBBANDS, N_SUBBANDS + 4)
    assert voiced[1:, corr].mean() > 0.8 > 0.3 > hiss[1:, corr].mean()


def test_window_arrays_carry_the_fine_structure_after_the_valid_flag() -> None:
    power = power_spectrogram(_voiced())
    w = window_frames(power)
    assert PITCH_COL == FINE_COL + N_FINE
    assert np.allclose(w[: len(power), FINE_COL:PITCH_COL], frame_fine(power), atol=1e-6)


def test_fine_stats_use_speech_frames_only() -> None:
    voiced = _voiced(seconds=0.5)
    silent = np.concatenate([voiced, np.zeros(SR // 2, np.float32)])
    hiss = np.concatenate([voiced, 1e-5 * noise(0.5, 1.0, seed=4)])  # far below the speech
    a_w, b_w = (window_frames(power_spectrogram(x))[None] for x in (silent, hiss))
    speech = speech_mask_frames(a_w)
    assert 0 < speech.sum() < a_w.shape[1]
    assert np.array_equal(speech, speech_mask_frames(b_w))
    assert not np.allclose(
        a_w[0, ~speech[0], FINE_COL:PITCH_COL], b_w[0, ~speech[0], FINE_COL:PITCH_COL]
    )
    a = fine_stats(a_w[:, :, FINE_COL:PITCH_COL], speech)
    b = fine_stats(b_w[:, :, FINE_COL:PITCH_COL], speech)
    assert a.shape == (1, 3 * N_SUBBANDS)
    assert np.allclose(a, b, atol=5e-3)  # the hiss reaches only the boundary frames
