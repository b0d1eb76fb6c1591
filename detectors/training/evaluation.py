"""Evaluation of audio.synthetic_voice on labelled sets (`liveguard detectors evaluate`).

It lives with training because it retrains the shipped recipe for every split.

Views, from least to most honest about unseen attacks:
- `shipped`: the shipped model on the sets as they are, per condition (in-sample where a set
  is its training set: then it only shows calibration and degradation behaviour);
- `cross_validation`: the shipped recipe retrained on speaker-disjoint folds (all systems in
  training), tested on the held-out speakers, per condition, with false alarms per bona fide
  corpus;
- `leave_one_system_out`: per held-out system (flite's and espeak-ng's voices are held out
  together: another voice of the same engine is not an unseen system), retrained without the
  system, without its speakers and without the test fold's speakers (3 speaker folds over
  all sets; `speaker` is shared across `audio/` and `audio_neural/`); tested on the system
  against the held-out bona fide speech, per condition. Copy-synthesis pairs (HiFi-GAN vs its
  source clip, WaveFake vs LJSpeech) are reported apart: only the vocoder differs there;
- `leave_one_corpus_out`: per bona fide corpus, retrained without the corpus and its
  speakers; its false-alarm rate at the operating point (how the model treats real speech
  from a recording chain it has never heard).

The operating point is the detector's verdict, calibrated score >= 0.5. For retrained models
it is the logit where the recipe's Platt fit on speaker-disjoint out-of-fold scores crosses
0.5 (what the shipped model does). Conditions the recipe does not train on are listed in
`unseen_conditions` (a codec held out of training is reported apart there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from detectors.dataset import Clip, pairs, read_sets
from detectors.degrade import available_conditions
from detectors.metrics_eval import eer, rates_at, roc_auc
from detectors.training import heldout
from detectors.training.featurize import featurize_many
from detectors.training.mlp import balanced_platt
from detectors.training.recipes import Recipe, get_recipe

if TYPE_CHECKING:
    from detectors.synthetic_voice import SyntheticVoiceDetector

OPERATING_THRESHOLD = 0.5  # calibrated score; the detector's own "spoof" verdict (1.x, 2.0)
N_FOLDS = 3
#: log-likelihood ratio that alone moves a session from the bundled support-password-reset
#: prior (0.05) to its step_up threshold (0.20): logit(0.20) - logit(0.05). What the
#: `step_up_rate` view measures against (one signal at full confidence, nothing else).
STEP_UP_LLR = float(np.log(0.20 / 0.80) - np.log(0.05 / 0.95))


class Metrics(BaseModel):
    n_bonafide: int
    n_spoof: int
    eer: float
    auc: float
    false_alarm_at_op: float | None = None
    miss_at_op: float | None = None


class PairMetrics(BaseModel):
    n_pairs: int
    eer: float  # spoofs vs their own source clips only
    auc: float
    pair_accuracy: float  # share of pairs where the copy-synthesis scores above its source


class EvaluationReport(BaseModel):
    data: list[str]
    model: str
    recipe: str
    detector: str = "audio.synthetic_voice"
    #: True: one refit per held-out system (`Splits.loso_quick`) instead of one per fold
    loso_quick: bool = False
    #: held-out systems LOSO ran on (None: every system of the sets)
    loso_groups: list[str] | None = None
    operating_threshold: float = OPERATING_THRESHOLD
    operating_logit: float | None = None
    #: how the operating point was set: "fa_bounded" (the lowest logit with <= 5 % false
    #: alarms on every bona fide corpus held out of training, `heldout.py`; the figures per
    #: held-out system and corpus use the point fitted without it) or "score_0.5" (the
    #: protocol ran without the full LOSO and corpus-out views)
    operating_rule: str = "score_0.5"
    #: Platt (a, b) of the retrained models: speaker-disjoint CV logits, balanced classes
    platt: tuple[float, float] | None = None
    #: Platt (a, b) refitted on held-out logits only (unseen systems vs unseen corpora,
    #: clean): how far the in-domain log-likelihood ratio overstates the evidence there
    heldout_platt: tuple[float, float] | None = None
    #: per held-out system / corpus, clean: share of clips whose calibrated log-likelihood
    #: ratio alone reaches STEP_UP_LLR: clones vs real callers the policy would step up
    step_up_rate: dict[str, float] = {}
    train_conditions: list[str]
    unseen_conditions: list[str]
    shipped: dict[str, dict[str, Metrics]] = {}  # condition -> "overall" | system -> metrics
    shipped_false_alarms: dict[str, dict[str, float]] = {}  # condition -> bona fide corpus -> FA
    cross_validation: dict[str, Metrics] = {}
    cv_false_alarms: dict[str, dict[str, float]] = {}  # condition -> bona fide corpus -> FA
    leave_one_system_out: dict[str, dict[str, Metrics]] = {}  # group -> condition -> metrics
    loso_pairs: dict[str, PairMetrics] = {}  # group -> pairs (clean)
    leave_one_corpus_out: dict[str, dict[str, float]] = {}  # bona fide corpus -> condition -> FA


def metrics(scores: np.ndarray, labels: np.ndarray, threshold: float | None = None) -> Metrics:
    ok = ~np.isnan(scores)
    s, y = scores[ok], labels[ok]
    m = Metrics(
        n_bonafide=int((y == 0).sum()),
        n_spoof=int((y == 1).sum()),
        eer=round(eer(s, y)[0], 4),
        auc=round(roc_auc(s, y), 4),
    )
    if threshold is not None:
        fa, miss = rates_at(s, y, threshold)
        m.false_alarm_at_op, m.miss_at_op = round(fa, 4), round(miss, 4)
    return m


#: Spoof systems of our own making (`detectors.training.vocoded`): training data only,
#: never a held-out system nor a test clip.
AUGMENT_PREFIX = "aug: "
#: A training-aid vocoder of the same family as a shared system is dropped from training
#: whenever that system is held out, so leave-one-system-out stays unseen-system.
AUGMENT_FAMILY: dict[str, tuple[str, ...]] = {
    "aug: HiFi-GAN LJSpeech copy-synthesis": (
        "HiFi-GAN universal copy-synthesis",
        "WaveFake vocoder resynthesis of LJSpeech (vocoder not stated)",
    ),
}


def holdout_group(system: str) -> str:
    """Systems that are one engine's voices are held out together."""
    if system.startswith("flite_"):
        return "flite (4 voices)"
    if system.startswith("espeakng_"):
        return "espeak-ng (2 voices)"
    return system


