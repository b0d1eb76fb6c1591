"""Every bundled policy passes its own tests.yaml and has the paperwork CI requires."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.models import Action
from engine.policy.git import version_bump_problems
from engine.policy.repository import PolicyRepository
from engine.policy.testsuite import load_suite, run_suite

POLICIES = Path(__file__).resolve().parents[2] / "policies"
IDS = PolicyRepository(POLICIES).ids()
CORE = ["conference-default", "executive-meeting", "support-password-reset", "payout-authorization"]


def test_the_four_core_policies_are_bundled():
    assert set(CORE) <= set(IDS)


@pytest.mark.parametrize("policy_id", IDS)
def test_policy_passes_its_tests(policy_id):
    policy = PolicyRepository(POLICIES).get(policy_id)
    failures = [f"{r.name}: {f}" for r in run_suite(policy) for f in r.failures]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("policy_id", CORE)
def test_policy_has_at_least_ten_cases_including_degraded_ones(policy_id):
    suite = load_suite(POLICIES / policy_id)
    assert len(suite.cases) >= 10
    assert any(c.expect.degraded for c in suite.cases)


@pytest.mark.parametrize("policy_id", CORE)
def test_policy_ships_pia_and_dataflow(policy_id):
    assert (POLICIES / policy_id / "pia.yaml").is_file()
    assert (POLICIES / policy_id / "dataflow.yaml").is_file()


def test_policies_differ_in_their_logic():
    repo = PolicyRepository(POLICIES)
    specs = {pid: repo.get(pid).spec.model_dump_json() for pid in CORE}
    assert len(set(specs.values())) == len(CORE)


@pytest.mark.parametrize("policy_id", CORE)
def test_policy_declares_a_cost_table_for_the_board(policy_id):
    # The board packet weighs a version by expected cost; a bundled policy without a cost
    # table would show the board "no cost table declared" for every simulation.
    costs = PolicyRepository(POLICIES).get(policy_id).spec.costs
    assert costs is not None
    assert costs.attack[Action.log] > costs.attack[Action.block]
    assert costs.legitimate[Action.block] > costs.legitimate[Action.log]


@pytest.mark.parametrize("policy_id", IDS)
def test_escalated_media_has_a_declared_window_and_retention(policy_id):
    # The live runtime stores an escalated excerpt only for a declared length and time;
    # a bundled policy that allows escalation without both would escalate nothing.
    flow = PolicyRepository(POLICIES).get(policy_id).dataflow
    for e in flow.elements:
        if e.escalation is not None and e.escalation.allowed:
            assert e.escalation.max_seconds and e.escalation.retention_days, e.name


@pytest.mark.parametrize("policy_id", IDS)
def test_policy_content_matches_the_version_it_was_first_committed_with(policy_id):
    # What `policy lint` checks: a bundled policy changed without a version bump would
    # carry two digests under one version in the decision log and the sign-off records.
    assert version_bump_problems(POLICIES, policy_id) == []
