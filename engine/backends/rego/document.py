"""The decision document a Rego policy returns, validated like any backend's outcome.

Shared by every Rego evaluator (regopy, regorus, a remote OPA): the same document, the
same checks, the same ``policy_eval_error`` when it is not a valid outcome.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from engine.core.errors import PolicyEvalError
from engine.core.fusion import FusionConfig
from engine.core.models import Action, Obligation, Reason, ReasonKind
from engine.core.policy import Outcome

REGO_FILE = "policy.rego"
DATA_FILE = "data.json"
FUSION_FILE = "fusion.yaml"


class FusionFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    fusion: FusionConfig
    signal_phrases: dict[str, str] = Field(
        default_factory=dict,
        description="Signal name → plain words for the summary ('the caller's voice shows …').",
    )


class RegoReason(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    code: str = Field(min_length=1)
    message: str = Field(min_length=1)
    kind: ReasonKind = ReasonKind.rule
    signals: tuple[str, ...] = ()
    value: float | None = None
    action: Action | None = Field(default=None, description="For rules: the action asked for.")


class RegoDecision(BaseModel):
    """What ``decision`` must evaluate to; anything else is a policy_eval_error."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    action: Action
    reasons: tuple[RegoReason, ...]
    thresholds: dict[Literal["warn", "step_up", "review", "block"], float] | None = None
    obligations: tuple[Obligation, ...] | None = None
    context: tuple[str, ...] = Field(default=(), description="Phrases for the summary.")
    fired: tuple[str, ...] = Field(default=(), description="Ids of the rules that fired.")


_DECISION = TypeAdapter(RegoDecision)


def to_outcome(raw: Any) -> tuple[Outcome, tuple[str, ...]]:
    """Validate a decision document exactly like the engine treats any backend's outcome."""
    try:
        d = _DECISION.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "decision"
        raise PolicyEvalError(
            f"decision is not a valid outcome: {where}: {first['msg']} "
            f"({exc.error_count()} problem(s))"
        ) from None
    reasons = tuple(
        Reason(
            code=r.code,
            message=r.message,
            kind=r.kind,
            signals=r.signals,
            value=r.value,
            action=r.action,
        )
        for r in d.reasons
    )
    thresholds = {Action(k): v for k, v in (d.thresholds or {}).items()}
    outcome = Outcome(
        action=d.action,
        thresholds=thresholds,
        reasons=reasons,
        context_phrases=d.context,
        obligations=d.obligations if d.obligations is not None else (),
    )
    return outcome, d.fired
