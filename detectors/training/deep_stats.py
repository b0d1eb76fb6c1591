"""synthetic_voice_deep 1.x-3.x recipe: a bagged ensemble of wide MLPs on multi-resolution
window statistics of the normalised log bands (numpy; exported as one ONNX MLP).

Input per window (`detectors.deep_input.deep_stats`): the edge screener 2.x's 168 statistics
plus the per-band mean |change| at lags of 20 and 40 ms (slow spectral modulation, which
acoustic models smooth differently from a vocal tract) and the per-band spread of the second
difference (spectral acceleration), all on the gain- and channel-normalised speech frames;
2.x adds the spectral fine-structure statistics the edge screener 3.x reads.
A clip's (or call's) score is the mean logit of its windows with enough speech.

Training: the edge recipe's call-condition views and group weights (every spoof system and
bona fide corpus the same total weight within its class; 2.x moves them group-robustly,
DRO_ETA, as the edge screener 3.x does); N_MODELS MLPs, each on its own
seeded draw of MAX_ROWS (window, view) rows; their mean logit is the model's logit. The
members' standardisation is folded into their first layer, so the ensemble is one MLP with
N_MODELS x HIDDEN hidden units (exact, not an approximation). 3.x adds the edge screener 4.x's
one-class bona fide reference (`bona_fide_reference.py`) on the same statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.deep_input import deep_stats
from detectors.frontend import speech_mask_frames
from detectors.training.mlp import MlpParams, train_mlp
from detectors.training.stats_v2 import (
    DRO_ETA,
    MIN_SPEECH_FRAMES,
    TRAIN_CONDITIONS,
    TRAIN_CONDITIONS_V6,
    classifier_views,
    clip_logits,
    group_weights,
    window_reference,
)

HIDDEN = 128
N_MODELS = 3
EPOCHS = 10
L2 = 1e-3
BATCH = 512
MAX_ROWS = 60_000


def merge_ensemble(members: Sequence[MlpParams]) -> MlpParams:
    """Members' mean logit as one MLP on raw features (standardisation folded into w1)."""
    w1s, b1s, w2s = [], [], []
    for p in members:
        assert p.w1 is not None and p.b1 is not None
        w1 = p.w1 / p.std[:, None]
        w1s.append(w1)
        b1s.append(p.b1 - p.mean @ w1)
        w2s.append(p.w2 / len(members))
    d = members[0].mean.shape[0]
    return MlpParams(
        mean=np.zeros(d),
        std=np.ones(d),
        w1=np.concatenate(w1s, axis=1),
        b1=np.concatenate(b1s),
        w2=np.concatenate(w2s, axis=0),
        b2=np.array([float(np.mean([p.b2[0] for p in members]))]),
    )


class EnsembleModel:
    def __init__(self, params: MlpParams) -> None:
        self.params = params

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.params.logits(x[:, 1:])


class DeepStatsV1:
    name = (
        "synthetic_voice_deep 3.x (bagged group-DRO MLPs on multi-resolution band statistics "
        "and spectral fine structure, plus a one-class bona fide reference)"
    )
    feature_set = "windows_v4"
    train_conditions: tuple[str, ...] = TRAIN_CONDITIONS

    def __init__(
        self,
        hidden: int = HIDDEN,
        n_models: int = N_MODELS,
        extended: bool = True,
        max_rows: int = MAX_ROWS,
        fine: bool = True,
        dro_eta: float = DRO_ETA,
        reference: bool = True,
        pitch: bool = False,
    ) -> None:
        self.hidden = hidden
        self.n_models = n_models
        self.extended = extended
        self.max_rows = max_rows
        self.fine = fine  # 2.x: the fine-structure statistics too (1.x: False)
        self.dro_eta = dro_eta  # 2.x: group-DRO members (1.x: 0)
        self.reference = reference  # 3.x: the edge screener 4.x's one-class term (2.x: False)
        self.pitch = pitch  # candidate: the voicing and pitch statistics (edge recipe v7)
        # 3.x trains on the edge screener 4.x's views (A-law and AMR-NB too; 3.1 and 4.1:
        # RNNoise noise suppression as well; 3.2 and 4.2: Vorbis and MP3 128 kbit/s)
        self.train_conditions = TRAIN_CONDITIONS_V6 if reference else TRAIN_CONDITIONS

    def prepare(self, windows: np.ndarray) -> np.ndarray:
        """(N, 1 + D): speech frames of each window, then its statistics."""
        parts = []
        for s in range(0, len(windows), 2048):
            w = windows[s : s + 2048]
            frames = speech_mask_frames(w).sum(axis=1).astype(np.float32)
            parts.append(
                np.concatenate(
                    [frames[:, None], deep_stats(w, self.extended, self.fine, self.pitch)], axis=1
                )
            )
        return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)

    def fit(
        self,
        views: Sequence[tuple[np.ndarray, np.ndarray]],
        labels: np.ndarray,
        clip_mask: np.ndarray,
        seed: int = 0,
        groups: np.ndarray | None = None,
    ) -> EnsembleModel:
        strata = np.asarray(groups if groups is not None else labels.astype(str))
        xs, ys, ws, gs = [], [], [], []
        # the members train on all but the reference-only views (stats_v2.REFERENCE_ONLY)
        for x, clip in classifier_views(views, self.train_conditions):
            keep = clip_mask[clip] & (x[:, 0] >= MIN_SPEECH_FRAMES)
            xs.append(x[keep, 1:])
            ys.append(labels[clip][keep])
            ws.append(group_weights(labels[clip][keep], strata[clip][keep]))
            gs.append(strata[clip][keep])
        x_all, y_all, w_all = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
        g_all = np.concatenate(gs)
        members = []
        for m in range(self.n_models):
            s = seed * 1_000 + m
            pick = np.random.default_rng(s).choice(
                len(y_all), min(self.max_rows, len(y_all)), replace=False
            )
            members.append(
                train_mlp(
                    x_all[pick],
                    y_all[pick],
                    w_all[pick],
                    hidden=self.hidden,
                    epochs=EPOCHS,
                    l2=L2,
                    batch=BATCH,
                    seed=s,
                    groups=g_all[pick],
                    dro_eta=self.dro_eta,
                )
            )
        params = merge_ensemble(members)
        if self.reference:
            params.reference = window_reference(views, labels, clip_mask, seed)
        return EnsembleModel(params)

    def clip_logits(
        self, model: EnsembleModel, x: np.ndarray, clip: np.ndarray, n_clips: int
    ) -> np.ndarray:
        return clip_logits(model.logits(x), x[:, 0], clip, n_clips)
