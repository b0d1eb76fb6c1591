"""YAML policies exported as data plus the generic Rego evaluator decide like the engine.

The reference is ``engine.core.decide`` with the policy's own YAML evaluator. The export runs
inside the very same ``decide`` (same PolicyView, fusion and ``request_input``), with only
the evaluator swapped: OPA's own Go evaluator on ≥ 2,000 generated requests per bundled
policy, regopy (rego-cpp) on a smaller sample. Every disagreement is listed with its input.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.backends.bundle import read_bundle, verify_bundle, write_bundle
from engine.backends.export import (
    MAX_DEPTH,
    MAX_RULES,
    ExportedYamlEvaluator,
    OpaExportedEvaluator,
    export_yaml_policy,
)
from engine.backends.rego.input import request_input
from engine.core.decide import decide
from engine.core.errors import BundleInvalid
from engine.core.fusion import fuse
from engine.core.models import Decision, DecisionRequest, ReasonKind
from engine.core.policy import Policy
from engine.policy.loader import load_policy_folder
from engine.policy.repository import PolicyRepository
from simulations.generate import random_requests
from tests.engine.rego.conftest import POLICIES

YAML_POLICIES = [
    "conference-default",
    "executive-meeting",
    "support-password-reset",
    "payout-authorization",
]
OPA_REQUESTS = 2000
REGOPY_REQUESTS = 300
TOLERANCE = 1e-4


def _with(policy: Policy, evaluator: Any) -> Policy:
    """The same loaded policy (view, fusion, obligations) with another evaluator."""
    return dataclasses.replace(policy, evaluator=evaluator)


def _codes(d: Decision) -> list[str]:
    return [r.code for r in d.reasons]


def _differences(ref: Decision, got: Decision) -> list[str]:
    out = []
    if got.error is not None:
        return [f"evaluation failed: {got.error}"]
    if got.action != ref.action:
        out.append(f"action {got.action.value} != {ref.action.value}")
    if set(got.thresholds) != set(ref.thresholds) or any(
        abs(got.thresholds[a] - ref.thresholds[a]) > TOLERANCE for a in ref.thresholds
    ):
        out.append(f"thresholds {got.thresholds} != {ref.thresholds}")
    # Adjustment and rule ids, in order, and every other reason (signals, degraded, privacy).
    if _codes(got) != _codes(ref):
        out.append(f"reasons {_codes(got)} != {_codes(ref)}")
    for a, b in zip(got.reasons, ref.reasons, strict=False):
        if (a.message, a.kind) != (b.message, b.kind) or (
            (a.value is None) != (b.value is None)
            # Values are shown to 3 decimals; the export rounds the 6-decimal input value, the
            # engine the exact one, so a value on a half (0.0765) may differ by one last digit.
            or (a.value is not None and abs(a.value - b.value) > 1.1e-3)  # type: ignore[operator]
        ):
            out.append(f"reason {a.code}: {a.message!r} {a.value} != {b.message!r} {b.value}")
    if got.obligations != ref.obligations:
        out.append(f"obligations {got.obligations} != {ref.obligations}")
    if got.summary != ref.summary:
        out.append(f"summary {got.summary!r} != {ref.summary!r}")
    if got.degraded != ref.degraded:
        out.append("degraded flag")
    return out


def _compare(
    policy: Policy, other: Policy, requests: list[DecisionRequest]
) -> tuple[int, list[str]]:
    agree, report = 0, []
    for req in requests:
        ref, got = decide(req, policy), decide(req, other)
        diffs = _differences(ref, got)
        if not diffs:
            agree += 1
        elif len(report) < 5:
            view = policy.view(req)
            fused = fuse(view.signals, policy.fusion)
            doc = request_input(view, fused, fused.evidence_mass < policy.fusion.min_evidence)
            report.append(f"{'; '.join(diffs)}\n  input: {json.dumps(doc)}")
    return agree, report


def _ids(policy: Policy) -> set[str]:
    spec = policy.spec
    assert spec is not None
    return {f"adjustment.{a.id}" for a in spec.adjustments} | {f"rule.{r.id}" for r in spec.rules}


# --- the bundled YAML policies -----------------------------------------------------------


def test_every_bundled_yaml_policy_is_checked(repo: PolicyRepository) -> None:
    yaml_ids = sorted(pid for pid, m in repo.manifests().items() if m.engine == "yaml")
    assert yaml_ids == sorted(YAML_POLICIES)


@pytest.mark.parametrize("policy_id", YAML_POLICIES)
def test_opa_decides_the_export_like_the_engine(
    policy_id: str, repo: PolicyRepository, opa_engine_cls: Any
) -> None:
    policy = repo.get(policy_id)
    opa = OpaExportedEvaluator(policy)
    requests = random_requests(OPA_REQUESTS, seed=f"yaml-export:{policy_id}")
    agree, report = _compare(policy, _with(policy, opa), requests)
    assert agree == len(requests), (
        f"{policy_id}: OPA agrees on {agree}/{len(requests)}\n" + "\n".join(report)
    )
    # Not vacuous: every adjustment's and rule's condition held on some request.
    assert set(opa.coverage) == _ids(policy), sorted(_ids(policy) - set(opa.coverage))


@pytest.mark.parametrize("policy_id", YAML_POLICIES)
def test_regopy_decides_the_export_like_the_engine(policy_id: str, repo: PolicyRepository) -> None:
    policy = repo.get(policy_id)
    requests = random_requests(REGOPY_REQUESTS, seed=f"yaml-export-regopy:{policy_id}")
    agree, report = _compare(policy, _with(policy, ExportedYamlEvaluator(policy)), requests)
    assert agree == len(requests), (
        f"{policy_id}: regopy agrees on {agree}/{len(requests)}\n" + "\n".join(report)
    )


def test_export_package_and_data_follow_the_twin_convention(repo: PolicyRepository) -> None:
    module, data = export_yaml_policy(repo.get("support-password-reset"))
    assert module.startswith("#") and "\npackage liveguard.support_password_reset\n" in module
    assert "cfg := data.liveguard_data.support_password_reset\n" in module
    assert [a["id"] for a in data["adjustments"]] == [
        "weak_identity",
        "untrusted_device",
        "repeated_failures",
        "strong_recent_auth",
    ]
    # Ordinal ranges become label sets at export: {lte: low} → in [none, low].
    leaves = data["conditions"]["leaves"]["in"]
    assert [leaf["values"] for leaf in leaves if leaf["key"] == "identity.assurance"] == [
        ["none", "low"],  # weak_identity: {lte: low}
        ["substantial", "high"],  # strong_recent_auth: {gte: substantial}
    ]
    json.dumps(data)  # plain JSON, as data.json in a bundle


# --- bundles ---------------------------------------------------------------------------------


def test_bundle_of_a_yaml_policy_loads_into_opa_and_decides(
    repo: PolicyRepository, tmp_path: Path, opa_engine_cls: Any
) -> None:
    policy = repo.get("payout-authorization")
    path = tmp_path / "b.tar.gz"
    write_bundle(path, [policy, repo.get("support-password-reset-rego")])
    assert verify_bundle(path) == []
    opa = opa_engine_cls()
    files = read_bundle(path)
    assert "liveguard/payout_authorization/yaml_policy.rego" in files
    for name, content in files.items():
        if name.endswith(".rego"):
            opa.add_policy(name, content.decode())
        elif name.endswith("data.json"):
            opa.add_data(json.loads(content), ".".join(name.split("/")[:-1]))
    decided: Counter[str] = Counter()
    for req in random_requests(50, seed="yaml-export-bundle"):
        view = policy.view(req)
        fused = fuse(view.signals, policy.fusion)
        doc = request_input(view, fused, fused.evidence_mass < policy.fusion.min_evidence)
        theirs = opa.eval_document("liveguard.payout_authorization.decision", doc)
        assert theirs["action"] == decide(req, policy).action.value, json.dumps(doc)
        decided[theirs["action"]] += 1
    assert len(decided) >= 3  # several different actions, not one constant


# --- a synthetic policy: every operator, mode, clamp and both limits ---------------------------


def _deep(depth: int) -> dict[str, Any]:
    """A condition nesting ``depth`` combinator levels (not/any/all alternating)."""
    cond: dict[str, Any] = {"identity.failed_attempts": {"gte": 2}}
    for level in range(depth):
        kind = ("not", "any", "all")[level % 3]
        if kind == "not":
            cond = {"not": cond}
        else:
            cond = {kind: [cond, {"device.new_device": level % 2 == 0}]}
    return cond


_CONDITIONS: list[dict[str, Any]] = [
    {"identity.assurance": {"gt": "low"}},
    {"identity.assurance": {"lt": "high", "ne": "none"}},
    {"identity.assurance": {"not_in": ["substantial"]}},
    {"device.posture": {"gte": "unknown"}},
    {"device.posture": {"lte": "known"}, "device.new_device": {"ne": True}},
    {"identity.failed_attempts": {"gte": 1, "lte": 3}},
    {"identity.failed_attempts": {"gt": 2}},
    {"identity.failed_attempts": {"lt": 1}},
    {"identity.seconds_since_auth": {"lte": 300}},  # undeclared: always absent
    {"not": {"identity.seconds_since_auth": {"gt": 0}}},  # ... so its negation holds
    {"transaction.value": {"gt": 10000}, "transaction.kind": {"not_in": ["payout"]}},
    {"transaction.value": {"in": [0, 500]}},
    {"session.kind": ["webinar", "payout_authorization"]},
    {"session.participant": {"ne": "internal"}},
    {"session.consent.media_analysis": False},
    {"signals.audio.synthetic_voice.present": True},
    {"signals.audio.replay.present": False},
    {"signals.av.lipsync.confidence": {"gte": 0.5}},
    {"signals.session.anomaly.score": {"lt": 0.3}},
    {"signals.audio.voice_consistency.score": {"gte": 0.6}},
    {"fused.risk": {"gte": 0.3}},
    {"fused.evidence_mass": {"lt": 0.2}},
    {"fused.signal_count": {"gte": 2}},
    {"any": [{"device.geo_mismatch": True}, {"not": {"device.posture": "managed"}}]},
    _deep(MAX_DEPTH),
    _deep(3),
]
_ACTIONS = ["log", "warn", "step_up", "review", "block"]
_MODES = ["at_least", "at_most", "exactly"]


def _synthetic_spec(rules: int = MAX_RULES, depth: int = MAX_DEPTH) -> dict[str, Any]:
    base = yaml.safe_load((POLICIES / "payout-authorization" / "policy.yaml").read_text())
    base["adjustments"] = [
        {"id": "clamp_low", "when": _CONDITIONS[3], "shift": -0.9, "phrase": "a clamp"},
        {"id": "clamp_high", "when": _CONDITIONS[13], "shift": {"block": 0.9}, "phrase": "cap"},
        {"id": "deep", "when": _deep(depth), "shift": {"review": -0.2}, "phrase": "depth"},
        *(
            {"id": f"adj_{i}", "when": c, "shift": round(0.03 * (i % 5) - 0.06, 2), "phrase": "x"}
            for i, c in enumerate(_CONDITIONS)
        ),
    ]
    base["rules"] = [
        {
            "id": f"rule_{i}",
            "when": _CONDITIONS[(i * 7) % len(_CONDITIONS)],
            "action": _ACTIONS[(i * 3) % 5],
            "mode": _MODES[i % 3],
            "reason": f"Synthetic rule {i}.",
            "applies_when_degraded": i % 4 == 0,
        }
        for i in range(rules)
    ]
    return base


def _synthetic_policy(tmp_path: Path, spec: dict[str, Any]) -> Policy:
    folder = tmp_path / "payout-authorization"
    if not folder.exists():
        shutil.copytree(POLICIES / "payout-authorization", folder)
    (folder / "policy.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return load_policy_folder(folder)


def test_synthetic_policy_at_the_limits_decides_alike(tmp_path: Path, opa_engine_cls: Any) -> None:
    """32 rules of every mode (some capped on degraded evidence), conditions of depth 4,
    every comparison on every kind of field, and thresholds clamped at 0.01 and 0.99."""
    spec = _synthetic_spec()
    policy = _synthetic_policy(tmp_path, spec)
    requests = random_requests(400, seed="yaml-export-synthetic")
    opa = OpaExportedEvaluator(policy)
    agree, report = _compare(policy, _with(policy, opa), requests)
    assert agree == len(requests), f"OPA agrees on {agree}/{len(requests)}\n" + "\n".join(report)
    # Every condition held somewhere, except the one on a field the data flow does not declare.
    never = {"adjustment.adj_8", "rule.rule_16"}
    assert _CONDITIONS[8] == spec["adjustments"][3 + 8]["when"] == spec["rules"][16]["when"]
    assert _ids(policy) - set(opa.coverage) == never
    agree, report = _compare(policy, _with(policy, ExportedYamlEvaluator(policy)), requests[:100])
    assert agree == 100, f"regopy agrees on {agree}/100\n" + "\n".join(report)
    clamped = [decide(r, policy).thresholds for r in requests]
    assert any(t["warn"] == 0.01 for t in clamped) and any(t["block"] == 0.99 for t in clamped)


def test_export_refuses_too_many_rules(tmp_path: Path) -> None:
    policy = _synthetic_policy(tmp_path, _synthetic_spec(rules=MAX_RULES + 1))
    with pytest.raises(BundleInvalid, match=r"payout-authorization: 33 rules.*at most 32"):
        export_yaml_policy(policy)
    with pytest.raises(BundleInvalid, match="at most 32"):
        write_bundle(tmp_path / "b.tar.gz", [policy])


def test_export_refuses_conditions_nested_too_deep(tmp_path: Path) -> None:
    policy = _synthetic_policy(tmp_path, _synthetic_spec(depth=MAX_DEPTH + 1))
    with pytest.raises(
        BundleInvalid, match=r"payout-authorization: adjustments\[2\] \(deep\).* at most 4"
    ):
        export_yaml_policy(policy)


def test_reason_kinds_of_the_export_match(repo: PolicyRepository, opa_engine_cls: Any) -> None:
    """A degraded, rule-forced decision explains itself with the same kinds of reasons."""
    policy = repo.get("support-password-reset")
    req = DecisionRequest.model_validate(
        {
            "session": {
                "id": "x",
                "channel": "support_call",
                "kind": "password_reset",
                "participant": "external",
                "consent": {"media_analysis": True, "raw_media_escalation": True},
            },
            "identity": {"assurance": "low", "failed_attempts": 6},
            "signals": [],
        }
    )
    got = decide(req, _with(policy, OpaExportedEvaluator(policy)))
    assert got.action.value == "block" and got.degraded
    assert [r.kind for r in got.reasons] == [
        ReasonKind.adjustment,
        ReasonKind.adjustment,
        ReasonKind.rule,
        ReasonKind.degraded,
    ]
    assert _differences(decide(req, policy), got) == []
