"""The one-class bona fide reference of synthetic_voice 4.x, on made-up data, and its ONNX
form against the numpy one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from detectors.onnx_model import MODELS_DIR, OnnxModel
from detectors.training.bona_fide_reference import fit_reference
from detectors.training.mlp import MlpParams, export_onnx, train_mlp


def _real(n: int = 4000, d: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return rng.standard_normal((n, d)) @ mix + 5.0


def test_typical_real_windows_add_nothing_to_the_logit() -> None:
    real = _real()
    ref = fit_reference([real], components=6, hinge=0.5, cap=3.0, weight=3.0)
    # at or below the median distance the one-sided term is exactly zero
    d = ref.distance(real)
    assert (ref.term(real[d <= 0.5]) == 0.0).all()
    assert (ref.term(real) == 0.0).mean() > 0.5


def test_a_window_far_outside_real_speech_raises_the_logit_up_to_the_cap() -> None:
    real = _real()
    ref = fit_reference([real], components=6, hinge=0.5, cap=3.0, weight=3.0)
    far = real[:5] + 50.0 * np.eye(12)[0] @ np.ones((12, 12))
    assert np.allclose(ref.term(far), 3.0 * 3.0)  # weight x cap, never more


def test_the_reference_needs_enough_real_windows() -> None:
    with pytest.raises(ValueError, match="bona fide windows"):
        fit_reference([_real(n=10)], components=6, hinge=0.5, cap=3.0, weight=3.0)


def test_the_reference_is_reproducible_for_a_seed() -> None:
    real = _real(n=5000)
    a = fit_reference([real], 6, 0.5, 3.0, 3.0, max_rows=1000, seed=4)
    b = fit_reference([real], 6, 0.5, 3.0, 3.0, max_rows=1000, seed=4)
    assert np.array_equal(a.proj, b.proj) and np.array_equal(a.median, b.median)


def test_a_window_typical_of_any_one_view_is_not_an_outlier() -> None:
    # a degraded view (say MP3) far from the clean one: its real windows are at home there
    clean, mp3 = _real(seed=0), _real(seed=1) - 40.0
    both = fit_reference([clean, mp3], 6, 0.5, 3.0, 3.0)
    only_clean = fit_reference([clean], 6, 0.5, 3.0, 3.0)
    assert (both.term(mp3) == 0.0).mean() > 0.5
    assert (only_clean.term(mp3) == 9.0).all()


def _model_with_reference() -> tuple[MlpParams, np.ndarray]:
    real = _real()
    fake = _real(n=1000, seed=1) * 0.5 + 5.0
    x = np.concatenate([real, fake])
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))].astype(int)
    params = train_mlp(x, y, hidden=8, epochs=2, seed=0)
    params.reference = fit_reference([real, real[:2000] * 2.0 - 3.0], 6, 0.5, 3.0, 3.0)
    odd = real[:50] + 8.0  # far outside: the reference adds to these
    return params, np.concatenate([x[::50], odd])


def test_exported_graph_computes_the_numpy_logit_with_the_reference(tmp_path: Path) -> None:
    params, x = _model_with_reference()
    path = tmp_path / "m.onnx"
    export_onnx(params, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logit, _ = sess.run(None, {"features": x.astype(np.float32)})
    assert params.reference is not None and params.reference.term(x).max() > 0
    np.testing.assert_allclose(logit[:, 0], params.logits(x), rtol=1e-4, atol=1e-3)


def test_shipped_edge_model_names_its_reference() -> None:
    meta = OnnxModel(MODELS_DIR / "synthetic_voice.onnx").metadata
    assert meta["reference"].startswith("bona fide reference: top 32 components")
