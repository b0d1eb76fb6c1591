"""Spectral fine structure of speech frames: what a vocoder has to invent below the envelope.

A TTS acoustic model predicts a smooth spectral envelope (a mel spectrogram); the neural
vocoder then fills in the fine structure — harmonics, the noise between them, how both carry
over from one 10 ms frame to the next. Real speech gets that structure from a glottis and a
vocal tract, so it is where vocoders differ from people whatever the voice, the words or the
recording chain (leave-one-system-out: synthetic_voice.md, "How it was chosen").

Per frame of the 512-point power spectrum (31.25 Hz bins) the log spectrum minus its own
9-bin moving average (the envelope, and with it any fixed channel, microphone or codec
tilt, and the loudness) leaves the residual; in 16 subbands of 500 Hz this module keeps

- the log variance of the residual: for pure noise a log periodogram has a fixed spread
  whatever its level (pi^2/6 for a chi-square with two degrees of freedom, a little less
  after the Hann window), harmonics raise it, an over-smooth vocoder lowers it;
- the correlation of the residual with the previous frame's: how stable the harmonic
  pattern is over time (sustained voicing vs. re-invented noise).

`frame_fine` gives those 32 per-frame values (the columns after the frame dB and valid flag
of `frontend.window_frames`); `fine_stats` turns them into 48 window statistics over speech
frames. numpy only, shared by the runtime and training.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

N_FFT_BINS = 257  # of the 512-point power spectrum (frontend.N_BINS)
N_SUBBANDS = 16
SUBBAND_BINS = 16  # 16 x 16 = bins 1..256 of the 257 (DC left out)
SMOOTH_BINS = 9  # envelope: moving average over 9 bins (281 Hz, wider than any harmonic spacing)
N_FINE = 2 * N_SUBBANDS  # per-frame columns: log variance, then correlation
N_FINE_STATS = 3 * N_SUBBANDS  # window statistics: mean and spread of log variance, mean corr
_EPS = 1e-10
_VAR_FLOOR = 1e-6


@lru_cache(maxsize=1)
def residual_map() -> np.ndarray:
    """(257, 256) float32: log spectrum -> each subband's residual, centred.

    The residual (log spectrum minus its SMOOTH_BINS-bin moving average, edges repeated,
    bins 1..256) and its mean removed within each subband are both linear in the log
    spectrum, so one matrix does both: a single product per window instead of a padded
    cumulative sum, a subtraction and a reshape-mean in float64 (0.8 -> 0.3 ms a window;
    the values agree within 5e-6, far inside the float16 the training cache keeps).
    """
    nb = N_FFT_BINS
    half = SMOOTH_BINS // 2
    env = np.zeros((nb, nb))
    for j in range(nb):
        for k in range(j - half, j + half + 1):
            env[min(max(k, 0), nb - 1), j] += 1.0 / SMOOTH_BINS
    resid = (np.eye(nb) - env)[:, 1 : 1 + N_SUBBANDS * SUBBAND_BINS]
    centre = np.kron(np.eye(N_SUBBANDS), np.eye(SUBBAND_BINS) - 1.0 / SUBBAND_BINS)
    return (resid @ centre).astype(np.float32)


def frame_fine(power: np.ndarray) -> np.ndarray:
    """(frames, 32) float32: per subband the residual's log variance, then its correlation
    with the previous frame's residual (0 for the first frame)."""
    n = len(power)
    out = np.zeros((n, N_FINE), dtype=np.float32)
    if n == 0:
        return out
    lp = np.log(np.asarray(power, dtype=np.float32) + np.float32(_EPS))
    rb = (lp @ residual_map()).reshape(n, N_SUBBANDS, SUBBAND_BINS)
    ss = np.einsum("nkb,nkb->nk", rb, rb)
    out[:, :N_SUBBANDS] = np.log(ss / SUBBAND_BINS + _VAR_FLOOR)
    if n > 1:
        num = np.einsum("nkb,nkb->nk", rb[1:], rb[:-1])
        out[1:, N_SUBBANDS:] = num / np.sqrt(ss[1:] * ss[:-1] + 1e-9)
    return out


def fine_stats(fine: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """(N, 48) window statistics from per-frame columns (N, T, 32) and a speech mask (N, T):
    mean and spread of each subband's log variance over speech frames, and the mean
    frame-to-frame correlation over pairs of consecutive speech frames."""
    f = fine.astype(np.float32, copy=False)
    m = speech.astype(np.float32)[:, :, None]
    n = np.maximum(m.sum(axis=1), 1.0)
    v = f[:, :, :N_SUBBANDS]
    mu = (v * m).sum(axis=1) / n
    sd = np.sqrt((((v - mu[:, None, :]) * m) ** 2).sum(axis=1) / n)
    both = m[:, 1:] * m[:, :-1]
    corr = (f[:, 1:, N_SUBBANDS:] * both).sum(axis=1) / np.maximum(both.sum(axis=1), 1.0)
    return np.concatenate([mu, sd, corr], axis=1).astype(np.float32)
