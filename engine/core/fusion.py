"""Confidence-weighted log-odds fusion of signals into one risk.

Each present signal adds ``w · c · logit(score)`` to the prior log-odds, capped at ``±cap``;
missing signals add nothing and lower the evidence mass. Every contribution is kept so the
explanation is the fusion itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cached_property
from math import log

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.core.construct import build
from engine.core.models import Contribution, Fused
from signals import Signal, logit, sigmoid
from signals.calibration import EPS


class FusionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prior: float = Field(
        gt=0.0, lt=1.0, description="Prior probability that a session of this kind is manipulated."
    )
    weights: dict[str, float] = Field(
        min_length=1, description="Signal name → weight (≥ 0); unlisted signals are ignored."
    )
    cap: float = Field(default=3.0, gt=0.0, le=20.0, description="Max |log-odds| per signal.")
    min_evidence: float = Field(
        default=0.3, ge=0.0, le=1.0, description="Evidence mass below which a decision is degraded."
    )

    @model_validator(mode="after")
    def _weights_are_sane(self) -> FusionConfig:
        bad = [k for k, w in self.weights.items() if not (0.0 <= w <= 10.0) or math.isnan(w)]
        if bad:
            raise ValueError(f"weights must be between 0 and 10: {', '.join(bad)}")
        return self

    @cached_property
    def prior_log_odds(self) -> float:
        return logit(self.prior)

    @cached_property
    def total_weight(self) -> float:
        return sum(self.weights.values())


def fuse(signals: Iterable[Signal], config: FusionConfig) -> Fused:
    """Fuse signals under one policy's weights; the strongest window per signal name wins."""
    weights = config.weights
    best: dict[str, tuple[Signal, float, float]] = {}
    ignored: list[str] = []
    for s in signals:
        w = weights.get(s.name)
        if w is None:
            ignored.append(s.name)
            continue
        p = min(max(s.score, EPS), 1.0 - EPS)
        lo = log(p / (1.0 - p))
        # Several windows of one detector: keep the most informative one, so a session cannot
        # dilute strong evidence by sending many weak windows.
        prev = best.get(s.name)
        if prev is None or s.confidence * abs(lo) > prev[0].confidence * abs(prev[1]):
            best[s.name] = (s, lo, w)
    cap = config.cap
    total = prior = config.prior_log_odds
    mass = 0.0
    contributions: list[Contribution] = []
    for name, (s, lo, w) in best.items():
        raw = w * s.confidence * lo
        capped = raw > cap or raw < -cap
        if capped:
            raw = cap if raw > 0 else -cap
        total += raw
        mass += w * s.confidence
        contributions.append(
            build(
                Contribution,
                signal=name,
                detector=s.detector,
                score=s.score,
                confidence=s.confidence,
                weight=w,
                log_odds=raw,
                capped=capped,
            )
        )
    if len(contributions) > 1:
        contributions.sort(key=_by_log_odds)
    total_weight = config.total_weight
    evidence_mass = mass / total_weight if total_weight > 0 else 0.0
    return build(
        Fused,
        risk=sigmoid(total),
        prior_log_odds=prior,
        log_odds=total,
        evidence_mass=min(1.0, evidence_mass),
        contributions=tuple(contributions),
        ignored_signals=tuple(ignored),
    )


def _by_log_odds(c: Contribution) -> float:
    return -c.log_odds
