"""Operating point and reliability fit on held-out systems and corpora (training/heldout.py)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.training import heldout

GROUPS = np.array(["sysA"] * 50 + ["sysB"] * 50 + [""] * 200)
CORPORA = np.array([""] * 100 + ["c1"] * 100 + ["c2"] * 100)


def _preds(rng: np.random.Generator) -> heldout.OUT_OF_FOLD:
    """Out-of-fold logits: two held-out systems, two held-out corpora; c2 runs hot."""
    n = len(GROUPS)
    spoof = np.r_[rng.normal(2.0, 1.0, 50), rng.normal(1.0, 1.0, 50)]
    out: heldout.OUT_OF_FOLD = {}
    for name, idx, v in (
        ("sysA", slice(0, 50), spoof[:50]),
        ("sysB", slice(50, 100), spoof[50:]),
        ("c1", slice(100, 200), rng.normal(-1.0, 1.0, 100)),
        ("c2", slice(200, 300), rng.normal(0.0, 1.0, 100)),
    ):
        arr = np.full(n, np.nan)
        arr[idx] = v
        kind = "loso" if name.startswith("sys") else "corpus"
        out[(kind, name)] = {"clean": arr}
    out[("cv", "")] = {"clean": np.zeros(n)}  # in-domain logits never join the pool
    return out


def test_pool_gives_every_held_out_name_and_both_classes_equal_weight() -> None:
    pool = heldout.heldout_pool(_preds(np.random.default_rng(0)), GROUPS, CORPORA)
    assert len(pool.logits) == 300
    for name in ("sysA", "sysB", "c1", "c2"):
        assert pool.weights[pool.names == name].sum() == pytest.approx(0.5)


def test_pool_leaves_out_the_excluded_name() -> None:
    pool = heldout.heldout_pool(_preds(np.random.default_rng(0)), GROUPS, CORPORA, exclude="sysB")
    assert "sysB" not in set(pool.names)
    assert pool.weights[pool.labels == 1].sum() == pytest.approx(1.0)


def test_pool_without_a_corpus_out_view_is_refused() -> None:
    preds = _preds(np.random.default_rng(0))
    only_loso = {k: v for k, v in preds.items() if k[0] == "loso"}
    with pytest.raises(ValueError, match="corpus-out"):
        heldout.heldout_pool(only_loso, GROUPS, CORPORA)


def test_weighted_platt_recovers_a_known_log_likelihood_ratio() -> None:
    # equal-variance Gaussians N(+1, 1) vs N(-1, 1): the true LLR is 2 * s, intercept 0
    rng = np.random.default_rng(1)
    s = np.r_[rng.normal(1.0, 1.0, 20000), rng.normal(-1.0, 1.0, 5000)]
    y = np.r_[np.ones(20000), np.zeros(5000)]  # unbalanced counts: the fit must balance them
    a, b = heldout.weighted_platt(s, y, np.ones_like(s))
    assert a == pytest.approx(2.0, abs=0.1)
    assert b == pytest.approx(0.0, abs=0.08)


def test_operating_point_holds_false_alarms_on_the_hottest_corpus() -> None:
    preds = _preds(np.random.default_rng(2))
    pool = heldout.heldout_pool(preds, GROUPS, CORPORA)
    t = heldout.fa_bounded_logit(pool, target=0.05)
    for corpus in ("c1", "c2"):
        v = preds[("corpus", corpus)]["clean"][corpus == CORPORA]
        assert (v >= t).mean() <= 0.05
    c2 = preds[("corpus", "c2")]["clean"][CORPORA == "c2"]
    assert (c2 >= t).mean() > 0.0  # the bound is tight on the strictest corpus, not beyond


def test_operating_point_without_the_hot_corpus_is_lower() -> None:
    preds = _preds(np.random.default_rng(3))
    full = heldout.heldout_pool(preds, GROUPS, CORPORA)
    without_c2 = heldout.heldout_pool(preds, GROUPS, CORPORA, exclude="c2")
    assert heldout.fa_bounded_logit(without_c2) < heldout.fa_bounded_logit(full)


def test_calibration_reads_a_logit_as_a_log_likelihood_ratio() -> None:
    cal = heldout.Calibration(platt_a=2.0, platt_b=-1.0, operating_logit=1.0)
    assert cal.llr(np.array([0.5, 1.0])).tolist() == [0.0, 1.0]
    assert cal.operating_score == pytest.approx(1 / (1 + np.exp(-1.0)))


def test_without_leave_one_system_out_the_operating_point_falls_back_to_the_score_half() -> None:
    from detectors.training.evaluation import EvaluationReport, Splits, _calibration

    from .test_detector_training import toy_clips

    clips = toy_clips()
    splits = Splits(clips)
    rng = np.random.default_rng(4)
    cv = np.where(splits.labels == 1, rng.normal(1, 1, len(clips)), rng.normal(-1, 1, len(clips)))
    corpus_only: heldout.OUT_OF_FOLD = {("cv", ""): {"clean": cv}}
    for c in splits.corpus_names():  # what `evaluate --no-loso` leaves: CV and corpus-out
        corpus_only[("corpus", c)] = {"clean": np.where(splits.corpora == c, cv, np.nan)}
    report = EvaluationReport(
        data=[], model="", recipe="", train_conditions=[], unseen_conditions=[]
    )
    full, per_name = _calibration(report, splits, corpus_only, cv, splits.group_names())
    assert report.operating_rule == "score_0.5" and per_name == {}
    assert full.operating_score == pytest.approx(0.5)
