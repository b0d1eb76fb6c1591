"""OPA's own evaluator as the oracle for the embedded engines (regorus and regopy): every
bundled Rego policy decides alike.

The embedded engine gets what the engine really sends (the input pruned to the paths the compiled plan
reads); OPA gets the full minimized input. A difference is either a rego-cpp gap or an
unsound pruning analysis; either way the failing input is printed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from engine.backends.rego.embedded import RegoEvaluator, mount_data
from engine.backends.rego.input import request_input
from engine.core.fusion import fuse
from engine.core.models import DecisionRequest
from engine.core.policy import Policy
from engine.policy.repository import PolicyRepository
from tests.engine.rego import requests as gen
from tests.engine.rego.conftest import REGO_ENGINES, rego_policy

# Derandomized examples per policy and engine (2,000 until 2026-12-04: 40 s of a 7-minute
# suite on the 2-core machine, for the four runs).
EXAMPLES = 1000


def _opa_for(policy: Policy, engine_cls: Any) -> Any:
    compiled = policy.evaluator.compiled
    opa = engine_cls()
    for name, src in compiled.modules.items():
        opa.add_policy(f"{policy.id}/{name}", src)
    if compiled.data:
        opa.add_data(mount_data(compiled.package, compiled.data))
    return opa


def _both(policy: Policy, opa: Any, raw: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    request = DecisionRequest.model_validate(raw)
    view = policy.view(request)
    fused = fuse(view.signals, policy.fusion)
    degraded = fused.evidence_mass < policy.fusion.min_evidence
    evaluator: RegoEvaluator = policy.evaluator  # type: ignore[assignment]  # or Regorus…
    full = request_input(view, fused, degraded)
    ours = evaluator.evaluate_document(evaluator.input_for(view, fused, degraded))
    theirs = opa.eval_document(evaluator.compiled.query_path, full)
    return ours, theirs, full


def _canonical(value: Any) -> Any:
    # OPA returns whole floats as ints (1500.0 → 1500); compare numbers as floats.
    return json.loads(json.dumps(value), parse_int=float)


@pytest.mark.parametrize("engine", REGO_ENGINES)
@pytest.mark.parametrize("policy_id", ["support-password-reset-rego", "payout-authorization-rego"])
def test_embedded_engine_and_opa_decide_alike_on_generated_requests(
    policy_id: str, engine: str, opa_engine_cls: Any
) -> None:
    policy = rego_policy(policy_id, engine)
    opa = _opa_for(policy, opa_engine_cls)
    kind = "payout_authorization" if "payout" in policy_id else "password_reset"
    seen = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
    )
    @given(gen.requests(kind=kind))
    def check(raw: dict[str, Any]) -> None:
        nonlocal seen
        ours, theirs, full = _both(policy, opa, raw)
        seen += 1
        assert _canonical(ours) == _canonical(theirs), (
            f"{engine} and OPA disagree for {policy_id}\ninput: {json.dumps(full)}\n"
            f"{engine}: {json.dumps(ours)}\nopa:    {json.dumps(theirs)}"
        )

    check()
    assert seen >= EXAMPLES


def test_every_bundled_rego_policy_is_covered_by_the_oracle(rego_ids: list[str]) -> None:
    assert sorted(rego_ids) == ["payout-authorization-rego", "support-password-reset-rego"]


def test_oracle_reports_a_disagreement_with_the_input(
    repo: PolicyRepository, opa_engine_cls: Any
) -> None:
    """The oracle is not vacuous: a rego-cpp gap (comprehension inside a function that
    uses its argument as a key) is caught and shown with the input."""
    src = (
        "package liveguard.gap\n\nimport rego.v1\n\n"
        "shift(k) := sum([a.shift[k] | some a in data.liveguard_data.gap.adj])\n"
        'decision := {"warn": shift("warn"), "block": shift("block")}\n'
    )
    data = {"adj": [{"shift": {"warn": 1, "block": 10}}, {"shift": {"warn": 2, "block": 20}}]}
    from engine.backends.rego.embedded import compile_rego

    problems: list[str] = []
    compiled = compile_rego(
        {"p.rego": src}, data, "gap", "liveguard/gap/decision", where=repo.root, problems=problems
    )
    assert compiled is not None, problems
    ours = RegoEvaluator(compiled, repo.get("support-password-reset-rego").fusion)
    opa = opa_engine_cls()
    opa.add_policy("p.rego", src)
    opa.add_data(mount_data("gap", data))
    assert _canonical(ours.evaluate_document({})) != _canonical(
        opa.eval_document("liveguard.gap.decision", {})
    )
