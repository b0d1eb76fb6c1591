"""Wire models of the HTTP API (apart from table and domain models), with examples."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.core.errors import RequestInvalid
from engine.core.models import Decision, DecisionRequest
from engine.store.events import DecisionEventV1

_OUT = ConfigDict(frozen=True)

EXAMPLE_DECISION: dict[str, Any] = {
    "decision_id": "4f1c9a0e6b2d4e8f9a1b2c3d4e5f6a7b",
    "session_id": "call-7f3a",
    "action": "step_up",
    "risk": 0.4,
    "thresholds": {"warn": 0.03, "step_up": 0.1, "review": 0.4, "block": 0.85},
    "reasons": [
        {
            "code": "audio.vocoder_artifacts",
            "message": "The caller's voice shows synthetic-speech artifacts (0.87): "
            "Voice shows vocoder artifacts",
            "kind": "signal",
            "signals": ["audio.synthetic_voice"],
            "value": 0.87,
        }
    ],
    "summary": "Step up verification: the caller's voice shows synthetic-speech artifacts "
    "(0.87) on a password reset with low identity assurance.",
    "policy": {
        "id": "support-password-reset",
        "version": "1.0.0",
        "digest": "sha256:9b2f…",
        "engine": "yaml",
    },
    "obligations": [
        {
            "kind": "step_up",
            "methods": ["in_app_push_approval", "callback_to_number_on_file"],
            "message": "Do not reset on voice alone; confirm through the registered app.",
        },
        {"kind": "retention", "decision_log_days": 180},
    ],
    "degraded": False,
    "fused": None,
    "error": None,
    "decided_at": "2026-11-25T10:15:02.114000+00:00",
    "latency_us": 31,
}


class ErrorBody(BaseModel):
    """Every error, OPA-style: a stable code and one clear message (plus field errors)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "request_invalid",
                    "message": "session.id: String should match pattern '^[A-Za-z0-9._:\\-]+$'",
                    "errors": [
                        {
                            "field": "session.id",
                            "message": "String should match pattern '^[A-Za-z0-9._:\\-]+$'",
                        }
                    ],
                }
            ]
        }
    )
    code: str
    message: str
    errors: list[dict[str, Any]] = []
    request_id: str | None = None


class OpaQuery(BaseModel):
    """OPA's data API request: the decision request under ``input``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"input": DecisionRequest.model_config["json_schema_extra"]["examples"][0]}
            ]  # type: ignore[index]
        },
    )
    input: DecisionRequest

    def policy_for(self, package: str) -> str:
        """The policy a query of ``package`` names (``-`` written ``_`` in Rego packages);
        an ``input.policy`` that names another one is a contradiction, not a choice."""
        policy_id = package.replace("_", "-")
        named = self.input.policy
        if named and named != policy_id:
            raise RequestInvalid(
                f"input.policy: {named!r} contradicts the queried package {package!r} "
                f"(policy {policy_id!r}); omit it or make them agree"
            )
        return policy_id


def opa_result_json(decision_id: str, decision_json: str) -> str:
    """OPA's data API answer around an already-serialized decision."""
    return f'{{"result":{decision_json},"decision_id":"{decision_id}"}}'


class OpaResult(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {"result": EXAMPLE_DECISION, "decision_id": EXAMPLE_DECISION["decision_id"]}
            ]
        },
    )
    result: Decision
    decision_id: str


class Health(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [{"status": "ok", "signoff": {"signoff": "enforced", "unsigned": []}}]
        },
    )
    status: Literal["ok"] = "ok"
    signoff: dict[str, Any] = Field(
        default_factory=dict,
        description="'enforced', or 'override' with the unsigned versions being served.",
    )


class PolicySummary(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "support-password-reset",
                    "version": "1.0.0",
                    "engine": "yaml",
                    "digest": "sha256:9b2f…",
                    "package": "liveguard.support_password_reset",
                    "fail_mode": "step_up",
                    "owner": "fraud-platform@example.com",
                    "applies_to": {"channels": ["support_call"], "kinds": ["password_reset"]},
                    "loads": True,
                }
            ]
        },
    )
    id: str
    version: str
    engine: str
    digest: str | None = Field(description="None when the policy folder does not load.")
    package: str = Field(description="OPA package path to query via /v1/data.")
    fail_mode: str
    owner: str
    applies_to: dict[str, list[str]]
    loads: bool


class PolicyDetail(PolicySummary):
    manifest: dict[str, Any]
    privacy: dict[str, Any] = Field(description="PIA and data-flow summary for the board.")
    problems: list[str] = []


class PolicyList(BaseModel):
    model_config = _OUT
    policies: list[PolicySummary]


class ReviewItem(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "a1b2c3d4e5f6a7b8c9d0e1f2",
                    "decision_id": "4f1c9a0e6b2d4e8f9a1b2c3d4e5f6a7b",
                    "policy": "support-password-reset",
                    "policy_version": "1.0.0",
                    "queue": "fraud-review",
                    "status": "claimed",
                    "created_at": "2026-11-25T10:15:02Z",
                    "sla_due_at": "2026-11-25T10:25:02Z",
                    "checklist": {
                        "what_tripped": ["The caller's device is reported compromised."],
                        "confidence": {"risk": 0.62, "degraded": False},
                        "context": {"device": {"posture": "compromised"}},
                        "recommended_next_step": "Send to review: the caller's device is "
                        "reported compromised.",
                        "steps": ["Check device and location history for the account."],
                    },
                    "claimed_by": "9f8e7d6c5b4a",
                    "outcome": None,
                    "note": None,
                }
            ]
        },
    )
    id: str
    decision_id: str
    policy: str
    policy_version: str
    queue: str
    status: Literal["open", "claimed", "resolved"]
    created_at: datetime
    sla_due_at: datetime
    checklist: dict[str, Any]
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    outcome: str | None = None
    note: str | None = None
    resolved_at: datetime | None = None


class ReviewOutcomeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"outcome": "legitimate", "note": "Callback on file confirmed the caller."}
            ]
        },
    )
    outcome: Literal["confirmed_attack", "legitimate", "inconclusive"]
    note: str = Field(default="", max_length=2000)


class ReviewStat(BaseModel):
    model_config = _OUT
    policy: str
    version: str
    opened: int
    pending: int
    resolved: int
    confirmed_attack: int
    legitimate: int
    inconclusive: int
    overturn_rate: float | None = Field(
        description="legitimate / resolved: flags later overturned."
    )


class ReviewStats(BaseModel):
    model_config = _OUT
    versions: list[ReviewStat]


class EventPage(BaseModel):
    model_config = _OUT
    events: list[DecisionEventV1]
    next: str | None = Field(
        default=None, description="Query string for the next page, when there may be more."
    )


class ShadowCandidate(BaseModel):
    model_config = _OUT
    candidate: str
    version: str
    digest: str
    total: int


class ShadowChange(BaseModel):
    model_config = _OUT
    decision_id: str
    live_action: str
    shadow_action: str
    live_risk: float
    shadow_risk: float


class ShadowSummary(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "policy": "support-password-reset",
                    "configured": "support-password-reset@candidates/support-password-reset",
                    "candidates": [],
                    "total": 1200,
                    "agree": 1130,
                    "agreement_rate": 0.9417,
                    "changed": {"step_up->review": 52, "warn->step_up": 18},
                    "examples": [],
                }
            ]
        },
    )
    policy: str
    configured: str | None = Field(description="The candidate this replica shadows now, if any.")
    candidates: list[ShadowCandidate]
    total: int
    agree: int
    agreement_rate: float | None
    changed: dict[str, int]
    examples: list[ShadowChange]
