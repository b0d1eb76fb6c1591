"""The vectorized evaluator decides exactly like decide(), session by session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import decide
from engine.policy.repository import PolicyRepository
from simulations import SEVERITY, VectorizedPolicy, batch_from_requests
from simulations.generate import random_requests

POLICIES = Path(__file__).resolve().parents[2] / "policies"
YAML_IDS = [
    "conference-default",
    "executive-meeting",
    "support-password-reset",
    "payout-authorization",
]


@pytest.mark.parametrize("policy_id", YAML_IDS)
def test_vectorized_actions_match_decide(policy_id):
    policy = PolicyRepository(POLICIES).get(policy_id)
    requests = random_requests(2_000, seed=policy_id)
    result = VectorizedPolicy(policy).evaluate(batch_from_requests(requests))
    mismatches = []
    for i, req in enumerate(requests):
        d = decide(req, policy)
        if abs(d.fused.risk - result.risk[i]) > 1e-9:
            mismatches.append((i, "risk", d.fused.risk, result.risk[i]))
        # Sums in another order may differ in the last bit; skip exact-boundary ties.
        on_boundary = any(abs(d.fused.risk - t) < 1e-9 for t in d.thresholds.values())
        if not on_boundary and SEVERITY[d.action] != result.action[i]:
            mismatches.append((i, "action", d.action.value, int(result.action[i])))
        assert d.degraded == bool(result.degraded[i])
    assert not mismatches, mismatches[:5]


def test_action_names_map_severities():
    policy = PolicyRepository(POLICIES).get("conference-default")
    result = VectorizedPolicy(policy).evaluate(batch_from_requests(random_requests(1, seed=1)))
    assert result.action_names()[0] in {"log", "warn", "step_up", "review", "block"}
    assert result.action.dtype == np.int8
