"""A YAML policy evaluated over many sessions at once with numpy.

Same semantics as the serving path (``engine.core.decide``): manifest minimization, consent,
confidence-weighted log-odds fusion with caps, degraded bounds, threshold adjustments and
rules in order — but over column arrays, for backtests and simulations of millions of
sessions. Each session carries at most one window per signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.core.conditions import ORDINALS, REQUEST_FIELDS
from engine.core.models import ACTIONS, THRESHOLD_ACTIONS
from engine.core.policy import Policy
from governance.minimize import is_declared
from signals import MEDIA_MODALITIES
from signals.calibration import EPS
from simulations.masks import Coded, CodedMask, Column, compile_coded_mask, decode

#: Action severities as integers: 0 = log … 4 = block.
SEVERITY = {a: i for i, a in enumerate(ACTIONS)}


@dataclass(frozen=True)
class Batch:
    """Sessions as columns. ``context``: request fields (``ORDINALS`` as ranks or labels,
    absent = NaN/None/-1; categorical ones may come ``Coded``, as a corpus stores them);
    ``scores``/``confidences``: per signal name, NaN where absent (a NaN confidence counts 0)."""

    size: int
    context: Mapping[str, np.ndarray | Coded]
    scores: Mapping[str, np.ndarray]
    confidences: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class BatchResult:
    action: np.ndarray  # int severities, see SEVERITY
    risk: np.ndarray
    evidence_mass: np.ndarray
    degraded: np.ndarray

    def action_names(self) -> np.ndarray:
        return np.array([a.value for a in ACTIONS], dtype=object)[self.action]


#: Adjustments up to this many are resolved through a table of every combination of them
#: (2**k rows of thresholds, each session looks its row up by which adjustments fired).
MAX_TABLE_ADJUSTMENTS = 10


class VectorizedPolicy:
    """Compile once per policy; ``evaluate(batch)`` runs one pass of array operations."""

    def __init__(self, policy: Policy) -> None:
        if policy.spec is None:
            raise ValueError(f"{policy.id}: only YAML policies can be vectorized")
        self.policy = policy
        spec = policy.spec
        allowed = policy.dataflow.allowed_fields()
        self._declared = {f for f in REQUEST_FIELDS if is_declared(f, allowed)}
        self._signals = [
            (name, w)
            for name, w in spec.fusion.weights.items()
            if is_declared(f"signals.{name}", allowed)
        ]
        self._media = {
            name
            for name, _ in self._signals
            if name.split(".", 1)[0] in {m.value for m in MEDIA_MODALITIES}
        }
        # Per-signal columns are built only for the signals a condition names.
        self._named = spec.condition_fields()
        self._adjustments: list[tuple[CodedMask, np.ndarray]] = []
        for adj in spec.adjustments:
            shift = np.array(
                [
                    (adj.shift.get(a, 0.0) if isinstance(adj.shift, dict) else adj.shift)
                    for a in THRESHOLD_ACTIONS
                ]
            )
            self._adjustments.append((compile_coded_mask(adj.when), shift))
        self._rules = [
            (compile_coded_mask(r.when), r.mode, SEVERITY[r.action], r.applies_when_degraded)
            for r in spec.rules
        ]
        self._base = np.array([spec.thresholds[a] for a in THRESHOLD_ACTIONS])
        self._cap = spec.fusion.cap
        self._prior = spec.fusion.prior_log_odds
        self._total_weight = spec.fusion.total_weight
        self._min_evidence = spec.fusion.min_evidence
        self._lo = SEVERITY[spec.degraded.min_action]
        self._hi = SEVERITY[spec.degraded.max_action]
        self._table: np.ndarray | None = None
        k = len(self._adjustments)
        if k <= MAX_TABLE_ADJUSTMENTS:
            fired = ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(bool)
            self._table = self._thresholds([fired[:, i] for i in range(k)], 2**k)

    def _thresholds(self, fired: list[np.ndarray], rows: int) -> np.ndarray:
        """Thresholds per row given which adjustments fired: the same operations, in the same
        order, whether the rows are sessions or the combination table (so equal bits)."""
        shifts = np.zeros((rows, len(THRESHOLD_ACTIONS)))
        for hit, (_, shift) in zip(fired, self._adjustments, strict=True):
            shifts += hit[:, None] * shift
        thresholds = np.clip(self._base + shifts, None, 0.99)
        thresholds = np.maximum.accumulate(np.maximum(thresholds, 0.01), axis=1)
        return np.round(thresholds, 4)

    def _columns(
        self, batch: Batch, consent: np.ndarray
    ) -> tuple[dict[str, Column], np.ndarray, np.ndarray]:
        n = batch.size
        # Undeclared or missing fields stay out: a condition on them matches nothing.
        cols: dict[str, Column] = {
            f: batch.context[f]
            for f in REQUEST_FIELDS
            if f in self._declared and f in batch.context
        }
        total = np.full(n, self._prior)
        mass = np.zeros(n)
        count = np.zeros(n, dtype=np.int16)  # fewer bytes to add to than doubles
        for name, w in self._signals:
            score = batch.scores.get(name)
            if score is None:
                continue
            present = score == score  # False exactly where NaN (absent): one pass, not two
            if name in self._media:
                present &= consent
            # Only the sessions that carry the signal: many signals are absent from most.
            at = np.flatnonzero(present)
            conf_col = batch.confidences.get(name)
            conf = np.ones(len(at)) if conf_col is None else np.asarray(conf_col, dtype=float)[at]
            conf[np.isnan(conf)] = 0.0
            # w * conf * log(p / (1 - p)), clipped, with p the score clamped away from 0 and
            # 1: the serving path's operations in its order, in place.
            p = np.clip(score[at], EPS, 1.0 - EPS)
            odds = np.subtract(1.0, p)
            np.divide(p, odds, out=odds)
            np.log(odds, out=odds)
            weighted = w * conf
            np.multiply(weighted, odds, out=odds)
            np.clip(odds, -self._cap, self._cap, out=odds)
            total[at] += odds
            mass[at] += weighted
            count += present
            if any(f.startswith(f"signals.{name}.") for f in self._named):
                cols[f"signals.{name}.score"] = np.where(present, score, np.nan)
                named_conf = np.full(n, np.nan)
                named_conf[at] = conf
                cols[f"signals.{name}.confidence"] = named_conf
                cols[f"signals.{name}.present"] = present
        risk = 1.0 / (1.0 + np.exp(-total))
        evidence_mass = np.minimum(1.0, mass / self._total_weight)
        cols["fused.risk"] = risk
        cols["fused.evidence_mass"] = evidence_mass
        cols["fused.signal_count"] = count.astype(float)
        return cols, risk, evidence_mass

    def evaluate(self, batch: Batch) -> BatchResult:
        n = batch.size
        consent_col = batch.context.get("session.consent.media_analysis")
        consent = (
            np.ones(n, dtype=bool)
            if consent_col is None
            else np.asarray(decode(consent_col), dtype=bool)
        )
        cols, risk, mass = self._columns(batch, consent)
        for name, _ in self._signals:  # conditions may name signals a batch does not carry
            for attr, fill in (("score", np.nan), ("confidence", np.nan), ("present", False)):
                if f"signals.{name}.{attr}" in self._named:
                    cols.setdefault(f"signals.{name}.{attr}", np.full(n, fill))
        fired = [mask(cols, n) for mask, _ in self._adjustments]
        action = np.zeros(n, dtype=np.int8)
        if self._table is not None:
            # Which adjustments fired, as bits: the row of the combination table.
            combo = np.zeros(n, dtype=np.int16)
            for i, hit in enumerate(fired):
                combo |= hit.astype(np.int16) << i
            for j in range(len(THRESHOLD_ACTIONS)):
                action += risk >= self._table[:, j][combo]
        else:
            action += (risk[:, None] >= self._thresholds(fired, n)).sum(axis=1, dtype=np.int8)
        degraded = mass < self._min_evidence
        action = np.where(degraded, np.clip(action, self._lo, self._hi), action)
        for mask, mode, severity, may_exceed in self._rules:
            hit = mask(cols, n)
            if mode == "at_least":
                forced = np.maximum(action, severity)
            elif mode == "at_most":
                forced = np.minimum(action, severity)
            else:
                forced = np.full(n, severity, dtype=np.int8)
            if not may_exceed:
                ceiling = np.maximum(action, self._hi)
                forced = np.where(degraded, np.minimum(forced, ceiling), forced)
            action = np.where(hit, forced, action)
        return BatchResult(
            action=action.astype(np.int8), risk=risk, evidence_mass=mass, degraded=degraded
        )


def batch_from_requests(requests: list) -> Batch:
    """Columns from decision requests (e.g. replayed from the decision log)."""
    n = len(requests)
    context: dict[str, np.ndarray] = {}
    getters = {
        "session.channel": lambda r: r.session.channel,
        "session.kind": lambda r: r.session.kind,
        "session.participant": lambda r: r.session.participant,
        "session.consent.media_analysis": lambda r: r.session.consent.media_analysis,
        "session.consent.raw_media_escalation": lambda r: r.session.consent.raw_media_escalation,
        "identity.assurance": lambda r: r.identity.assurance,
        "identity.method": lambda r: r.identity.method,
        "identity.seconds_since_auth": lambda r: r.identity.seconds_since_auth,
        "identity.failed_attempts": lambda r: r.identity.failed_attempts,
        "transaction.kind": lambda r: r.transaction.kind if r.transaction else None,
        "transaction.value": lambda r: r.transaction.value if r.transaction else None,
        "transaction.currency": lambda r: r.transaction.currency if r.transaction else None,
        "device.posture": lambda r: r.device.posture if r.device else None,
        "device.new_device": lambda r: r.device.new_device if r.device else None,
        "device.geo_mismatch": lambda r: r.device.geo_mismatch if r.device else None,
    }
    numeric = {"identity.seconds_since_auth", "identity.failed_attempts", "transaction.value"}
    for field, get in getters.items():
        values = [get(r) for r in requests]
        if field in numeric:
            context[field] = np.array([np.nan if v is None else float(v) for v in values])
        elif field in ORDINALS:
            levels = ORDINALS[field]
            context[field] = np.array([levels.index(v) if v is not None else -1 for v in values])
        else:
            context[field] = np.array(values, dtype=object)
    scores: dict[str, np.ndarray] = {}
    confidences: dict[str, np.ndarray] = {}
    for i, r in enumerate(requests):
        for s in r.signals:
            if s.name not in scores:
                scores[s.name] = np.full(n, np.nan)
                confidences[s.name] = np.zeros(n)
            scores[s.name][i] = s.score
            confidences[s.name][i] = s.confidence
    return Batch(size=n, context=context, scores=scores, confidences=confidences)
