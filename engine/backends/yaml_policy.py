"""The YAML policy format and its compiled evaluator.

Conditions compile once to closures at load; per request the evaluator only shifts
thresholds, picks the action, applies rules and the degraded cap, and attaches obligations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.core.conditions import ConditionError, compile_condition, data_field, fields_in
from engine.core.construct import build
from engine.core.fusion import FusionConfig
from engine.core.manifest import PolicyManifest
from engine.core.models import THRESHOLD_ACTIONS, Action, Fused, Reason, ReasonKind
from engine.core.policy import Outcome, PolicyView
from governance.folder import validate_file

_STRICT = ConfigDict(frozen=True, extra="forbid")


class Adjustment(BaseModel):
    """Context that shifts thresholds: negative = stricter (acts at lower risk)."""

    model_config = _STRICT
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: dict[str, Any]
    shift: float | dict[Action, float]
    phrase: str = Field(
        min_length=1,
        max_length=120,
        description="Plain words for the summary, e.g. 'a new device'.",
    )

    @field_validator("shift")
    @classmethod
    def _shift_in_range(cls, v: float | dict[Action, float]) -> float | dict[Action, float]:
        values = v.values() if isinstance(v, dict) else [v]
        if any(not -0.9 <= x <= 0.9 for x in values):
            raise ValueError("expected a threshold shift between -0.9 and 0.9")
        if isinstance(v, dict) and Action.log in v:
            raise ValueError("'log' has no threshold to shift")
        return v


class Rule(BaseModel):
    """A hard override: when the condition holds, the action is forced (with a reason)."""

    model_config = _STRICT
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: dict[str, Any]
    action: Action
    mode: Literal["at_least", "at_most", "exactly"] = "at_least"
    reason: str = Field(min_length=1, max_length=200)
    applies_when_degraded: bool = Field(
        default=False, description="May this rule exceed the degraded cap? (context-only rules)"
    )


class DegradedPolicy(BaseModel):
    """What to do when the evidence mass is below ``fusion.min_evidence``."""

    model_config = _STRICT
    max_action: Action = Field(
        default=Action.review, description="Never act harder than this on weak evidence."
    )
    min_action: Action = Field(
        default=Action.log,
        description="Fallback when detectors cannot judge (e.g. step_up = verify out of band).",
    )
    reason: str = "The evidence is too weak for a firm decision."

    @model_validator(mode="after")
    def _ordered(self) -> DegradedPolicy:
        if self.min_action > self.max_action:
            raise ValueError("min_action: expected at most max_action")
        return self


class SecondPass(BaseModel):
    """Stage 2: heavier detectors for the medium-risk band."""

    model_config = _STRICT
    band: tuple[float, float] = Field(
        description="[from, to) risk band that asks for a second pass"
    )
    detectors: list[str] = Field(min_length=1)
    raw_media: bool = Field(
        default=False,
        description="Ask for raw media; granted only if the data-flow manifest and consent allow.",
    )
    on_degraded: bool = True

    @model_validator(mode="after")
    def _band_ordered(self) -> SecondPass:
        lo, hi = self.band
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError("band: expected [from, to] with 0 ≤ from < to ≤ 1")
        return self


class StepUpSpec(BaseModel):
    model_config = _STRICT
    methods: list[str] = Field(min_length=1)
    message: str = ""


class ReviewSpec(BaseModel):
    model_config = _STRICT
    queue: str
    sla_minutes: int = Field(gt=0, le=7 * 24 * 60)
    checklist: list[str] = Field(min_length=1)


class NotifySpec(BaseModel):
    model_config = _STRICT
    channel: str
    message: str = ""


class ObligationSpecs(BaseModel):
    model_config = _STRICT
    step_up: StepUpSpec | None = None
    review: ReviewSpec | None = None
    block: NotifySpec | None = None
    warn: NotifySpec | None = None


class CostTable(BaseModel):
    """What each action costs on a legitimate and on an attack session (for backtests).

    The board weighs a version by these: friction and review time on genuine users against
    the loss an attack that gets through causes. Optional; one number per action per side.
    """

    model_config = _STRICT
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    legitimate: dict[Action, float]
    attack: dict[Action, float]

    @field_validator("legitimate", "attack")
    @classmethod
    def _every_action(cls, v: dict[Action, float]) -> dict[Action, float]:
        missing = [a.value for a in Action if a not in v]
        if missing:
            raise ValueError(f"expected a cost for every action; missing {', '.join(missing)}")
        if any(not 0.0 <= x < 1e12 for x in v.values()):
            raise ValueError("expected costs between 0 and 1e12")
        return v


class YamlPolicySpec(BaseModel):
    """``policy.yaml``: the whole decision logic of a YAML policy."""

    model_config = _STRICT
    fusion: FusionConfig
    thresholds: dict[Action, float]
    adjustments: list[Adjustment] = []
    rules: list[Rule] = []
    degraded: DegradedPolicy = DegradedPolicy()
    second_pass: SecondPass | None = None
    obligations: ObligationSpecs = ObligationSpecs()
    signal_phrases: dict[str, str] = Field(
        default_factory=dict,
        description="Signal name → plain words for the summary ('the caller's voice shows …').",
    )
    costs: CostTable | None = Field(
        default=None, description="Cost of each action on legitimate vs attack sessions."
    )

    @field_validator("thresholds")
    @classmethod
    def _thresholds_complete_and_ordered(cls, v: dict[Action, float]) -> dict[Action, float]:
        missing = [a.value for a in THRESHOLD_ACTIONS if a not in v]
        if missing:
            raise ValueError(
                f"expected a threshold for each of warn, step_up, review, block; missing {', '.join(missing)}"
            )
        if Action.log in v:
            raise ValueError("'log' is what remains below 'warn' and takes no threshold")
        values = [v[a] for a in THRESHOLD_ACTIONS]
        if any(not 0.0 < x <= 1.0 for x in values):
            raise ValueError("expected thresholds in (0, 1]")
        if values != sorted(values):
            raise ValueError("expected thresholds non-decreasing: warn ≤ step_up ≤ review ≤ block")
        return v

    def condition_fields(self) -> set[str]:
        out: set[str] = set()
        for item in (*self.adjustments, *self.rules):
            out |= fields_in(item.when)
        return out

    def fields_read(self) -> set[str]:
        """Data-flow fields this policy reads (what governance checks against the manifest)."""
        fields = {f"signals.{name}" for name in self.fusion.weights}
        for path in self.condition_fields():
            field = data_field(path)
            if field is not None:
                fields.add(field)
        return fields


Predicate = Callable[[Mapping[str, Any]], bool]


class CompiledYamlPolicy:
    """A YAML policy with every condition compiled; ``evaluate`` is pure and allocation-light."""

    def __init__(self, spec: YamlPolicySpec) -> None:
        problems: list[str] = []
        self.spec = spec
        self.adjustments: list[tuple[Adjustment, Predicate]] = []
        self.rules: list[tuple[Rule, Predicate]] = []
        # Reasons for adjustments and rules are constant: build them once, not per request.
        self.adjustment_reasons: dict[int, Reason] = {}
        self._threshold_cache: dict[tuple[int, ...], dict[Action, float]] = {}
        self.rule_reasons: dict[str, Reason] = {}
        for i, adj in enumerate(spec.adjustments):
            pred = _compile(adj.when, f"adjustments[{i}].when", problems)
            self.adjustments.append((adj, pred))
            self.adjustment_reasons[i] = Reason(
                code=f"adjustment.{adj.id}",
                message=f"Thresholds adjusted for {adj.phrase}.",
                kind=ReasonKind.adjustment,
            )
        for i, rule in enumerate(spec.rules):
            pred = _compile(rule.when, f"rules[{i}].when", problems)
            self.rules.append((rule, pred))
            self.rule_reasons[rule.id] = Reason(
                code=f"rule.{rule.id}",
                message=rule.reason,
                kind=ReasonKind.rule,
                action=rule.action,
            )
        if problems:
            raise ConditionError(problems)
        self.base = tuple(spec.thresholds[a] for a in THRESHOLD_ACTIONS)

    def effective_thresholds(self, fired: tuple[int, ...]) -> dict[Action, float]:
        """Thresholds after the fired adjustments; memoized, as few combinations ever occur."""
        cached = self._threshold_cache.get(fired)
        if cached is not None:
            return cached
        shifts = [0.0, 0.0, 0.0, 0.0]
        for i in fired:
            s = self.adjustments[i][0].shift
            for j, a in enumerate(THRESHOLD_ACTIONS):
                shifts[j] += s.get(a, 0.0) if isinstance(s, dict) else s
        effective: dict[Action, float] = {}
        floor = 0.01
        for a, base, shift in zip(THRESHOLD_ACTIONS, self.base, shifts, strict=True):
            # Keep thresholds ordered and inside (0, 1) whatever the shifts add up to.
            floor = max(floor, min(0.99, base + shift))
            effective[a] = round(floor, 4)
        if len(self._threshold_cache) < 4096:
            self._threshold_cache[fired] = effective
        return effective

    def evaluate(self, ctx: Mapping[str, Any], fused: Fused, degraded: bool) -> Outcome:
        fired = tuple(i for i, (_, pred) in enumerate(self.adjustments) if pred(ctx))
        reasons: list[Reason] = [self.adjustment_reasons[i] for i in fired]
        phrases = tuple(self.adjustments[i][0].phrase for i in fired)
        thresholds = self.effective_thresholds(fired)
        risk = fused.risk
        action = Action.log
        for a, th in thresholds.items():
            if risk >= th:
                action = a
        degraded_cap = self.spec.degraded.max_action
        if degraded:
            action = min(max(action, self.spec.degraded.min_action), degraded_cap)
        for rule, pred in self.rules:
            if not pred(ctx):
                continue
            if rule.mode == "at_least":
                forced = max(action, rule.action)
            elif rule.mode == "at_most":
                forced = min(action, rule.action)
            else:
                forced = rule.action
            # On weak evidence a rule may not push past the degraded cap unless it says so.
            ceiling = max(action, degraded_cap)
            if degraded and not rule.applies_when_degraded and forced > ceiling:
                forced = ceiling
            # An at_most rule explains a decision only when it actually lowered it.
            if rule.mode != "at_most" or forced != action:
                reasons.append(self.rule_reasons[rule.id])
            action = forced
        if degraded:
            reasons.append(
                build(
                    Reason,
                    code="evidence.degraded",
                    message=self.spec.degraded.reason,
                    kind=ReasonKind.degraded,
                    signals=(),
                    value=round(fused.evidence_mass, 3),
                )
            )
        return Outcome(
            action=action,
            thresholds=thresholds,
            reasons=tuple(reasons),
            context_phrases=phrases,
        )


def _compile(spec: Any, where: str, problems: list[str]) -> Predicate:
    try:
        return compile_condition(spec, where)
    except ConditionError as exc:
        problems.extend(exc.problems)
        return lambda ctx: False


class YamlEvaluator:
    def __init__(self, spec: YamlPolicySpec) -> None:
        self.spec = spec
        self.compiled = CompiledYamlPolicy(spec)

    def evaluate(self, view: PolicyView, fused: Fused, degraded: bool) -> Outcome:
        return self.compiled.evaluate(view.ctx, fused, degraded)

    def fields_read(self) -> set[str]:
        return self.spec.fields_read()


def load_yaml_backend(
    folder: Path, manifest: PolicyManifest | None, problems: list[str]
) -> tuple[FusionConfig, YamlEvaluator] | None:
    """``policy.yaml`` of ``folder`` as (fusion, evaluator), or None with problems added."""
    path = folder / "policy.yaml"
    spec = validate_file(YamlPolicySpec, path, problems)
    if spec is None:
        return None
    try:
        return spec.fusion, YamlEvaluator(spec)
    except ConditionError as exc:
        problems.extend(f"{path}: {p}" for p in exc.problems)
        return None
