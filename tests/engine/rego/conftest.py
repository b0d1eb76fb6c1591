"""Fixtures for the Rego backend tests: bundled policies and OPA's own evaluator."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from engine.backends.opa.local import missing_message, opa_engine_class
from engine.core.policy import Policy
from engine.policy.loader import load_policy_folder
from engine.policy.repository import PolicyRepository

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"
TWINS = {
    "support-password-reset-rego": "support-password-reset",
    "payout-authorization-rego": "payout-authorization",
}

#: The embedded Rego engines the oracle and twin suites run on.
REGO_ENGINES = ("regorus", "regopy")


@functools.cache
def rego_policy(policy_id: str, engine: str) -> Policy:
    """A bundled Rego policy loaded on one embedded engine (loaded once per engine)."""
    return load_policy_folder(POLICIES / policy_id, rego_engine=engine)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def repo() -> PolicyRepository:
    return PolicyRepository(POLICIES)


@pytest.fixture(scope="session")
def rego_ids(repo: PolicyRepository) -> list[str]:
    ids = [pid for pid, m in repo.manifests().items() if m.engine == "rego"]
    assert ids, "expected bundled Rego policies"
    return ids


@pytest.fixture(scope="session")
def opa_engine_cls() -> Any:
    """OPA's evaluator; a missing one fails the oracle tests loudly (never a silent skip)."""
    cls = opa_engine_class()
    if cls is None:
        pytest.fail(missing_message(), pytrace=False)
    return cls


def write_policy(root: Path, policy_id: str, rego: str, data: str = "{}") -> Path:
    """A minimal Rego policy folder (copying the twin's dataflow/fusion) under ``root``."""
    folder = root / policy_id
    folder.mkdir(parents=True)
    twin = POLICIES / "support-password-reset-rego"
    (folder / "manifest.yaml").write_text(
        f"id: {policy_id}\nversion: 1.0.0\nowner: test@example.com\n"
        "applies_to: {channels: [support_call], kinds: [test_only]}\n"
        "engine: rego\nfail_mode: review\n",
        encoding="utf-8",
    )
    (folder / "policy.rego").write_text(rego, encoding="utf-8")
    (folder / "data.json").write_text(data, encoding="utf-8")
    (folder / "fusion.yaml").write_text(
        (twin / "fusion.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    flow = (twin / "dataflow.yaml").read_text(encoding="utf-8")
    (folder / "dataflow.yaml").write_text(
        flow.replace("policy: support-password-reset-rego", f"policy: {policy_id}"),
        encoding="utf-8",
    )
    return folder
