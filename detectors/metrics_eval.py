"""Detection metrics: EER, ROC AUC, error rates at an operating point."""

from __future__ import annotations

import numpy as np


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability a random spoof scores above a random bona fide clip (ties count half)."""
    s = np.asarray(scores, float)
    y = np.asarray(labels, int)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    # average ranks for ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2.0 + 1
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate and the threshold where miss rate equals false-alarm rate."""
    s = np.asarray(scores, float)
    y = np.asarray(labels, int)
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    thresholds = np.unique(s)
    far = 1.0 - np.searchsorted(neg, thresholds, side="left") / len(neg)  # neg >= t
    frr = np.searchsorted(pos, thresholds, side="left") / len(pos)  # pos < t
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2.0), float(thresholds[i])


def rates_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false-alarm rate on bona fide, miss rate on spoof) for `score >= threshold` = spoof."""
    s = np.asarray(scores, float)
    y = np.asarray(labels, int)
    fa = float((s[y == 0] >= threshold).mean()) if (y == 0).any() else float("nan")
    miss = float((s[y == 1] < threshold).mean()) if (y == 1).any() else float("nan")
    return fa, miss
