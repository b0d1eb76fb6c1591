"""The YAML and Rego twins are the same policy, on every embedded Rego engine: same
tests.yaml, same action on 10,000+ generated requests each (numpy-generated in bulk:
hypothesis' per-example cost would dominate at this count)."""

from __future__ import annotations

import json

import pytest

from engine.core.decide import decide
from engine.core.models import DecisionRequest
from engine.policy.repository import PolicyRepository
from engine.policy.testsuite import run_suite
from tests.engine.rego import requests as gen
from tests.engine.rego import twin_tables
from tests.engine.rego.conftest import POLICIES, REGO_ENGINES, TWINS, rego_policy

N = 10_000


@pytest.mark.parametrize("rego_id", sorted(TWINS))
def test_twins_share_identical_policy_tests(rego_id: str) -> None:
    ours = (POLICIES / rego_id / "tests.yaml").read_bytes()
    theirs = (POLICIES / TWINS[rego_id] / "tests.yaml").read_bytes()
    assert ours == theirs


@pytest.mark.parametrize("engine", REGO_ENGINES)
@pytest.mark.parametrize("rego_id", sorted(TWINS))
def test_rego_twin_passes_the_policy_tests(
    rego_id: str, engine: str, repo: PolicyRepository
) -> None:
    failed = [(r.name, r.failures) for r in run_suite(rego_policy(rego_id, engine)) if not r.passed]
    assert failed == []


@pytest.mark.parametrize("engine", REGO_ENGINES)
@pytest.mark.parametrize("rego_id", sorted(TWINS))
def test_yaml_and_rego_twins_choose_the_same_action(
    rego_id: str, engine: str, repo: PolicyRepository
) -> None:
    rego, yaml_twin = rego_policy(rego_id, engine), repo.get(TWINS[rego_id])
    kind = "payout_authorization" if "payout" in rego_id else "password_reset"
    mismatches = []
    for raw in gen.bulk(N, seed=7, kind=kind):
        request = DecisionRequest.model_validate(raw)
        a, b = decide(request, yaml_twin), decide(request, rego)
        assert b.error is None, b.error
        if a.action != b.action or a.thresholds != b.thresholds:
            mismatches.append((raw, a.action, b.action, a.thresholds, b.thresholds))
    assert not mismatches, f"{len(mismatches)} of {N} differ; first: {mismatches[0]}"


@pytest.mark.parametrize("folder", twin_tables.TWIN_FOLDERS)
def test_derived_tables_match_the_authored_data(folder: str) -> None:
    """data.json's `derived` section is exactly what the authored sections generate."""
    data = json.loads(twin_tables.data_path(folder).read_text(encoding="utf-8"))
    assert data.get("derived") == twin_tables.derive(twin_tables.authored(data)), (
        f"{folder}/data.json: derived tables are stale; run "
        "python -m tests.engine.rego.twin_tables --write"
    )


@pytest.mark.parametrize("engine", REGO_ENGINES)
@pytest.mark.parametrize("rego_id", sorted(TWINS))
def test_twins_give_the_same_reasons_with_the_action_each_rule_asks_for(
    rego_id: str, engine: str, repo: PolicyRepository
) -> None:
    """Rule reasons carry their action in both engines, so both summaries lead alike."""
    rego, yaml_twin = rego_policy(rego_id, engine), repo.get(TWINS[rego_id])
    kind = "payout_authorization" if "payout" in rego_id else "password_reset"
    rules_seen = 0
    for raw in gen.bulk(2_000, seed=11, kind=kind):
        request = DecisionRequest.model_validate(raw)
        a, b = decide(request, yaml_twin), decide(request, rego)
        mine = [(r.code, r.kind, r.action) for r in b.reasons if r.kind != "signal"]
        assert mine == [(r.code, r.kind, r.action) for r in a.reasons if r.kind != "signal"]
        rules_seen += sum(1 for r in b.reasons if r.kind == "rule" and r.action is not None)
    assert rules_seen > 0


@pytest.mark.parametrize("engine", REGO_ENGINES)
@pytest.mark.parametrize("rego_id", sorted(TWINS))
def test_twins_write_the_same_summary(rego_id: str, engine: str, repo: PolicyRepository) -> None:
    """Same reasons, same context and the same signal phrases (fusion.yaml): same sentence."""
    rego, yaml_twin = rego_policy(rego_id, engine), repo.get(TWINS[rego_id])
    assert rego.signal_phrases == yaml_twin.signal_phrases
    kind = "payout_authorization" if "payout" in rego_id else "password_reset"
    differ = []
    for raw in gen.bulk(2_000, seed=13, kind=kind):
        request = DecisionRequest.model_validate(raw)
        a, b = decide(request, yaml_twin), decide(request, rego)
        if a.summary != b.summary:
            differ.append((a.summary, b.summary))
    assert not differ, f"{len(differ)} differ; first: {differ[0]}"
