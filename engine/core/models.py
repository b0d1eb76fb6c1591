"""Request and decision models: the wire format of every decision."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
)

from signals import Signal, clean_text


class Action(StrEnum):
    """What the caller should do with the session, in increasing severity."""

    log = "log"
    warn = "warn"
    step_up = "step_up"
    review = "review"
    block = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Action):
            return NotImplemented
        return _SEVERITY[self] < _SEVERITY[other]

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Action):
            return NotImplemented
        return _SEVERITY[self] <= _SEVERITY[other]

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Action):
            return NotImplemented
        return _SEVERITY[self] > _SEVERITY[other]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Action):
            return NotImplemented
        return _SEVERITY[self] >= _SEVERITY[other]

    __hash__ = StrEnum.__hash__


ACTIONS: tuple[Action, ...] = (Action.log, Action.warn, Action.step_up, Action.review, Action.block)
_SEVERITY = {a: i for i, a in enumerate(ACTIONS)}
#: Actions that have a risk threshold (``log`` is what remains below ``warn``).
THRESHOLD_ACTIONS: tuple[Action, ...] = ACTIONS[1:]

Assurance = Literal["none", "low", "substantial", "high"]
ASSURANCE_LEVELS: tuple[str, ...] = ("none", "low", "substantial", "high")
Posture = Literal["managed", "known", "unknown", "compromised"]
POSTURE_LEVELS: tuple[str, ...] = ("managed", "known", "unknown", "compromised")

_WIRE = ConfigDict(frozen=True, extra="forbid")

#: Free text a caller sends that may be shown to people (agents, reviewers): no control or
#: bidi characters. Flags and numbers are strict everywhere on the wire: ``"yes"``, ``"1"``
#: or ``1`` is not consent, ``"0.9"`` is not a number.
PlainText = Annotated[str, AfterValidator(clean_text)]


class Consent(BaseModel):
    model_config = _WIRE
    media_analysis: StrictBool = Field(
        default=False, description="The participant agreed to analysis of their voice/face."
    )
    raw_media_escalation: StrictBool = Field(
        default=False, description="Raw media may be sent for second-pass or human review."
    )


class Session(BaseModel):
    model_config = _WIRE
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    channel: Literal["conference", "support_call"]
    kind: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="e.g. executive_meeting, password_reset, payout_authorization",
    )
    participant: Literal["internal", "external"]
    consent: Consent


class Identity(BaseModel):
    model_config = _WIRE
    assurance: Assurance
    method: PlainText | None = Field(default=None, max_length=64)
    seconds_since_auth: StrictInt | None = Field(default=None, ge=0)
    failed_attempts: StrictInt = Field(default=0, ge=0, le=1000)


class Transaction(BaseModel):
    model_config = _WIRE
    kind: PlainText = Field(min_length=1, max_length=64)
    value: StrictFloat = Field(ge=0, allow_inf_nan=False)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class Device(BaseModel):
    model_config = _WIRE
    posture: Posture
    new_device: StrictBool = False
    geo_mismatch: StrictBool = False


class DecisionRequest(BaseModel):
    """One question to the engine: what should happen to this live session now?"""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "session": {
                        "id": "call-7f3a",
                        "channel": "support_call",
                        "kind": "password_reset",
                        "participant": "external",
                        "consent": {"media_analysis": True, "raw_media_escalation": False},
                    },
                    "identity": {
                        "assurance": "low",
                        "method": "knowledge_based",
                        "seconds_since_auth": 40,
                        "failed_attempts": 1,
                    },
                    "transaction": {"kind": "password_reset", "value": 0, "currency": "USD"},
                    "device": {"posture": "unknown", "new_device": True, "geo_mismatch": False},
                    "signals": [
                        {
                            "name": "audio.synthetic_voice",
                            "modality": "audio",
                            "score": 0.87,
                            "confidence": 0.8,
                            "evidence": [
                                {
                                    "code": "audio.vocoder_artifacts",
                                    "message": "Voice shows vocoder artifacts",
                                    "value": 0.91,
                                }
                            ],
                            "detector": "synthetic_voice@1.0.0",
                            "window_ms": 4000,
                        }
                    ],
                    "policy": "support-password-reset",
                }
            ]
        },
    )

    session: Session
    identity: Identity
    transaction: Transaction | None = None
    device: Device | None = None
    signals: tuple[Signal, ...] = Field(default=(), max_length=256)
    policy: str | None = Field(
        default=None,
        max_length=200,
        description="Policy id (optionally id@ref); omitted = chosen by applies_to.",
    )


class ReasonKind(StrEnum):
    signal = "signal"
    rule = "rule"
    adjustment = "adjustment"
    degraded = "degraded"
    privacy = "privacy"
    error = "error"


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str
    message: str
    kind: ReasonKind = ReasonKind.signal
    signals: tuple[str, ...] = ()
    value: float | None = None
    action: Action | None = Field(
        default=None, description="For rules: the action the rule asks for."
    )


class Contribution(BaseModel):
    """How much one signal moved the fused log-odds."""

    model_config = ConfigDict(frozen=True)
    signal: str
    detector: str
    score: float
    confidence: float
    weight: float
    log_odds: float
    capped: bool


class Fused(BaseModel):
    model_config = ConfigDict(frozen=True)
    risk: float
    prior_log_odds: float
    log_odds: float
    evidence_mass: float
    contributions: tuple[Contribution, ...]
    ignored_signals: tuple[str, ...] = ()


class PolicyRef(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    version: str
    digest: str
    engine: str = "yaml"


class StepUpObligation(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["step_up"] = "step_up"
    methods: tuple[str, ...]
    message: str = ""


class SecondPassObligation(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["second_pass"] = "second_pass"
    detectors: tuple[str, ...]
    raw_media_allowed: bool
    why: str


class ReviewObligation(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["review"] = "review"
    queue: str
    sla_minutes: int
    checklist: tuple[str, ...]


class RetentionObligation(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["retention"] = "retention"
    decision_log_days: int


class NotifyObligation(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["notify"] = "notify"
    channel: str
    message: str = ""


Obligation = Annotated[
    StepUpObligation
    | SecondPassObligation
    | ReviewObligation
    | RetentionObligation
    | NotifyObligation,
    Field(discriminator="kind"),
]


class Decision(BaseModel):
    """The engine's answer, with everything needed to explain and replay it."""

    model_config = ConfigDict(frozen=True)

    decision_id: str
    session_id: str
    action: Action
    risk: float
    thresholds: dict[Action, float]
    reasons: tuple[Reason, ...]
    summary: str
    policy: PolicyRef
    obligations: tuple[Obligation, ...] = ()
    degraded: bool = False
    fused: Fused | None = None
    error: str | None = Field(
        default=None, description="Set when evaluation failed and fail_mode decided."
    )
    decided_at: str | None = None
    latency_us: int = 0

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
