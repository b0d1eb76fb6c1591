"""The wideband lossy codecs real recordings come in (Vorbis, MP3 128 kbit/s, Opus 24 kbit/s,
AAC 96 kbit/s) as call conditions: real round trips through Debian's ffmpeg, evaluated,
and the two trained on kept apart from the two reported as unseen."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.degrade import CONDITIONS, available_conditions
from detectors.training.stats_v2 import TRAIN_CONDITIONS_V6

SR = 16_000
WIDEBAND = ("vorbis_q3", "mp3_128k", "opus_24k", "aac_96k")


def _speechlike(seconds: float = 2.0) -> np.ndarray:
    """Harmonics of a gliding 120-220 Hz voice up to 7.8 kHz, amplitude-modulated at 4 Hz."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 100 * t / seconds
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 40) if k * f0.max() < 7800)
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))
    return (0.1 * env * x).astype(np.float32)


def _band_db(y: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    return float(10 * np.log10(spec[(f >= lo) & (f < hi)].sum() + 1e-20))


def test_the_suite_evaluates_every_wideband_codec() -> None:
    assert set(WIDEBAND) <= set(available_conditions())


@pytest.mark.parametrize("name", WIDEBAND)
def test_a_round_trip_keeps_length_and_the_speech_band(name: str) -> None:
    x = _speechlike()
    y = CONDITIONS[name](x, 0)
    assert y.dtype == np.float32 and len(y) == len(x) and np.isfinite(y).all()
    # Lossy, not silent: the voice band survives within a few dB.
    assert abs(_band_db(y, 200, 3000) - _band_db(x, 200, 3000)) < 3.0
    assert not np.allclose(y, x, atol=1e-3)


def test_mp3_at_128k_cuts_the_top_of_the_band() -> None:
    x = _speechlike()
    y = CONDITIONS["mp3_128k"](x, 0)
    # LAME's low-pass at 16 kHz sampling sits near 7.3 kHz.
    assert _band_db(y, 7500, 8000) < _band_db(x, 7500, 8000) - 20


def test_vorbis_and_mp3_are_trained_on_opus_and_aac_stay_unseen() -> None:
    assert {"vorbis_q3", "mp3_128k"} <= set(TRAIN_CONDITIONS_V6)
    assert not {"opus_24k", "aac_96k", "opus_12k"} & set(TRAIN_CONDITIONS_V6)


def test_the_shipped_models_recipes_train_through_the_wideband_codecs() -> None:
    """What `detectors evaluate` retrains by default is what produced the shipped files."""
    from detectors.synthetic_voice import SyntheticVoiceDetector
    from detectors.synthetic_voice_deep import SyntheticVoiceDeepDetector
    from detectors.training.recipes import get_recipe

    for det in (SyntheticVoiceDetector, SyntheticVoiceDeepDetector):
        assert get_recipe(det.recipe).train_conditions == TRAIN_CONDITIONS_V6, det.name


def test_each_4_2_variant_hands_its_classifier_the_views_it_names() -> None:
    from detectors.training.stats_v2 import StatsV6, StatsV6C, StatsV6R

    views = [(np.full((1, 2), i, np.float32), np.zeros(1, int)) for i in range(16)]

    def seen(rec: StatsV6) -> set[str]:
        got = {int(x[0, 0]) for x, _ in rec.classifier_views(views)}
        return {c for i, c in enumerate(TRAIN_CONDITIONS_V6) if i in got}

    everything = set(TRAIN_CONDITIONS_V6)
    assert seen(StatsV6()) == everything - {"denoised_10db"}
    assert seen(StatsV6R()) == everything - {"denoised_10db", "vorbis_q3", "mp3_128k"}
    assert seen(StatsV6C()) == everything
