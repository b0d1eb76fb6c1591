"""``DecisionEventV1``: the decision-log sink's contract, and its adapters.

The event is the domain model (what an auditor reads, what a replay needs); the table row
is storage. ``adapt_*`` functions are the only bridge. The input is minimized twice: the
policy only saw declared fields, and the log keeps only fields the data-flow manifest
retains for more than 0 days (raw media never: it is not a request field, and raw-media
elements are never retained).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.core.models import Decision, DecisionRequest, PolicyRef
from engine.store.tables import DecisionEventRow
from governance.minimize import Projection

#: Always kept: the correlation key a reviewer or auditor needs.
CORRELATION = "session.id"


class EventSignal(BaseModel):
    """A retained signal, with what is needed to replay it exactly."""

    model_config = ConfigDict(frozen=True)
    name: str
    modality: str
    score: float
    confidence: float
    detector: str
    detector_version: str
    model_digest: str | None = None
    window_ms: int = 0
    evidence: list[dict[str, Any]] = []


class EventTimings(BaseModel):
    model_config = ConfigDict(frozen=True)
    decide_us: int = Field(description="Time inside decide().")
    service_us: int = Field(description="Request received → event handed to the log.")


class DecisionEventV1(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["DecisionEventV1"] = "DecisionEventV1"
    decision_id: str
    time: datetime
    request_id: str | None = None
    session_id: str
    policy: PolicyRef
    input: dict[str, Any] = Field(description="The request, minus anything not retained.")
    signals: list[EventSignal]
    result: dict[str, Any] = Field(description="The Decision as the caller received it.")
    timings: EventTimings
    retention_days: dict[str, int] = Field(description="Retained field → days kept.")
    expires_at: datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware_utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def retention_map(retained: dict[str, int | None] | None) -> dict[str, int]:
    """Field → days for fields kept more than 0 days; the session id lives as long as any."""
    out = {f: d for f, d in (retained or {}).items() if d and d > 0}
    if out:
        out.setdefault(CORRELATION, max(out.values()))
    return out


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """One policy version's retention, compiled once: field → days, and the projection."""

    days: dict[str, int]
    projection: Projection
    longest: int
    #: How long until the whole event, and until its first field, falls out of retention.
    keep_for: timedelta = timedelta(0)
    first_redaction: timedelta | None = None

    @classmethod
    def from_days(cls, days: dict[str, int]) -> RetentionPlan:
        longest = max(days.values(), default=0)
        shorter = [d for d in days.values() if 0 < d < longest]
        return cls(
            days,
            Projection.from_allowed(frozenset(days)),
            longest,
            timedelta(days=longest),
            timedelta(days=min(shorter)) if shorter else None,
        )


def project(request: dict[str, Any], fields: set[str] | frozenset[str]) -> dict[str, Any]:
    """``request`` restricted to ``fields`` (plus session.id); signals split out."""
    kept = Projection.from_allowed(frozenset(fields)).apply(request)
    kept.pop("signals", None)
    return kept


def event_signals(
    signals: list[dict[str, Any]], fields: set[str] | frozenset[str]
) -> list[EventSignal]:
    proj = Projection.from_allowed(frozenset(fields))
    out = []
    for s in signals:
        if not proj.keeps_signal(s["name"]):
            continue
        name, _, version = str(s.get("detector", "unknown@0.0.0")).partition("@")
        out.append(
            EventSignal(
                name=s["name"],
                modality=s["modality"],
                score=s["score"],
                confidence=s["confidence"],
                detector=name,
                detector_version=version or "unknown",
                model_digest=s.get("model_digest"),
                window_ms=s.get("window_ms", 0),
                evidence=list(s.get("evidence", ())),
            )
        )
    return out


def _split_detector(ref: str) -> tuple[str, str]:
    name, _, version = ref.partition("@")
    return name, version or "unknown"


