"""The bundled policies' privacy paperwork passes ``governance check`` as of today.

Fields read come from the engine's own policy loader so the declared data flow is checked
against what each policy.yaml really reads.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from engine.policy.repository import PolicyRepository
from governance.checks import check_policy_dir

POLICIES = Path(__file__).resolve().parents[2] / "policies"
BUNDLED = sorted(p.name for p in POLICIES.glob("*") if (p / "policy.yaml").is_file())


@pytest.mark.parametrize("policy_id", BUNDLED)
def test_bundled_policy_passes_governance_check(policy_id: str) -> None:
    policy = PolicyRepository(POLICIES).get(policy_id)
    version = yaml.safe_load((POLICIES / policy_id / "manifest.yaml").read_text())["version"]
    problems = check_policy_dir(
        POLICIES / policy_id,
        policy_version=str(version),
        fields_read=policy.fields_read(),
        today=date.today(),
    )
    assert [str(p) for p in problems] == []