def bonafide_corpus(clip: Clip) -> str:
    return clip.corpus or "bonafide"


def speaker_folds(speakers: Sequence[str], n_folds: int = N_FOLDS, seed: int = 0) -> np.ndarray:
    """Fold index per clip with every speaker in exactly one fold."""
    uniq = sorted(set(speakers))
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(uniq, rng.permutation(len(uniq)) % n_folds, strict=True))
    return np.array([fold_of[s] for s in speakers])


class Splits:
    """The index sets of every retraining the protocol needs, computed once."""

    def __init__(self, clips: Sequence[Clip], n_folds: int = N_FOLDS) -> None:
        self.clips = list(clips)
        self.n = len(clips)
        self.labels = np.array([c.label for c in clips])
        self.speakers = np.array([c.speaker for c in clips])
        self.augment = np.array([c.system.startswith(AUGMENT_PREFIX) for c in clips], bool)
        self.groups = np.array(
            [
                holdout_group(c.system) if c.label and not a else ""
                for c, a in zip(clips, self.augment, strict=True)
            ]
        )
        self.systems = np.array([c.system for c in clips])
        self.corpora = np.array([bonafide_corpus(c) if not c.label else "" for c in clips])
        self.folds = speaker_folds(list(self.speakers), n_folds)
        # what training balances: spoof system or bona fide corpus
        self.strata = np.array([c.system if c.label else bonafide_corpus(c) for c in clips])
        self.n_folds = n_folds

    def group_names(self) -> list[str]:
        return sorted(set(self.groups) - {""})

    def corpus_names(self) -> list[str]:
        return sorted(set(self.corpora) - {""})

    def _family(self, group: str) -> np.ndarray:
        """Training-aid clips of the held-out group's family (see AUGMENT_FAMILY)."""
        fam = [s for s, groups in AUGMENT_FAMILY.items() if group in groups]
        return np.isin(self.systems, fam)

    def loso(self, group: str, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """(train mask, test mask) for a held-out group and speaker fold."""
        in_group = self.groups == group
        group_speakers = np.isin(self.speakers, np.unique(self.speakers[in_group]))
        train = (self.folds != fold) & ~in_group & ~group_speakers & ~self._family(group)
        test = (self.folds == fold) & (in_group | (self.labels == 0)) & ~self.augment
        return train, test

    def loso_quick(self, group: str) -> tuple[np.ndarray, np.ndarray]:
        """One refit per held-out system instead of one per fold: trained without the system,
        its speakers and the speakers of the fold holding most of its clips; tested on every
        clip of the system against that fold's bona fide speech (still speaker-disjoint)."""
        in_group = self.groups == group
        k = int(np.bincount(self.folds[in_group], minlength=self.n_folds).argmax())
        group_speakers = np.isin(self.speakers, np.unique(self.speakers[in_group]))
        train = (self.folds != k) & ~in_group & ~group_speakers & ~self._family(group)
        test = (in_group | ((self.folds == k) & (self.labels == 0))) & ~self.augment
        return train, test

    def corpus_out(self, corpus: str) -> tuple[np.ndarray, np.ndarray]:
        in_corpus = self.corpora == corpus
        speakers = np.isin(self.speakers, np.unique(self.speakers[in_corpus]))
        return ~in_corpus & ~speakers, in_corpus

    def cv(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        return self.folds != fold, (self.folds == fold) & ~self.augment


def false_alarms_by_corpus(
    scores: np.ndarray, splits: Splits, threshold: float
) -> dict[str, float]:
    out = {}
    for corpus in splits.corpus_names():
        m = (splits.corpora == corpus) & ~np.isnan(scores)
        if m.any():
            out[corpus] = round(float((scores[m] >= threshold).mean()), 4)
    return out


def pair_metrics(scores: np.ndarray, pair_idx: list[tuple[int, int]]) -> PairMetrics | None:
    ok = [(s, b) for s, b in pair_idx if not (np.isnan(scores[s]) or np.isnan(scores[b]))]
    if not ok:
        return None
    sp = np.array([scores[s] for s, _ in ok])
    bf = np.array([scores[b] for _, b in ok])
    y = np.r_[np.ones(len(sp)), np.zeros(len(bf))]
    return PairMetrics(
        n_pairs=len(ok),
        eer=round(eer(np.r_[sp, bf], y)[0], 4),
        auc=round(roc_auc(np.r_[sp, bf], y), 4),
        pair_accuracy=round(float((sp > bf).mean()), 4),
    )


def _nan_calibrate(fn, lg: np.ndarray) -> np.ndarray:
    return np.array([fn(v) if not np.isnan(v) else np.nan for v in lg])


def evaluate(
    data_dirs: Sequence[Path],
    conditions: list[str] | None = None,
    loso: bool = True,
    cross_validation: bool = True,
    corpus_out: bool = True,
    variant: str = "fp32",
    recipe_name: str | None = None,
    progress: bool = True,
    detector: str = "audio.synthetic_voice",
    loso_quick: bool = False,
    loso_groups: Sequence[str] | None = None,
) -> EvaluationReport:
    clips = read_sets(data_dirs)
    splits = Splits(clips)
    labels = splits.labels
    det = _detector(detector, variant)
    det.start()
    rec: Recipe = get_recipe(recipe_name or det.recipe)
    conditions = conditions or available_conditions()
    train_conds = list(rec.train_conditions)
    retrain = loso or cross_validation or corpus_out
    needed = list(dict.fromkeys([*conditions, *(train_conds if retrain else [])]))
    sets = list(dict.fromkeys([det.feature_set, rec.feature_set]))
    feats = featurize_many(clips, needed, sets, progress=progress)
    systems = np.array([c.system if c.label else "bonafide" for c in clips])

    shipped: dict[str, dict[str, Metrics]] = {}
    shipped_fa: dict[str, dict[str, float]] = {}
    op = det.operating_score  # the model's own verdict (its metadata; 0.5 before 2.1)
    for cond in conditions:
        x, clip = feats[(det.feature_set, cond)]
        lg = det.clip_logits(x, clip, len(clips))
        cal = _nan_calibrate(det.calibrated, lg)
        per = {"overall": metrics(cal, labels, op)}
        for sys_name in sorted(set(systems) - {"bonafide"}):
            m = (systems == sys_name) | (labels == 0)
            per[sys_name] = metrics(cal[m], labels[m], op)
        shipped[cond] = per
        shipped_fa[cond] = false_alarms_by_corpus(cal, splits, op)

    report = EvaluationReport(
        data=[str(d) for d in data_dirs],
        model=f"{det.ref} ({variant}, {det.model_digest()})",
        operating_threshold=round(op, 4),
        recipe=rec.name,
        detector=detector,
        train_conditions=train_conds,
        unseen_conditions=[c for c in conditions if c not in train_conds],
        shipped=shipped,
        shipped_false_alarms=shipped_fa,
        cross_validation={},
        cv_false_alarms={},
        leave_one_system_out={},
        loso_pairs={},
        leave_one_corpus_out={},
    )
    if retrain:
        retrain_protocol(
            report,
            clips,
            rec,
            feats,
            conditions,
            loso,
            corpus_out,
            progress,
            loso_quick,
            loso_groups,
        )
    return report


#: the detectors `evaluate` can measure: signal name -> (module, class, config class)
EVALUATED = {
    "audio.synthetic_voice": (
        "detectors.synthetic_voice",
        "SyntheticVoiceDetector",
        "SyntheticVoiceConfig",
    ),
    "audio.synthetic_voice_deep": (
        "detectors.synthetic_voice_deep",
        "SyntheticVoiceDeepDetector",
        "SyntheticVoiceDeepConfig",
    ),
}


def _detector(name: str, variant: str) -> SyntheticVoiceDetector:
    """The edge screener or its second-pass subclass, by signal name."""
    import importlib

    if name not in EVALUATED:
        raise ValueError(f"cannot evaluate {name!r}; known: {', '.join(EVALUATED)}")
    module, cls, cfg = EVALUATED[name]
    mod = importlib.import_module(module)
    return getattr(mod, cls)(getattr(mod, cfg)(variant=variant))


def retrain_protocol(
    report: EvaluationReport,
    clips: Sequence[Clip],
    rec: Recipe,
    feats: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    conditions: list[str],
    loso: bool = True,
    corpus_out: bool = True,
    progress: bool = True,
    loso_quick: bool = False,
    loso_groups: Sequence[str] | None = None,
) -> ProtocolLogits:
    """Fill the retrained views of `report`; returns its out-of-fold logits and calibration.

    `loso_quick` refits once per held-out system instead of once per speaker fold (see
    `Splits.loso_quick`; the report says so). Cross-validation, which sets the operating
    point, always runs on every fold. `loso_groups` restricts it to
    those held-out systems (`report.loso_groups` names them)."""
    from detectors.progress import progress_bar

    splits = Splits(clips)
    labels = splits.labels
    train_conds = list(rec.train_conditions)
    prepared = {}
    for c in dict.fromkeys([*conditions, *train_conds]):
        x, clip = feats[(rec.feature_set, c)]
        prepared[c] = (rec.prepare(x), clip)
    train_views = [prepared[c] for c in train_conds]
    jobs: list[tuple[str, str, int, np.ndarray, np.ndarray]] = []
    for k in range(splits.n_folds):
        jobs.append(("cv", "", k, *splits.cv(k)))  # always: it sets the operating point
    report.loso_quick = loso and loso_quick
    groups = splits.group_names()
    if loso_groups is not None:
        unknown = sorted(set(loso_groups) - set(groups))
        if unknown:
            raise ValueError(f"unknown held-out system(s) {unknown}; known: {groups}")
        groups = [g for g in groups if g in set(loso_groups)]
        report.loso_groups = groups if loso and len(groups) < len(splits.group_names()) else None
    if loso:
        for g in groups:
            if loso_quick:
                jobs.append(("loso", g, 0, *splits.loso_quick(g)))
                continue
            for k in range(splits.n_folds):
                jobs.append(("loso", g, k, *splits.loso(g, k)))
    if corpus_out:
        for c in splits.corpus_names():
            jobs.append(("corpus", c, 0, *splits.corpus_out(c)))

    # out-of-fold clip logits: (kind, name) -> condition -> logits
    preds: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    with progress_bar(progress) as bar:
        task = bar.add_task("retraining", total=len(jobs))
        for kind, name, k, train, test in jobs:
            bar.update(task, description=f"retraining {kind} {name[:30]} fold {k}")
            model = rec.fit(train_views, labels, train, seed=k, groups=splits.strata)
            slot = preds.setdefault((kind, name), {})
            for cond in conditions:
                x, clip = prepared[cond]
                rows = np.flatnonzero(test[clip])  # score only the test clips' windows
                lg = rec.clip_logits(model, x[rows], clip[rows], len(clips))
                p = slot.setdefault(cond, np.full(len(clips), np.nan))
                p[test] = lg[test]
            bar.advance(task)

    cv_clean = preds[("cv", "")].get("clean", next(iter(preds[("cv", "")].values())))
    full, per_name = _calibration(report, splits, preds, cv_clean, groups)
    t_op = full.operating_logit
    for cond, p in preds[("cv", "")].items():
        report.cross_validation[cond] = metrics(p, labels, t_op)
        report.cv_false_alarms[cond] = false_alarms_by_corpus(p, splits, t_op)
    pair_idx = pairs(clips)
    for g in groups if loso else []:
        cal = per_name.get(g, full)
        report.leave_one_system_out[g] = {
            cond: metrics(p, labels, cal.operating_logit) for cond, p in preds[("loso", g)].items()
        }
        in_g = [(s, src) for s, src in pair_idx if splits.groups[s] == g]
        pm = pair_metrics(preds[("loso", g)][conditions[0]], in_g) if in_g else None
        if pm is not None:
            report.loso_pairs[g] = pm
    for c in splits.corpus_names() if corpus_out else []:
        m = splits.corpora == c
        t_c = per_name.get(c, full).operating_logit
        report.leave_one_corpus_out[c] = {
            cond: round(float((p[m] >= t_c).mean()), 4) for cond, p in preds[("corpus", c)].items()
        }
    return ProtocolLogits(cv_clean, preds, full)


@dataclass(frozen=True)
class ProtocolLogits:
    """What the training commands take from the protocol: the clean CV logits, every
    out-of-fold logit, and the calibration and operating point the shipped model gets."""

    cv_clean: np.ndarray
    preds: heldout.OUT_OF_FOLD
    calibration: heldout.Calibration


def _calibration(
    report: EvaluationReport,
    splits: Splits,
    preds: heldout.OUT_OF_FOLD,
    cv_clean: np.ndarray,
    groups: Sequence[str],
) -> tuple[heldout.Calibration, dict[str, heldout.Calibration]]:
    """The retrained models' calibration (Platt on the speaker-disjoint CV logits) and
    operating point: false-alarm bounded on held-out corpora when the protocol held out
    every system and corpus and scored clean speech (with one point per held-out corpus
    fitted without it), else the calibrated score's 0.5. Fills the held-out views of the
    report (Platt refit, step-up shares)."""
    ok = ~np.isnan(cv_clean)
    a, b = balanced_platt(cv_clean[ok], splits.labels[ok])
    corpora = splits.corpus_names()
    have = {name for kind, name in preds if kind in ("loso", "corpus")}
    every = bool(groups) and set(groups) == set(splits.group_names())
    every = every and set(groups) | set(corpora) <= have
    per_name: dict[str, heldout.Calibration] = {}
    if every and "clean" in preds[("cv", "")]:
        pool = heldout.heldout_pool(preds, splits.groups, splits.corpora)
        full = heldout.Calibration(a, b, heldout.fa_bounded_logit(pool))
        for c in corpora:  # spoof logits never set the point: only a corpus needs a refit
            without = heldout.heldout_pool(preds, splits.groups, splits.corpora, exclude=c)
            per_name[c] = heldout.Calibration(a, b, heldout.fa_bounded_logit(without))
        ha, hb = heldout.weighted_platt(pool.logits, pool.labels, pool.weights)
        report.heldout_platt = (round(ha, 6), round(hb, 6))
        report.operating_rule = "fa_bounded"
        llr = full.llr(pool.logits)  # CV Platt: fitted on no held-out logit
        for name in dict.fromkeys(pool.names):
            at = pool.names == name
            report.step_up_rate[name] = round(float((llr[at] >= STEP_UP_LLR).mean()), 4)
    else:
        full = heldout.Calibration(a, b, -b / a if a > 0 else 0.0)  # the score's 0.5
        report.operating_rule = "score_0.5"
    report.platt = (round(a, 6), round(b, 6))
    report.operating_logit = round(float(full.operating_logit), 4)
    return full, per_name


def _pct(v: float | None) -> str:
    return "–" if v is None or np.isnan(v) else f"{100 * v:.1f}"


def format_report(rep: EvaluationReport) -> str:
    """Markdown tables of a report (what the CLI prints and the model cards quote)."""
    lines = [
        f"model {rep.model}",
        f"recipe {rep.recipe}",
        f"data {', '.join(rep.data)}",
        f"trained on conditions: {', '.join(rep.train_conditions)}; "
        f"unseen in training: {', '.join(rep.unseen_conditions) or 'none'}",
        f"detector {rep.detector}",
        *(
            ["LOSO quick: one refit per held-out system (Splits.loso_quick), not one per fold"]
            if rep.loso_quick
            else []
        ),
        *([f"LOSO reduced to the systems {rep.loso_groups}"] if rep.loso_groups else []),
        f"operating point: calibrated score >= {rep.operating_threshold}"
        + (
            f" (retrained models: logit >= {rep.operating_logit}"
            + (
                f", the lowest with <= {100 * heldout.FA_TARGET:g} % false alarms on every "
                "bona fide corpus held out of training; per held-out system and corpus the "
                "point fitted without it"
                if rep.operating_rule == "fa_bounded"
                else ", calibrated score 0.5"
            )
            + ")"
            if rep.operating_logit is not None
            else ""
        ),
        "",
    ]
    conds = list(rep.shipped or rep.cross_validation)
    if rep.leave_one_system_out:
        lines += [
            "### Leave-one-system-out (retrained without the system and the test speakers)",
            "",
            "EER % / AUC per held-out system and condition (`*` = condition unseen in training):",
            "",
        ]
        head = [c + ("*" if c in rep.unseen_conditions else "") for c in conds]
        lines.append("| held-out system | n | " + " | ".join(head) + " |")
        lines.append("|---|---|" + "---|" * len(conds))
        for g, per in rep.leave_one_system_out.items():
            n = next(iter(per.values())).n_spoof
            cells = [f"{_pct(per[c].eer)} / {per[c].auc:.2f}" for c in conds if c in per]
            lines.append(f"| {g[:44]} | {n} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "False alarm / miss % at the operating point (held-out system vs held-out bona fide):",
            "",
            "| held-out system | " + " | ".join(head) + " |",
            "|---|" + "---|" * len(conds),
        ]
        for g, per in rep.leave_one_system_out.items():
            cells = [
                f"{_pct(per[c].false_alarm_at_op)} / {_pct(per[c].miss_at_op)}"
                for c in conds
                if c in per
            ]
            lines.append(f"| {g[:44]} | " + " | ".join(cells) + " |")
        neural_eer = [
            per["clean"].eer
            for g, per in rep.leave_one_system_out.items()
            if "clean" in per and not g.startswith(("flite", "espeak"))
        ]
        if neural_eer:
            lines += [
                "",
                f"Mean clean EER over the {len(neural_eer)} neural systems: "
                f"{_pct(float(np.mean(neural_eer)))} %; worst {_pct(max(neural_eer))} %.",
            ]
    if rep.loso_pairs:
        lines += [
            "",
            "### Copy-synthesis pairs, held out (spoof vs its own source clip, clean)",
            "",
            "| held-out system | pairs | EER % | AUC | spoof above its source |",
            "|---|---|---|---|---|",
        ]
        for g, pm in rep.loso_pairs.items():
            lines.append(
                f"| {g[:44]} | {pm.n_pairs} | {_pct(pm.eer)} | {pm.auc:.2f} | {_pct(pm.pair_accuracy)} % |"
            )
    if rep.leave_one_corpus_out:
        lines += [
            "",
            "### False alarms % per bona fide corpus, corpus and its speakers held out of training",
            "",
            "| corpus | " + " | ".join(conds) + " |",
            "|---|" + "---|" * len(conds),
        ]
        for c, per in rep.leave_one_corpus_out.items():
            lines.append(f"| {c} | " + " | ".join(_pct(per.get(k)) for k in conds) + " |")
    if rep.step_up_rate:
        spoof = [v for k, v in rep.step_up_rate.items() if k in rep.leave_one_system_out]
        bona = [v for k, v in rep.step_up_rate.items() if k in rep.leave_one_corpus_out]
        lines += [
            "",
            f"### Held out, clean: share whose calibrated log-likelihood ratio alone reaches "
            f"{STEP_UP_LLR:.2f} (support-password-reset's step_up from its prior)",
            "",
            "| held out | share % |",
            "|---|---|",
            *(f"| {k[:44]} | {_pct(v)} |" for k, v in rep.step_up_rate.items()),
        ]
        if rep.heldout_platt and rep.platt:
            (ha, hb), (a, b) = rep.heldout_platt, rep.platt
            lines += [
                "",
                f"Platt refitted on the held-out logits (clean): a = {ha:.3f}, b = {hb:.3f}; "
                f"the scores' in-domain calibration: a = {a:.3f}, b = {b:.3f}.",
            ]
        if spoof and bona and np.mean(bona) > 0:
            lines += [
                "",
                f"Mean over systems {_pct(float(np.mean(spoof)))} %, over bona fide corpora "
                f"{_pct(float(np.mean(bona)))} %: ratio {np.mean(spoof) / np.mean(bona):.1f}.",
            ]
    if rep.cross_validation:
        lines += [
            "",
            "### Speaker-disjoint 3-fold CV (all systems in training): EER % / AUC, and false alarms % per bona fide corpus",
            "",
            "| condition | EER | AUC | FA@op | miss@op | "
            + " | ".join(rep.cv_false_alarms.get("clean", {}))
            + " |",
            "|---|---|---|---|---|" + "---|" * len(rep.cv_false_alarms.get("clean", {})),
        ]
        for c, m in rep.cross_validation.items():
            fa = rep.cv_false_alarms.get(c, {})
            lines.append(
                f"| {c} | {_pct(m.eer)} | {m.auc:.3f} | {_pct(m.false_alarm_at_op)} | {_pct(m.miss_at_op)} | "
                + " | ".join(_pct(v) for v in fa.values())
                + " |"
            )
    if not rep.shipped:
        return "\n".join(lines)
    lines += [
        "",
        "### Shipped model as is (in-sample on its own training data)",
        "",
        "| condition | EER | AUC | FA@op | miss@op | "
        + " | ".join(rep.shipped_false_alarms.get(conds[0], {}))
        + " |",
        "|---|---|---|---|---|" + "---|" * len(rep.shipped_false_alarms.get(conds[0], {})),
    ]
    for c in conds:
        m = rep.shipped[c]["overall"]
        fa = rep.shipped_false_alarms.get(c, {})
        lines.append(
            f"| {c} | {_pct(m.eer)} | {m.auc:.3f} | {_pct(m.false_alarm_at_op)} | {_pct(m.miss_at_op)} | "
            + " | ".join(_pct(v) for v in fa.values())
            + " |"
        )
    lines += ["", "per system, clean: EER % / AUC / miss % at op", ""]
    for name, m in rep.shipped[conds[0]].items():
        if name != "overall":
            lines.append(
                f"- {name[:60]}: {_pct(m.eer)} / {m.auc:.2f} / {_pct(m.miss_at_op)} (n={m.n_spoof})"
            )
    return "\n".join(lines)
