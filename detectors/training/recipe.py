"""The training recipe of audio.synthetic_voice, shared by the training script and by the
leave-one-system-out evaluation (which must retrain exactly the shipped recipe)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.training.mlp import MlpParams, train_mlp

#: Every training clip is also seen through these call degradations, so the model cannot
#: lean on the 4-8 kHz band or on clean silence, which telephony destroys. (Measured: adding
#: the GSM codec and 20 dB noise to the first three lowered CV EER on GSM 26 -> 24 %, on
#: 10 dB noise 27 -> 24 % and neural-system LOSO 20 -> 19 %, for +0.5 pt on clean.)
#: The GSM round trip needs ffmpeg.
AUG_CONDITIONS: tuple[str, ...] = (
    "mulaw_8k",
    "gsm_codec",
    "noise_10db",
    "noise_20db",
    "packet_loss_10pct",
)
HIDDEN = 0  # logistic regression: generalised as well as a 16/32-unit MLP in LOSO, fewer params
EPOCHS = 20
L2 = 1e-3
N_FOLDS = 5


def speaker_folds(speakers: Sequence[str], n_folds: int = N_FOLDS, seed: int = 0) -> np.ndarray:
    """Fold index per clip with every speaker in exactly one fold."""
    uniq = sorted(set(speakers))
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(uniq, rng.integers(0, n_folds, len(uniq)), strict=True))
    return np.array([fold_of[s] for s in speakers])


def fit(
    views: Sequence[tuple[np.ndarray, np.ndarray]], labels: np.ndarray, clip_mask: np.ndarray
) -> MlpParams:
    """Train on the hop vectors of the masked clips, across all condition views."""
    xs, ys = [], []
    for x, clip in views:
        keep = clip_mask[clip]
        xs.append(x[keep])
        ys.append(labels[clip][keep])
    return train_mlp(np.concatenate(xs), np.concatenate(ys), hidden=HIDDEN, epochs=EPOCHS, l2=L2)


def clip_logits(logits: np.ndarray, clip: np.ndarray, n_clips: int) -> np.ndarray:
    """Clip score = mean of its hop logits (what the streaming detector reports at the end)."""
    sums = np.bincount(clip, logits, n_clips)
    cnt = np.bincount(clip, None, n_clips)
    out = np.full(n_clips, np.nan)
    out[cnt > 0] = sums[cnt > 0] / cnt[cnt > 0]
    return out
