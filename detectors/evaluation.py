"""Evaluation of audio.synthetic_voice on a labelled set (`liveguard detectors evaluate`).

Three views, from least to most honest about unseen attacks:
- `shipped`: the shipped model on the set as is, per condition (in-sample if the set is
  the training set — then it only shows calibration and degradation behaviour);
- `cross_validation`: the shipped recipe retrained on speaker-disjoint folds and tested
  on the held-out speakers, per condition;
- `leave_one_system_out`: retrained without one generating system (and without the test
  speakers), tested on that system against held-out bona fide speech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel

from detectors.dataset import Clip, read_manifest
from detectors.degrade import available_conditions
from detectors.metrics_eval import eer, rates_at, roc_auc
from detectors.synthetic_voice import SyntheticVoiceConfig, SyntheticVoiceDetector
from detectors.training import recipe
from detectors.training.featurize import featurize

OPERATING_THRESHOLD = 0.5  # calibrated score; the detector's own "spoof" verdict


class Metrics(BaseModel):
    n_bonafide: int
    n_spoof: int
    eer: float
    auc: float
    false_alarm_at_op: float | None = None
    miss_at_op: float | None = None


class EvaluationReport(BaseModel):
    data: str
    model: str
    operating_threshold: float = OPERATING_THRESHOLD
    shipped: dict[str, dict[str, Metrics]]  # condition -> "overall" | system -> metrics
    cross_validation: dict[str, Metrics]  # condition -> metrics
    leave_one_system_out: dict[str, Metrics]  # system -> metrics (clean)


def _metrics(
    scores: np.ndarray, labels: np.ndarray, calibrated: np.ndarray | None = None
) -> Metrics:
    ok = ~np.isnan(scores)
    s, y = scores[ok], labels[ok]
    m = Metrics(
        n_bonafide=int((y == 0).sum()),
        n_spoof=int((y == 1).sum()),
        eer=round(eer(s, y)[0], 4),
        auc=round(roc_auc(s, y), 4),
    )
    if calibrated is not None:
        fa, miss = rates_at(calibrated[ok], y, OPERATING_THRESHOLD)
        m.false_alarm_at_op, m.miss_at_op = round(fa, 4), round(miss, 4)
    return m


def _systems(clips: list[Clip]) -> np.ndarray:
    return np.array([c.system if c.label else "bonafide" for c in clips])


def evaluate(
    data_dir: Path,
    conditions: list[str] | None = None,
    loso: bool = True,
    cross_validation: bool = True,
    variant: str = "fp32",
) -> EvaluationReport:
    clips = read_manifest(data_dir)
    labels = np.array([c.label for c in clips])
    systems = _systems(clips)
    conditions = conditions or available_conditions()
    det = SyntheticVoiceDetector(SyntheticVoiceConfig(variant=variant))  # type: ignore[arg-type]
    det.start()
    views = {c: featurize(clips, c) for c in conditions}

    shipped: dict[str, dict[str, Metrics]] = {}
    for cond, (x, clip) in views.items():
        lg = recipe.clip_logits(det.score_vectors(x), clip, len(clips))
        cal = np.array([det.calibrated(v) if not np.isnan(v) else np.nan for v in lg])
        per = {"overall": _metrics(lg, labels, cal)}
        for sys_name in sorted(set(systems) - {"bonafide"}):
            m = (systems == sys_name) | (labels == 0)
            per[sys_name] = _metrics(lg[m], labels[m], cal[m])
        shipped[cond] = per

    folds = recipe.speaker_folds([c.speaker for c in clips])
    train_views = [views.get(c) or featurize(clips, c) for c in ("clean", *recipe.AUG_CONDITIONS)]
    cv: dict[str, Metrics] = {}
    if cross_validation:
        preds = {c: np.full(len(clips), np.nan) for c in conditions}
        for k in range(recipe.N_FOLDS):
            params = recipe.fit(train_views, labels, folds != k)
            for cond, (x, clip) in views.items():
                lg = recipe.clip_logits(params.logits(x), clip, len(clips))
                preds[cond][folds == k] = lg[folds == k]
        cv = {cond: _metrics(p, labels) for cond, p in preds.items()}

    loso_out: dict[str, Metrics] = {}
    if loso:
        x, clip = views.get("clean") or featurize(clips, "clean")
        for sys_name in sorted(set(systems) - {"bonafide"}):
            pred = np.full(len(clips), np.nan)
            for k in range(recipe.N_FOLDS):
                params = recipe.fit(train_views, labels, (folds != k) & (systems != sys_name))
                lg = recipe.clip_logits(params.logits(x), clip, len(clips))
                test = (folds == k) & ((systems == sys_name) | (labels == 0))
                pred[test] = lg[test]
            loso_out[sys_name] = _metrics(pred, labels)
    return EvaluationReport(
        data=str(data_dir),
        model=f"{det.ref} ({variant}, {det.model_digest()})",
        shipped=shipped,
        cross_validation=cv,
        leave_one_system_out=loso_out,
    )
