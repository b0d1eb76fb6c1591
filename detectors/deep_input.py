"""Input of the second-pass synthetic-voice model (audio.synthetic_voice_deep), numpy only.

Built from the same per-window frame arrays as the edge screener (`frontend.window_frames`
of the window's power spectrogram: 98 frames x 64 linear log bands, frame dB, valid flag and
32 spectral fine-structure values),
so the runtime computes nothing new per window and training reads the same feature cache.
Shared by the detector and by training so both see exactly the same numbers.

Normalisation, for the same reasons as the edge statistics: every frame's mean log energy is
removed (loudness, gain), then the window's mean spectrum over its speech frames (a fixed
microphone, codec or channel tilt); non-speech frames are zeroed and masked, so pauses and
silence carry no weight and the network's pooling only sees speech.
"""

from __future__ import annotations

import numpy as np

from detectors.fine_structure import fine_stats
from detectors.frontend import FINE_COL, N_BANDS, PITCH_COL, speech_mask_frames, window_stats_v2
from detectors.pitch import pitch_stats

#: divides the normalised log bands so they are of order 1 (natural-log units, measured
#: spread over speech frames of the shared sets is about 1.5-2.5)
SCALE = 2.0


def deep_inputs(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bands (N, 64, T), mask (N, 1, T), stats (N, 168)) float32 for window arrays (N, T, 66)."""
    w = windows.astype(np.float32)
    m = speech_mask_frames(w).astype(np.float32)  # (N, T)
    n = np.maximum(m.sum(axis=1, keepdims=True), 1.0)  # (N, 1)
    bands = w[:, :, :N_BANDS]
    x = bands - bands.mean(axis=2, keepdims=True)  # frame gain out
    mu = (x * m[:, :, None]).sum(axis=1, keepdims=True) / n[:, :, None]  # window channel out
    x = (x - mu) * m[:, :, None] / SCALE
    stats = window_stats_v2(windows)
    return (
        np.ascontiguousarray(x.transpose(0, 2, 1)),
        m[:, None, :].astype(np.float32),
        stats.astype(np.float32),
    )


def deep_stats(
    windows: np.ndarray, extended: bool = True, fine: bool = True, pitch: bool = False
) -> np.ndarray:
    """(N, 168 + 192 + 48) statistics of the second-pass model for window arrays
    (N, T, WINDOW_COLUMNS).

    The edge screener's `window_stats_v2`, then per band over the speech frames of the gain-
    normalised log bands: mean |change| at lags of 2 and 4 frames (20 and 40 ms: slow
    spectral modulation) and the spread of the second difference (spectral acceleration);
    then (2.x, `fine`) the spectral fine-structure statistics of the same speech frames
    (`fine_structure.fine_stats`, as the edge screener 3.x reads them). 1.x: `fine=False`.
    `pitch`: then the voicing and pitch statistics (`pitch.pitch_stats`, edge recipe v7).
    """
    base = window_stats_v2(windows)
    if not extended:
        return base
    w = windows.astype(np.float32, copy=False)
    speech = speech_mask_frames(w)
    m = speech.astype(np.float32)
    bands = w[:, :, :N_BANDS]
    x = bands - bands.mean(axis=2, keepdims=True)
    out = [base]
    for lag in (2, 4):
        both = (m[:, lag:] * m[:, :-lag])[:, :, None]
        nb = np.maximum(both.sum(axis=1), 1.0)
        out.append((np.abs(x[:, lag:] - x[:, :-lag]) * both).sum(axis=1) / nb)
    both = (m[:, 2:] * m[:, 1:-1] * m[:, :-2])[:, :, None]
    nb = np.maximum(both.sum(axis=1), 1.0)
    acc = (x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]) * both
    amu = acc.sum(axis=1) / nb
    out.append(np.sqrt((((acc - amu[:, None, :]) * both) ** 2).sum(axis=1) / nb))
    if fine:
        out.append(fine_stats(w[:, :, FINE_COL:PITCH_COL], speech))
    if pitch:
        out.append(pitch_stats(w[:, :, PITCH_COL:], speech))
    return np.concatenate(out, axis=1).astype(np.float32)