def _retained(
    request: DecisionRequest, plan: RetentionPlan
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The retained input (signals split out) and the retained signals, as plain data."""
    raw = request.model_dump(mode="json", exclude_none=True)
    signals = raw.pop("signals", [])
    kept = plan.projection.apply(raw, copy=False)  # ``raw`` is ours alone: no copies
    kept.pop("signals", None)
    out = []
    for s in signals:
        if plan.projection.keeps_signal(s["name"]):
            name, version = _split_detector(s.get("detector", "unknown@0.0.0"))
            out.append(
                {
                    "name": s["name"],
                    "modality": s["modality"],
                    "score": s["score"],
                    "confidence": s["confidence"],
                    "detector": name,
                    "detector_version": version,
                    "model_digest": s.get("model_digest"),
                    "window_ms": s.get("window_ms", 0),
                    "evidence": s.get("evidence", []),
                }
            )
    return kept, out


def build_event(
    request: DecisionRequest,
    decision: Decision,
    plan: RetentionPlan,
    *,
    time: datetime,
    request_id: str | None,
    service_us: int,
) -> DecisionEventV1:
    """The event for one decision, keeping only the retained fields of its request."""
    kept, signals = _retained(request, plan)
    return DecisionEventV1(
        decision_id=decision.decision_id,
        time=time,
        request_id=request_id,
        session_id=decision.session_id,
        policy=decision.policy,
        input=kept,
        signals=[EventSignal.model_validate(s) for s in signals],
        result=decision.to_wire(),
        timings=EventTimings(decide_us=decision.latency_us, service_us=service_us),
        retention_days=plan.days,
        expires_at=time + plan.keep_for,
    )


def event_row(
    request: DecisionRequest,
    decision: Decision,
    plan: RetentionPlan,
    *,
    time: datetime,
    request_id: str | None,
    service_us: int,
    result_json: str,
) -> dict[str, Any]:
    """The stored form of ``build_event(...)`` without building the model in between.

    The serving hot path: same columns and values as ``adapt_event_to_row(build_event(…))``
    (a test holds them equal), with the result passed as the JSON the caller is sent.
    """
    kept, signals = _retained(request, plan)
    # == next_redaction(time, plan.days, time), precomputed per plan (a test holds it)
    redact = time + plan.first_redaction if plan.first_redaction is not None else None
    return {
        "decision_id": decision.decision_id,
        "schema_version": 1,
        "decided_at": time,
        "request_id": request_id,
        "session_id": decision.session_id,
        "policy_id": decision.policy.id,
        "policy_version": decision.policy.version,
        "policy_digest": decision.policy.digest,
        "policy_engine": decision.policy.engine,
        "action": decision.action.value,
        "risk": decision.risk,
        "degraded": decision.degraded,
        "error": decision.error,
        "input": kept,
        "signals": signals,
        "result": RawJSON(result_json),
        "timings": {"decide_us": decision.latency_us, "service_us": service_us},
        "retention": plan.days,
        "expires_at": time + plan.keep_for,
        "redact_at": redact,
    }


#: What a stored decision says once part of what it was decided on is past retention.
REDACTED_SUMMARY = (
    "Explanation removed at retention: some of the data it was based on is past its "
    "retention period; the action, risk and thresholds are kept."
)
#: Reason kinds that never derive from request fields beyond signals: engine evidence mass,
#: consent handling and evaluation errors.
_KEPT_REASON_KINDS = frozenset({"degraded", "privacy", "error"})


def redact_result(result: dict[str, Any], keep: set[str] | frozenset[str]) -> dict[str, Any]:
    """A stored decision minus what could derive from fields no longer retained.

    Rule and adjustment reasons (and the summary built from them) may derive from any
    request field, and which ones is a policy's business, not the log's: once any field of
    the event is past retention they go. Signal reasons and fused contributions stay only
    for signals still retained. Action, risk, thresholds, policy and obligations stay: they
    are the decision itself.
    """
    proj = Projection.from_allowed(frozenset(keep))
    out = dict(result)
    out["reasons"] = [
        r
        for r in result.get("reasons", [])
        if r.get("kind") in _KEPT_REASON_KINDS
        or (
            r.get("kind") == "signal"
            and r.get("signals")
            and all(proj.keeps_signal(name) for name in r["signals"])
        )
    ]
    out["summary"] = REDACTED_SUMMARY
    fused = result.get("fused")
    if isinstance(fused, dict):
        out["fused"] = {
            **fused,
            "contributions": [
                c for c in fused.get("contributions", []) if proj.keeps_signal(c.get("signal", ""))
            ],
            "ignored_signals": [
                n for n in fused.get("ignored_signals", []) if proj.keeps_signal(n)
            ],
        }
    return out


class RawJSON(str):
    """Already-serialized JSON: the writer stores it as is."""

    __slots__ = ()


def next_redaction(time: datetime, retention: dict[str, int], now: datetime) -> datetime | None:
    """When the next field (but not the whole event) falls out of retention, if ever."""
    longest = max(retention.values(), default=0)
    later = [time + timedelta(days=d) for d in retention.values() if d < longest]
    later = [t for t in later if t > now]
    return min(later) if later else None


def adapt_event_to_row(event: DecisionEventV1) -> dict[str, Any]:
    """Column values for an insert (a dict: the writer batches plain inserts)."""
    t = aware_utc(event.time)
    redact = next_redaction(event.time, event.retention_days, event.time)
    return {
        "decision_id": event.decision_id,
        "schema_version": 1,
        "decided_at": t,
        "request_id": event.request_id,
        "session_id": event.session_id,
        "policy_id": event.policy.id,
        "policy_version": event.policy.version,
        "policy_digest": event.policy.digest,
        "policy_engine": event.policy.engine,
        "action": event.result["action"],
        "risk": event.result["risk"],
        "degraded": event.result.get("degraded", False),
        "error": event.result.get("error"),
        "input": event.input,
        "signals": [s.model_dump(mode="json") for s in event.signals],
        "result": event.result,
        "timings": event.timings.model_dump(mode="json"),
        "retention": event.retention_days,
        "expires_at": aware_utc(event.expires_at),
        "redact_at": aware_utc(redact) if redact else None,
    }


def adapt_row_to_event(row: DecisionEventRow) -> DecisionEventV1:
    return DecisionEventV1(
        decision_id=row.decision_id,
        time=aware_utc(row.decided_at),
        request_id=row.request_id,
        session_id=row.session_id,
        policy=PolicyRef(
            id=row.policy_id,
            version=row.policy_version,
            digest=row.policy_digest,
            engine=row.policy_engine,
        ),
        input=row.input or {},
        signals=[EventSignal.model_validate(s) for s in row.signals or []],
        result=row.result or {},
        timings=EventTimings.model_validate(row.timings or {"decide_us": 0, "service_us": 0}),
        retention_days=row.retention or {},
        expires_at=aware_utc(row.expires_at),
    )
