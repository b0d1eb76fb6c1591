"""audio.synthetic_voice_deep, the second-pass model: stage-2 registration, its features,
its recipe on tiny made-up data (nothing is trained on real data here), the quick LOSO
split, and the shipped ONNX files against their card and on real speech."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from detectors.audio_io import load_audio
from detectors.deep_input import deep_stats
from detectors.degrade import add_noise, mulaw_8k
from detectors.frontend import N_BANDS, window_bands
from detectors.onnx_model import MODELS_DIR
from detectors.registry import DetectorRegistrationError, DetectorRegistry, discover
from detectors.second_pass import split_detectors
from detectors.synthetic_voice_deep import SyntheticVoiceDeepDetector
from detectors.training.deep_stats import DeepStatsV1, merge_ensemble
from detectors.training.evaluation import Splits
from detectors.training.mlp import train_mlp

from .helpers import clip_path, last, run_detectors, toy_windows
from .test_detector_training import toy_clips

SR = 16_000
DEEP = "audio.synthetic_voice_deep"


def test_second_pass_model_is_registered_but_never_always_on() -> None:
    everything = discover()
    assert DEEP in everything.names()  # live sessions put it in the second-pass pool
    assert DEEP not in discover(edge_only=True).names()
    assert DEEP not in discover([DEEP], edge_only=True).names()
    assert discover([DEEP]).names() == [DEEP]
    first, pool = split_detectors(list(everything), None)
    assert DEEP in [d.name for d in pool]
    assert DEEP not in [d.name for d in first]
    assert "audio.synthetic_voice" in [d.name for d in first]


def test_a_non_bool_second_pass_flag_is_refused_at_registration() -> None:
    det = SyntheticVoiceDeepDetector()
    det.second_pass_only = "yes"  # type: ignore[assignment]
    with pytest.raises(DetectorRegistrationError, match="second_pass_only"):
        DetectorRegistry().register(det, plugin="acme.deep")


def test_deep_statistics_ignore_loudness_and_extend_the_edge_statistics() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    x = (0.2 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(3 * t)))).astype(np.float32)
    x += 0.01 * rng.standard_normal(len(x)).astype(np.float32)
    loud, quiet = deep_stats(window_bands(x)), deep_stats(window_bands(x * 0.01))
    assert loud.shape == (2, 168 + 3 * N_BANDS + 48)
    # equal up to the float16 rounding of the cached log bands (-40 dB moves them)
    n = 168 + 3 * N_BANDS
    assert np.allclose(loud[:, :n], quiet[:, :n], rtol=1e-2, atol=1e-2)
    assert np.allclose(loud[:, n:], quiet[:, n:], atol=0.05)  # the edge test says why
    assert np.array_equal(loud[:, :168], deep_stats(window_bands(x), extended=False))
    assert np.array_equal(loud[:, :n], deep_stats(window_bands(x), fine=False))


def test_the_merged_ensemble_is_exactly_the_members_mean_logit() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 6)) * [1, 2, 3, 4, 5, 6] + 3
    y = (x[:, 0] + rng.standard_normal(200) > 3).astype(int)
    members = [train_mlp(x, y, hidden=4, epochs=3, seed=s) for s in range(3)]
    merged = merge_ensemble(members)
    mean = np.mean([m.logits(x) for m in members], axis=0)
    assert np.allclose(merged.logits(x), mean, atol=1e-9)
    assert merged.n_parameters == sum(m.n_parameters for m in members) - 2


def test_deep_recipe_fits_a_separable_toy_set_reproducibly() -> None:
    n = 160  # the one-class reference needs 2 x 32 bona fide windows per view
    windows, labels = toy_windows(n, seed=2)
    rec = DeepStatsV1(hidden=8, n_models=2)
    x = rec.prepare(windows)
    idx = np.arange(n)
    views = [(x, idx)] * len(rec.train_conditions)  # one per training view, as the protocol
    a = rec.fit(views, labels, np.ones(n, bool), seed=0)
    b = rec.fit(views, labels, np.ones(n, bool), seed=0)
    lg = rec.clip_logits(a, x, idx, n)
    assert np.array_equal(lg, rec.clip_logits(b, x, idx, n))
    assert lg[labels == 1].min() > lg[labels == 0].max()


def test_quick_loso_trains_without_the_system_its_speakers_and_the_test_speakers() -> None:
    sp = Splits(toy_clips())
    for g in sp.group_names():
        train, test = sp.loso_quick(g)
        in_g = sp.groups == g
        assert (test[in_g]).all()  # every clip of the system is tested
        assert not (train & in_g).any()
        assert not set(sp.speakers[train]) & set(sp.speakers[test])
        assert set(sp.labels[test & ~in_g]) == {0}


def _deep(path, variant: str = "fp32", degrade=None):
    x = load_audio(path)
    if degrade is not None:
        x = degrade(x)
    det = SyntheticVoiceDeepDetector({"variant": variant})
    return last(run_detectors([det], {"remote": x}), DEEP)


def test_second_pass_model_separates_tts_from_real_speech_with_calibrated_scores() -> None:
    real = [_deep(clip_path("LibriSpeech train", i)) for i in range(3)]
    fake = [_deep(clip_path("flite_slt", i)) for i in range(3)]
    assert max(s.score for s in real) < 0.5 < min(s.score for s in fake)
    assert all(s.detector.startswith("synthetic_voice_deep@") for s in real + fake)


def test_second_pass_confidence_falls_on_degraded_input() -> None:
    path = clip_path("LibriSpeech train", 1)
    clean = _deep(path)
    assert _deep(path, degrade=lambda x: add_noise(x, 0.0)).confidence < clean.confidence
    assert _deep(path, degrade=mulaw_8k).confidence < clean.confidence


def test_int8_second_pass_model_agrees_with_fp32() -> None:
    for path in (clip_path("LibriSpeech train", 2), clip_path("YourTTS zero-shot TTS", 0)):
        assert abs(_deep(path).score - _deep(path, variant="int8").score) < 0.05


def test_shipped_second_pass_onnx_files_are_the_ones_the_card_names() -> None:
    card = (MODELS_DIR / "synthetic_voice_deep.md").read_text()
    for name in ("synthetic_voice_deep.onnx", "synthetic_voice_deep.int8.onnx"):
        m = re.search(rf"`{re.escape(name)}`[^`]*sha256 `([0-9a-f]{{64}})`", card)
        assert m, f"card names no full sha256 for {name}"
        assert hashlib.sha256((MODELS_DIR / name).read_bytes()).hexdigest() == m.group(1)
