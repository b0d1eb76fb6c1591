"""Voicing and pitch of speech frames (detectors/pitch.py) and their place in the window arrays."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from detectors.frontend import (
    PITCH_COL,
    SR,
    WINDOW_COLUMNS,
    power_spectrogram,
    speech_mask_frames,
    window_frames,
    window_stats_split,
    window_stats_split_all,
    window_stats_v3,
    window_stats_v4,
)
from detectors.pitch import (
    F0_REF,
    N_PITCH,
    N_PITCH_STATS,
    PITCH_STAT_NAMES,
    frame_pitch,
    pitch_stats,
)

from .helpers import noise


def _voiced(f0: np.ndarray | float = 150.0, seconds: float = 1.0) -> np.ndarray:
    """Harmonics up to 3.5 kHz of a (possibly moving) fundamental, a little noise."""
    n = int(seconds * SR)
    f = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, int(3500 / f.max())))
    return (0.1 * x + 0.001 * noise(seconds, 1.0)).astype(np.float32)


def _f0(pitch: np.ndarray) -> np.ndarray:
    return F0_REF * np.exp(pitch[:, 1])


@pytest.mark.parametrize("f0", [95.0, 150.0, 240.0, 350.0])
def test_a_periodic_frame_reads_its_fundamental_and_high_periodicity(f0: float) -> None:
    p = frame_pitch(power_spectrogram(_voiced(f0)))
    assert p.shape[1] == N_PITCH
    assert np.median(p[:, 0]) > 0.8
    assert np.median(np.abs(_f0(p) / f0 - 1)) < 0.01


def test_noise_is_not_voiced_and_silence_reads_zero() -> None:
    hiss = frame_pitch(power_spectrogram(noise(1.0, 1.0)))
    assert np.median(hiss[:, 0]) < 0.5
    silent = frame_pitch(power_spectrogram(np.zeros(SR, np.float32)))
    assert np.all(silent == 0.0)


def test_pitch_is_the_same_through_a_telephone_band_and_at_any_level() -> None:
    x = _voiced(180.0)
    b, a = scipy.signal.butter(4, [300, 3400], btype="band", fs=SR)
    base = frame_pitch(power_spectrogram(x))
    phone = frame_pitch(power_spectrogram(scipy.signal.lfilter(b, a, x).astype(np.float32)))
    quiet = frame_pitch(power_spectrogram(0.01 * x))
    keep = slice(10, None)  # past the filter's onset
    assert np.median(np.abs(_f0(phone[keep]) / _f0(base[keep]) - 1)) < 0.01
    assert np.allclose(quiet, base, atol=1e-3)


def test_window_arrays_carry_pitch_in_the_last_columns() -> None:
    power = power_spectrogram(_voiced())
    w = window_frames(power)
    assert w.shape[1] == WINDOW_COLUMNS == PITCH_COL + N_PITCH
    assert np.allclose(w[: len(power), PITCH_COL:], frame_pitch(power), atol=1e-6)


def _stats(x: np.ndarray) -> dict[str, float]:
    w = window_frames(power_spectrogram(x))[None]
    s = pitch_stats(w[:, :, PITCH_COL:], speech_mask_frames(w))
    assert s.shape == (1, N_PITCH_STATS)
    return dict(zip(PITCH_STAT_NAMES, s[0].tolist(), strict=True))


def test_a_wavering_pitch_moves_more_from_frame_to_frame_than_a_steady_one() -> None:
    t = np.arange(SR) / SR
    steady = _stats(_voiced(150.0))
    rng = np.random.default_rng(3)
    # 2 % random wander every 10 ms (a larynx's micro-variation), around the same pitch
    wander = np.repeat(np.exp(0.02 * rng.standard_normal(100)), SR // 100)
    wavering = _stats(_voiced(150.0 * wander))
    glide = _stats(_voiced(150.0 * np.exp(0.3 * t)))  # a smooth rise: intonation, not jitter
    assert steady["voiced_fraction"] > 0.9
    assert wavering["lnf0_flux"] > 3 * steady["lnf0_flux"]
    assert glide["lnf0_std"] > 5 * steady["lnf0_std"]
    assert glide["lnf0_accel"] < wavering["lnf0_accel"]


def test_window_stats_v4_extend_v3_with_the_pitch_statistics() -> None:
    w = window_frames(power_spectrogram(_voiced()))[None]
    v3, v4 = window_stats_v3(w), window_stats_v4(w)
    assert v4.shape == (1, v3.shape[1] + N_PITCH_STATS)
    assert np.array_equal(v4[:, : v3.shape[1]], v3)


def test_split_fine_structure_reads_voiced_and_unvoiced_frames_apart() -> None:
    voiced = _voiced(150.0, seconds=0.5)
    hiss = 0.05 * noise(0.5, 1.0, seed=5)  # unvoiced speech-like noise at a similar level
    w = window_frames(power_spectrogram(np.concatenate([voiced, hiss])))[None]
    v2 = window_stats_v3(w)[:, :168]
    split = window_stats_split(w)
    assert split.shape == (1, 168 + 2 * 48 + 1)
    assert np.array_equal(split[:, :168], v2)
    assert 0.3 < split[0, -1] < 0.7  # about half the speech frames are voiced
    v_corr, u_corr = split[0, 168 + 32 : 168 + 48], split[0, 216 + 32 : 216 + 48]
    assert v_corr[:4].mean() > 0.8 > 0.3 > u_corr[:4].mean()  # harmonics hold, noise does not
    both = window_stats_split_all(w)
    assert both.shape == (1, 216 + 2 * 48 + 1)
    assert np.array_equal(both[:, :216], window_stats_v3(w))


def test_window_arrays_without_pitch_leave_it_nan_and_the_rest_identical() -> None:
    power = power_spectrogram(_voiced())
    full, lean = window_frames(power), window_frames(power, pitch=False)
    assert np.isnan(lean[: len(power), PITCH_COL:]).all()
    assert np.array_equal(lean[:, :PITCH_COL], full[:, :PITCH_COL])
    assert np.array_equal(window_stats_v3(lean[None]), window_stats_v3(full[None]))
