"""Metrics from the count table equal the same metrics counted session by session."""

from __future__ import annotations

import pytest

from engine import PolicyRepository
from simulations import SEVERITY
from simulations.backtest import evaluate, metrics

from .conftest import POLICIES


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _by_hand(action, attack, attack_type, escalated, costs) -> dict:
    """The reference: plain Python over the sessions, no numpy."""
    n = len(action)
    legit = [a for a, at in zip(action, attack, strict=True) if not at]
    catch = {}
    for t in sorted({t or "" for t, at in zip(attack_type, attack, strict=True) if at}):
        acts = [
            a
            for a, at, ty in zip(action, attack, attack_type, strict=True)
            if at and (ty or "") == t
        ]
        catch[t] = {
            "sessions": len(acts),
            "step_up_or_harder": sum(a >= SEVERITY["step_up"] for a in acts) / len(acts),
            "review_or_harder": sum(a >= SEVERITY["review"] for a in acts) / len(acts),
            "block": sum(a == SEVERITY["block"] for a in acts) / len(acts),
        }
    out = {
        "sessions": n,
        "actions": [sum(a == s for a in action) for s in range(5)],
        "fpr_step_up": _ratio(sum(a >= SEVERITY["step_up"] for a in legit), len(legit)),
        "fpr_block": _ratio(sum(a == SEVERITY["block"] for a in legit), len(legit)),
        "interruption": _ratio(sum(a > 0 for a in legit), len(legit)),
        "catch": catch,
        "escalations": sum(escalated) / n * 1000,
    }
    if costs is not None:
        names = list(costs.legitimate)
        out["cost"] = sum(
            (costs.attack if at else costs.legitimate)[names[a]]
            for a, at in zip(action, attack, strict=True)
        )
    return out


def _summary(group: dict) -> dict:
    out = {
        "sessions": group["sessions"],
        "actions": list(group["actions"].values()),
        "fpr_step_up": group["false_positive_rate"]["step_up_or_harder"],
        "fpr_block": group["false_positive_rate"]["block"],
        "interruption": group["interruption_rate"],
        "catch": group["catch_rate"],
        "escalations": group["raw_media_escalations_per_1000"],
    }
    if group["expected_cost"] is not None:
        out["cost"] = group["expected_cost"]["total"]
    return out


@pytest.mark.parametrize("policy_id", ["executive-meeting", "support-password-reset"])
def test_metrics_overall_and_per_scenario_equal_counting_by_hand(corpus, policy_id):
    policy = PolicyRepository(POLICIES).get(policy_id)
    ev = evaluate(policy, corpus, timing=False)
    m = metrics(ev, corpus)
    rows = ev.rows.tolist()
    scenario = [corpus.column("scenario")[i].as_py() for i in rows]
    attack = [corpus.column("attack")[i].as_py() for i in rows]
    attack_type = [corpus.column("attack_type")[i].as_py() for i in rows]
    action = ev.action.tolist()
    escalated = ev.escalated.tolist()
    costs = policy.spec.costs
    assert _summary(m["overall"]) == _by_hand(action, attack, attack_type, escalated, costs)
    assert sorted(m["scenarios"]) == sorted(set(scenario))
    for s, group in m["scenarios"].items():
        keep = [i for i, name in enumerate(scenario) if name == s]
        want = _by_hand(
            [action[i] for i in keep],
            [attack[i] for i in keep],
            [attack_type[i] for i in keep],
            [escalated[i] for i in keep],
            costs,
        )
        assert _summary(group) == want, s
