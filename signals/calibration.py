"""Score calibration helpers shared by detectors and fusion."""

from __future__ import annotations

import math
from collections.abc import Sequence

EPS = 1e-4


def clamp01(x: float, eps: float = EPS) -> float:
    """Keep a probability away from 0 and 1 so its log-odds stay finite."""
    return min(max(x, eps), 1.0 - eps)


def logit(p: float) -> float:
    p = clamp01(p)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def fit_platt(
    raw_scores: Sequence[float], labels: Sequence[int], iterations: int = 200
) -> tuple[float, float]:
    """Fit Platt scaling p = sigmoid(a*s + b) by Newton's method; returns (a, b).

    Uses Platt's smoothed targets so a perfectly separated training set does not yield
    infinite slopes (which would make every score 0 or 1 and wreck confidence weighting).
    """
    if len(raw_scores) != len(labels) or not raw_scores:
        raise ValueError("raw_scores and labels must be non-empty and of equal length")
    n_pos = sum(1 for y in labels if y)
    n_neg = len(labels) - n_pos
    t_pos = (n_pos + 1.0) / (n_pos + 2.0)
    t_neg = 1.0 / (n_neg + 2.0)
    targets = [t_pos if y else t_neg for y in labels]
    a, b = 1.0, 0.0
    for _ in range(iterations):
        g_a = g_b = h_aa = h_ab = h_bb = 0.0
        for s, t in zip(raw_scores, targets, strict=True):
            p = sigmoid(a * s + b)
            d = p - t
            w = max(p * (1 - p), 1e-12)
            g_a += d * s
            g_b += d
            h_aa += w * s * s
            h_ab += w * s
            h_bb += w
        h_aa += 1e-9
        h_bb += 1e-9
        det = h_aa * h_bb - h_ab * h_ab
        if abs(det) < 1e-18:
            break
        da = (h_bb * g_a - h_ab * g_b) / det
        db = (h_aa * g_b - h_ab * g_a) / det
        a, b = a - da, b - db
        if abs(da) < 1e-9 and abs(db) < 1e-9:
            break
    return a, b


def apply_platt(raw: float, a: float, b: float) -> float:
    return sigmoid(a * raw + b)
