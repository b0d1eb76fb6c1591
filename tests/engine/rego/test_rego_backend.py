"""The embedded regopy backend: loading, validation of the decision, fail-safe, pruning."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.backends.rego.embedded import RegoEvaluator
from engine.core.decide import decide
from engine.core.errors import PolicyInvalid
from engine.core.models import Action, DecisionRequest
from engine.policy.loader import load_policy_folder
from tests.conftest import request_dict
from tests.engine.rego.conftest import POLICIES, write_policy

HEADER = "package liveguard.{pkg}\n\nimport rego.v1\n\n"


def _policy(tmp_path: Path, body: str, data: str = "{}"):
    folder = write_policy(tmp_path, "probe", HEADER.format(pkg="probe") + body, data)
    return load_policy_folder(folder, rego_engine="regopy")


def _request() -> DecisionRequest:
    return DecisionRequest.model_validate(request_dict())


def test_rego_twin_loads_with_the_regopy_evaluator() -> None:
    policy = load_policy_folder(POLICIES / "support-password-reset-rego", rego_engine="regopy")
    assert policy.ref.engine == "rego"
    assert isinstance(policy.evaluator, RegoEvaluator)


def test_same_digest_reuses_the_compiled_bundle() -> None:
    a = load_policy_folder(POLICIES / "support-password-reset-rego", rego_engine="regopy")
    b = load_policy_folder(POLICIES / "support-password-reset-rego", rego_engine="regopy")
    assert a.evaluator.compiled is b.evaluator.compiled


def test_changed_content_compiles_a_new_bundle(tmp_path: Path) -> None:
    first = _policy(tmp_path, 'decision := {"action": "warn", "reasons": []}')
    (first.path / "policy.rego").write_text(
        HEADER.format(pkg="probe") + 'decision := {"action": "block", "reasons": []}'
    )
    second = load_policy_folder(first.path, rego_engine="regopy")
    assert second.evaluator.compiled is not first.evaluator.compiled
    assert decide(_request(), second).action == Action.block


def test_decision_action_and_reasons_reach_the_decision(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        'decision := {"action": "review", "reasons": [{"code": "rule.x", "message": "X."}]}',
    )
    decision = decide(_request(), policy)
    assert decision.action == Action.review
    assert "rule.x" in {r.code for r in decision.reasons}
    assert decision.error is None


def test_unknown_action_fails_safe_with_policy_eval_error(tmp_path: Path) -> None:
    policy = _policy(tmp_path, 'decision := {"action": "allow", "reasons": []}')
    decision = decide(_request(), policy)
    assert decision.action == Action.review  # the manifest's fail_mode
    assert decision.error and decision.error.startswith("policy_eval_error")


def test_missing_reasons_fails_safe(tmp_path: Path) -> None:
    policy = _policy(tmp_path, 'decision := {"action": "log"}')
    decision = decide(_request(), policy)
    assert decision.action == Action.review
    assert "reasons" in (decision.error or "")


def test_undefined_decision_fails_safe(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path, 'decision := {"action": "log", "reasons": []} if input.session.kind == "nope"'
    )
    decision = decide(_request(), policy)
    assert decision.action == Action.review
    assert "undefined" in (decision.error or "")


def test_builtin_error_at_request_time_fails_safe(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        'decision := {"action": "log", "reasons": [], "thresholds": {"warn": 1 / input.identity.failed_attempts}}',
    )
    decision = decide(_request(), policy)  # failed_attempts is 1: fine
    assert decision.error is None
    zero = DecisionRequest.model_validate(
        request_dict(identity={"assurance": "low", "failed_attempts": 0})
    )
    assert decide(zero, policy).error is not None


def test_known_interpreter_gap_is_reported_at_load_with_line_and_rewrite(tmp_path: Path) -> None:
    body = 'decision := {"action": "log", "reasons": [k | some k, v in data.liveguard_data.probe]}'
    with pytest.raises(PolicyInvalid) as err:
        _policy(tmp_path, body, '{"a": 1}')
    line = next(p for p in err.value.problems if "Invalid collection" in p)
    assert "policy.rego:5:" in line
    assert "some k; v := data.liveguard_data.probe[k]" in line


def test_missing_decision_rule_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyInvalid) as err:
        _policy(tmp_path, 'verdict := {"action": "log", "reasons": []}')
    assert any("liveguard.probe.decision" in p for p in err.value.problems)


def test_policy_sees_only_the_paths_it_reads(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        'decision := {"action": "log", "reasons": []} if input.identity.assurance == "low"',
    )
    view = policy.view(_request())
    from engine.core.fusion import fuse

    fused = fuse(view.signals, policy.fusion)
    sent = policy.evaluator.input_for(view, fused, False)
    assert sent == {"identity": {"assurance": "low"}}


def test_fields_read_come_from_the_compiled_plan(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        'decision := {"action": "log", "reasons": []} if input.device.posture == "known"',
    )
    reads = policy.fields_read()
    assert "device.posture" in reads
    assert "identity.assurance" not in reads


def test_lint_reports_a_range_sized_by_the_request(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engine.cli.main import app
    from tests.engine.service.test_eval_budget import SLOW, SLOW_RULE

    write_policy(tmp_path, SLOW, SLOW_RULE)
    result = CliRunner().invoke(app, ["policy", "lint", SLOW, "--policies", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / SLOW}/policy.rego:7:" in result.output
    assert "numbers.range(1, n) is sized by the request" in result.output


def test_lint_accepts_a_range_the_author_bounded() -> None:
    from engine.backends.rego.lint import input_sized_work

    src = "n := input.identity.failed_attempts * 30\nr := numbers.range(1, min([n, 100]))\n"
    assert input_sized_work({"policy.rego": src}) == []
