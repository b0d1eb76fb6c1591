"""The synthetic-voice training and evaluation machinery, on tiny made-up data (no model is
trained on real data here), and the shipped model files against their card."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from detectors.dataset import Clip, pairs
from detectors.degrade import alaw_8k, band_limit
from detectors.frontend import (
    window_bands,
    window_stats_v3,
)
from detectors.onnx_model import MODELS_DIR
from detectors.training.evaluation import Splits, holdout_group
from detectors.training.mlp import MlpParams, train_mlp
from detectors.training.stats_v2 import StatsV3

from .helpers import toy_windows

SR = 16_000


def clip(name: str, label: int, system: str, speaker: str, corpus: str, origin: str = "") -> Clip:
    return Clip(
        path=Path(f"/data/set/{corpus}/x/{name}.flac"),
        label=label,
        system=system,
        speaker=speaker,
        corpus=corpus,
        origin=origin,
    )


def toy_clips() -> list[Clip]:
    out = []
    for s in range(12):
        out.append(clip(f"b{s}", 0, "Libri", f"spk{s}", "librispeech"))
        out.append(clip(f"v{s}", 1, "VocoderA", f"spk{s}", "voc"))
        out.append(clip(f"t{s}", 1, "TtsB", f"tts{s % 2}", "tts"))
    return out


def test_loso_trains_without_the_system_its_speakers_and_the_test_fold() -> None:
    sp = Splits(toy_clips())
    for k in range(sp.n_folds):
        train, test = sp.loso("VocoderA", k)
        held_speakers = {c.speaker for c in sp.clips if c.system == "VocoderA"}
        assert not any(sp.clips[i].system == "VocoderA" for i in np.flatnonzero(train))
        assert not any(sp.clips[i].speaker in held_speakers for i in np.flatnonzero(train))
        assert not set(sp.speakers[train]) & set(sp.speakers[test])
        assert {sp.clips[i].system for i in np.flatnonzero(test)} <= {"VocoderA", "Libri"}


def test_every_clip_of_a_held_out_system_is_tested_once() -> None:
    sp = Splits(toy_clips())
    seen = np.zeros(sp.n, int)
    for k in range(sp.n_folds):
        seen += sp.loso("TtsB", k)[1]
    assert (seen[sp.groups == "TtsB"] == 1).all()


def test_voices_of_one_engine_are_held_out_together() -> None:
    assert holdout_group("flite_awb") == holdout_group("flite_slt")
    assert holdout_group("espeakng_en-us") != holdout_group("flite_awb")


def test_copy_synthesis_is_paired_with_its_source_clip() -> None:
    src = Clip(
        path=Path("/d/audio/librispeech/bonafide/1-2-3_ab.flac"),
        label=0,
        system="Libri",
        speaker="1",
        corpus="librispeech",
    )
    fake = Clip(
        path=Path("/d/audio_neural/hifigan_resynth/spoof/hfu_1.flac"),
        label=1,
        system="HiFi-GAN",
        speaker="1",
        corpus="hifigan_resynth",
        origin="vocoder copy-synthesis of audio/librispeech/bonafide/1-2-3_ab.flac",
    )
    lj = clip("LJ040-0073_5114c8cc26", 0, "LJSpeech", "LJ", "ljspeech_wavefake")
    wf = clip("LJ040-0073_gen_c1623c2213", 1, "WaveFake", "LJ", "ljspeech_wavefake")
    assert pairs([src, fake, lj, wf]) == [(1, 0), (3, 2)]


def test_window_statistics_ignore_loudness() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    x = (0.2 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(3 * t)))).astype(np.float32)
    x += 0.01 * rng.standard_normal(len(x)).astype(np.float32)
    loud = window_stats_v3(window_bands(x))
    quiet = window_stats_v3(window_bands(x * 0.01))
    assert loud.shape == (2, 168 + 48)
    assert np.allclose(loud[:, :168], quiet[:, :168], atol=1e-3)
    # fine structure: the 4-8 kHz residual of this tone is hiss 40 dB down, stored in float16
    assert np.allclose(loud[:, 168:], quiet[:, 168:], atol=0.05)


def test_telephone_conditions_remove_the_upper_band() -> None:
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(2 * SR)).astype(np.float32)
    for y in (band_limit(x), alaw_8k(x)):
        spec = np.abs(np.fft.rfft(y)) ** 2
        f = np.fft.rfftfreq(len(y), 1 / SR)
        assert len(y) == len(x)
        assert spec[f > 5000].sum() < 0.01 * spec[(f > 500) & (f < 3000)].sum()


def test_stats_recipe_fits_a_separable_toy_set_reproducibly() -> None:
    n = 60
    windows, labels = toy_windows(n, seed=2)
    rec = StatsV3()
    x = rec.prepare(windows)
    clip_idx = np.arange(n)
    views = [(x, clip_idx)]
    a = rec.fit(views, labels, np.ones(n, bool), seed=0)
    b = rec.fit(views, labels, np.ones(n, bool), seed=0)
    lg = rec.clip_logits(a, x, clip_idx, n)
    assert np.array_equal(lg, rec.clip_logits(b, x, clip_idx, n))
    assert lg[labels == 1].min() > lg[labels == 0].max()


def test_shipped_onnx_files_are_the_ones_the_card_names() -> None:
    card = (MODELS_DIR / "synthetic_voice.md").read_text()
    for name in ("synthetic_voice.onnx", "synthetic_voice.int8.onnx"):
        m = re.search(rf"`{re.escape(name)}`[^`]*sha256 `([0-9a-f]{{64}})`", card)
        assert m, f"card names no full sha256 for {name}"
        assert hashlib.sha256((MODELS_DIR / name).read_bytes()).hexdigest() == m.group(1)


def test_shipped_models_carry_their_false_alarm_bounded_operating_point() -> None:
    from detectors.onnx_model import OnnxModel

    for name in ("synthetic_voice.onnx", "synthetic_voice_deep.onnx"):
        meta = OnnxModel(MODELS_DIR / name).metadata
        assert meta["operating_rule"] == "fa_bounded", name
        assert 0.5 <= float(meta["operating_score"]) < 1.0, name


def _two_spoof_groups() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bona fide around 0; a large spoof group far off on one axis, a small one a little off
    on the other (the one a plain fit neglects)."""
    rng = np.random.default_rng(3)
    real = rng.standard_normal((1000, 2))
    easy = rng.standard_normal((900, 2)) + np.array([3.0, 0.0])
    hard = rng.standard_normal((100, 2)) + np.array([0.0, 1.5])
    x = np.concatenate([real, easy, hard])
    y = np.r_[np.zeros(1000), np.ones(1000)].astype(int)
    g = np.array(["real"] * 1000 + ["easy"] * 900 + ["hard"] * 100)
    return x, y, g


