"""Noise-suppression condition (detectors/rnnoise.py): RNNoise through ctypes."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import rnnoise
from detectors.degrade import CONDITIONS, add_noise, available_conditions

from .helpers import noise, speech


def test_the_suite_has_the_library_and_evaluates_the_condition() -> None:
    assert rnnoise.available(), "make setup installs pyrnnoise (--no-deps)"
    assert "denoised_10db" in available_conditions()


def test_suppression_takes_most_of_the_noise_out_of_noisy_speech() -> None:
    x = speech("LibriSpeech train", 0)[: 3 * 16_000]
    noisy = add_noise(x, 10.0, seed=0)
    y = rnnoise.suppress(noisy)
    before = np.mean((noisy - x) ** 2)
    after = np.mean((y - x) ** 2)
    assert 10 * np.log10(before / after) > 3.0  # measured ~6 dB on this clip


def test_output_keeps_length_and_lines_up_with_the_input() -> None:
    x = speech("LibriSpeech train", 1)[:32_000]
    y = rnnoise.suppress(x)
    assert y.shape == x.shape and y.dtype == np.float32
    # the library's two frames of delay are taken out
    c = np.correlate(y[4000:20000], x[4000 - 200 : 20000 + 200], "valid")
    assert abs(int(c.argmax()) - 200) <= 2


def test_noise_alone_is_mostly_removed() -> None:
    n = noise(2.0, 0.05)
    y = rnnoise.suppress(n)
    assert np.mean(y**2) < 0.1 * np.mean(n**2)


def test_the_condition_is_noise_then_suppression_and_is_seeded() -> None:
    x = speech("LibriSpeech train", 0)[:16_000]
    a, b = CONDITIONS["denoised_10db"](x, 1), CONDITIONS["denoised_10db"](x, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, CONDITIONS["denoised_10db"](x, 2))


def test_other_rates_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="16 kHz"):
        rnnoise.suppress(np.zeros(8000, dtype=np.float32), sr=8000)
