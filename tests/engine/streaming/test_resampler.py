"""The 8 → 16 kHz resampler in polyphase form gives the numbers of the plain FIR over the
zero-stuffed signal, however the audio is split into chunks."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.signal import firwin, lfilter

from engine.streaming.twilio import Upsampler, lowpass_taps


def test_the_polyphase_upsampler_equals_the_zero_stuffed_fir_across_chunks() -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(-1.0, 1.0, 8_000)
    up = np.zeros(2 * len(x))
    up[::2] = x
    reference = lfilter(Upsampler._TAPS, 1.0, up)
    resample = Upsampler()
    cuts = [0, 1, 3, 160, 161, 800, 831, 2_000, 2_000, 8_000]  # includes an empty chunk
    out = np.concatenate([resample(x[a:b]) for a, b in itertools.pairwise(cuts)])
    assert out.shape == reference.shape
    assert np.allclose(out, reference.astype(np.float32), atol=1e-6)


def test_the_low_pass_taps_are_scipy_firwin_taps() -> None:
    for n, cutoff in [(63, 0.5), (31, 0.25), (8, 0.8)]:
        assert np.allclose(lowpass_taps(n, cutoff), firwin(n, cutoff), rtol=0, atol=1e-15)
