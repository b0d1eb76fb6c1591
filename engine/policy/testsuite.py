"""Policy tests as data: ``policies/<id>/tests.yaml`` cases run against any backend.

Format::

    defaults:                 # a base request, deep-merged under every case
      session: {id: t, channel: support_call, kind: password_reset, participant: external,
                consent: {media_analysis: true}}
      identity: {assurance: low}
    cases:
      - name: voice clone on weak identity steps up
        request:
          signals:            # shorthand: name → [score, confidence], or the wire format list
            audio.synthetic_voice: [0.87, 0.8]
        expect:
          action: step_up
          reasons: [audio.synthetic_voice]   # reason codes or signal names that must appear
          degraded: false
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.core.decide import decide
from engine.core.errors import PolicyInvalid
from engine.core.models import Action, Decision, DecisionRequest
from engine.core.policy import Policy
from governance.errors import format_validation_error
from governance.folder import read_yaml

TESTS_FILE = "tests.yaml"


class Expectation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    action: Action
    reasons: list[str] = []
    absent_reasons: list[str] = []
    degraded: bool | None = None
    risk_min: float | None = Field(default=None, ge=0, le=1)
    risk_max: float | None = Field(default=None, ge=0, le=1)
    obligations: list[str] = []
    summary_contains: list[str] = []


class Case(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1)
    request: dict[str, Any] = {}
    expect: Expectation


class TestSuite(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    defaults: dict[str, Any] = {}
    cases: list[Case] = Field(min_length=1)


@dataclass
class CaseResult:
    name: str
    passed: bool
    decision: Decision | None
    failures: list[str] = field(default_factory=list)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def expand_signals(signals: Any) -> Any:
    """``{name: [score, confidence]}`` shorthand → the wire format list."""
    if not isinstance(signals, Mapping):
        return signals
    out = []
    for name, value in signals.items():
        score, confidence = (value, 1.0) if isinstance(value, int | float) else value
        out.append(
            {
                "name": name,
                "modality": str(name).split(".", 1)[0],
                "score": score,
                "confidence": confidence,
                "detector": f"{str(name).split('.', 1)[-1]}@1.0.0",
            }
        )
    return out


def build_request(defaults: Mapping[str, Any], case: Case) -> DecisionRequest:
    raw = deep_merge(defaults, case.request)
    if "signals" in raw:
        raw["signals"] = expand_signals(raw["signals"])
    # Nulls in a case remove a default section (e.g. ``device: null`` = no device info).
    raw = {k: v for k, v in raw.items() if v is not None}
    return DecisionRequest.model_validate(raw)


def load_suite(policy_dir: Path) -> TestSuite:
    path = policy_dir / TESTS_FILE
    problems: list[str] = []
    data = read_yaml(path, problems)
    if data is None:
        raise PolicyInvalid(f"{path}: policy tests do not load", problems=problems)
    try:
        return TestSuite.model_validate(data)
    except ValidationError as exc:
        raise PolicyInvalid(
            f"{path}: policy tests do not load", problems=format_validation_error(str(path), exc)
        ) from exc


def check(decision: Decision, expect: Expectation) -> list[str]:
    failures: list[str] = []
    if decision.action != expect.action:
        failures.append(
            f"expected action {expect.action.value}, got {decision.action.value} "
            f"(risk {decision.risk:.3f}; {decision.summary})"
        )
    seen = {r.code for r in decision.reasons} | {s for r in decision.reasons for s in r.signals}
    for code in expect.reasons:
        if code not in seen:
            failures.append(f"expected reason {code!r}; got {sorted(seen)}")
    for code in expect.absent_reasons:
        if code in seen:
            failures.append(f"expected no reason {code!r}")
    if expect.degraded is not None and decision.degraded != expect.degraded:
        failures.append(f"expected degraded={expect.degraded}, got {decision.degraded}")
    if expect.risk_min is not None and decision.risk < expect.risk_min:
        failures.append(f"expected risk ≥ {expect.risk_min}, got {decision.risk:.4f}")
    if expect.risk_max is not None and decision.risk > expect.risk_max:
        failures.append(f"expected risk ≤ {expect.risk_max}, got {decision.risk:.4f}")
    kinds = {o.kind for o in decision.obligations}
    for kind in expect.obligations:
        if kind not in kinds:
            failures.append(f"expected obligation {kind!r}; got {sorted(kinds)}")
    for text in expect.summary_contains:
        if text not in decision.summary:
            failures.append(f"expected summary to contain {text!r}: {decision.summary!r}")
    if decision.error:
        failures.append(f"policy evaluation failed: {decision.error}")
    return failures


def run_suite(policy: Policy, suite: TestSuite | None = None) -> list[CaseResult]:
    suite = suite or load_suite(policy.path)
    results: list[CaseResult] = []
    for i, case in enumerate(suite.cases):
        try:
            request = build_request(suite.defaults, case)
        except ValidationError as exc:
            where = f"{policy.path / TESTS_FILE}: cases[{i}].request"
            results.append(CaseResult(case.name, False, None, format_validation_error(where, exc)))
            continue
        decision = decide(request, policy, decision_id=f"test-{i}")
        failures = check(decision, case.expect)
        results.append(CaseResult(case.name, not failures, decision, failures))
    return results