def test_group_dro_off_is_the_plain_fit() -> None:
    x, y, g = _two_spoof_groups()
    plain = train_mlp(x, y, hidden=4, epochs=3, seed=1)
    off = train_mlp(x, y, hidden=4, epochs=3, seed=1, groups=g, dro_eta=0.0)
    assert np.array_equal(plain.logits(x), off.logits(x))


def test_group_dro_lowers_the_loss_of_the_group_a_plain_fit_neglects() -> None:
    x, y, g = _two_spoof_groups()
    hard = g == "hard"

    def hard_loss(p: MlpParams) -> float:
        return float(np.logaddexp(0.0, -p.logits(x[hard])).mean())

    plain = train_mlp(x, y, hidden=8, epochs=10, seed=1)
    dro = train_mlp(x, y, hidden=8, epochs=10, seed=1, groups=g, dro_eta=1.0)
    assert hard_loss(dro) < hard_loss(plain) - 0.05


def test_stats_v4_adds_a_reference_fitted_on_the_bona_fide_windows_only() -> None:
    from detectors.training.stats_v2 import REFERENCE_COMPONENTS, StatsV4

    n = 200  # the one-class reference needs 2 x 32 bona fide windows per view
    windows, labels = toy_windows(n, seed=5)
    rec = StatsV4()
    x = rec.prepare(windows)
    model = rec.fit([(x, np.arange(n))], labels, np.ones(n, bool), seed=0)
    ref = model.params.reference
    assert ref is not None and ref.proj.shape == (1, x.shape[1] - 1, REFERENCE_COMPONENTS)
    # one view, one component, standardised on its bona fide windows (not the spoof ones)
    assert np.allclose(ref.mean[0], x[labels == 0, 1:].mean(axis=0))
    base = StatsV3().fit([(x, np.arange(n))], labels, np.ones(n, bool), seed=0)
    assert np.allclose(model.logits(x) - base.logits(x), ref.term(x[:, 1:]))


def test_stats_v5_classifier_skips_the_reference_only_view_the_reference_keeps_it() -> None:
    from detectors.training.stats_v2 import TRAIN_CONDITIONS_V5, StatsV4, StatsV5

    n = 200
    windows, labels = toy_windows(n, seed=5)
    rec = StatsV5()
    x = rec.prepare(windows)
    other = rec.prepare(toy_windows(n, seed=9)[0])  # stands in for the suppressed view
    views = [(x, np.arange(n))] * (len(TRAIN_CONDITIONS_V5) - 1) + [(other, np.arange(n))]
    model = rec.fit(views, labels, np.ones(n, bool), seed=0)
    ref = model.params.reference
    assert ref is not None and ref.proj.shape[0] == len(TRAIN_CONDITIONS_V5)
    assert np.allclose(ref.mean[-1], other[labels == 0, 1:].mean(axis=0))
    # the classifier is the one 4.x fits on the other views alone
    v4 = StatsV4().fit(views[:-1], labels, np.ones(n, bool), seed=0)
    assert np.allclose(model.params.w1, v4.params.w1)


def test_classifier_views_name_a_count_mismatch() -> None:
    from detectors.training.stats_v2 import classifier_views

    with pytest.raises(ValueError, match="2 views for 1 training conditions"):
        classifier_views([(np.zeros((1, 2)), np.zeros(1))] * 2, ["clean"])
