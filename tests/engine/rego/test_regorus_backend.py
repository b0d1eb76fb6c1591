"""The regorus backend: engine selection, the VM's instruction limit, per-thread objects."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from engine.backends.rego.embedded import RegoEvaluator
from engine.backends.rego.regorus_eval import RegorusEvaluator
from engine.core.errors import PolicyInvalid
from engine.policy.loader import load_policy_folder
from tests.engine.rego.conftest import POLICIES, write_policy
from tests.engine.service.test_eval_budget import SLOW_RULE

PROBE = (
    'package liveguard.probe\n\nimport rego.v1\n\ndecision := {"action": "log", "reasons": []}\n'
)


def test_manifest_rego_engine_overrides_the_default(tmp_path: Path) -> None:
    folder = write_policy(tmp_path, "probe", PROBE)
    manifest = folder / "manifest.yaml"
    manifest.write_text(manifest.read_text() + "rego_engine: regopy\n")
    assert isinstance(load_policy_folder(folder, rego_engine="regorus").evaluator, RegoEvaluator)


def test_default_engine_is_regorus(tmp_path: Path) -> None:
    policy = load_policy_folder(write_policy(tmp_path, "probe", PROBE))
    assert isinstance(policy.evaluator, RegorusEvaluator)


def test_rego_engine_in_a_yaml_manifest_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "support-password-reset"
    shutil.copytree(POLICIES / "support-password-reset", folder)
    manifest = folder / "manifest.yaml"
    manifest.write_text(manifest.read_text() + "rego_engine: regorus\n")
    with pytest.raises(PolicyInvalid) as err:
        load_policy_folder(folder)
    assert any("rego_engine: only for engine: rego" in p for p in err.value.problems)


def test_vm_evaluation_past_the_instruction_limit_is_finished_by_the_engine(
    tmp_path: Path, opa_engine_cls: Any
) -> None:
    policy = load_policy_folder(
        write_policy(tmp_path, "slow-rego", SLOW_RULE), rego_engine="regorus"
    )
    assert policy.evaluator.path == "vm"
    doc = {"identity": {"failed_attempts": 5}}  # 150² pairs: past 25,000 VM instructions
    opa = opa_engine_cls()
    opa.add_policy("policy.rego", SLOW_RULE)
    assert policy.evaluator.evaluate_document(doc) == opa.eval_document(
        "liveguard.slow_rego.decision", doc
    )


@pytest.mark.parametrize("rego_id", ["support-password-reset-rego", "payout-authorization-rego"])
def test_threads_other_than_the_loader_evaluate_alike(rego_id: str) -> None:
    """regorus objects panic across threads: each evaluating thread must build its own."""
    policy = load_policy_folder(POLICIES / rego_id, rego_engine="regorus")
    docs = [{"fused": {"risk": r / 10, "degraded": False, "signal_count": 1}} for r in range(8)]
    here = [json.dumps(policy.evaluator.evaluate_document(d), sort_keys=True) for d in docs]
    with ThreadPoolExecutor(4) as pool:
        there = list(
            pool.map(
                lambda d: json.dumps(policy.evaluator.evaluate_document(d), sort_keys=True), docs
            )
        )
    assert there == here
