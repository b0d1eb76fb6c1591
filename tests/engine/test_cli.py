from __future__ import annotations

import json
import shutil

import yaml
from typer.testing import CliRunner

from engine import load_policy
from engine.cli.main import app
from tests.conftest import POLICIES, request_dict

runner = CliRunner()


def _write(tmp_path, data) -> str:
    path = tmp_path / "req.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def invoke(*args: str, input: str | None = None):
    return runner.invoke(
        app,
        [*args, "--policies", str(POLICIES)] if args[0] in ("decide",) else list(args),
        input=input,
    )


def test_decide_prints_a_readable_summary(tmp_path):
    result = runner.invoke(
        app, ["decide", "--input", _write(tmp_path, request_dict()), "--policies", str(POLICIES)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("STEP_UP  risk 0.19")
    assert (
        "Step up verification: the caller's voice shows synthetic-speech artifacts (0.87)"
        in result.output
    )


def test_decide_json_prints_the_full_decision(tmp_path):
    result = runner.invoke(
        app,
        ["decide", "-i", _write(tmp_path, request_dict()), "--json", "--policies", str(POLICIES)],
    )
    assert result.exit_code == 0
    decision = json.loads(result.output)
    assert decision["action"] == "step_up" and decision["policy"]["id"] == "support-password-reset"
    assert decision["policy"]["digest"].startswith("sha256:")


def test_decide_reads_stdin_and_selects_by_applies_to():
    raw = request_dict()
    raw.pop("policy")
    raw["session"]["kind"] = "payout_authorization"
    result = runner.invoke(app, ["decide", "--policies", str(POLICIES)], input=json.dumps(raw))
    assert result.exit_code == 0, result.output
    assert "payout-authorization" in result.output


def _payout_request() -> dict:
    raw = request_dict()  # names support-password-reset
    raw["session"]["kind"] = "payout_authorization"
    return raw


def test_policy_option_overrides_the_request(tmp_path):
    result = runner.invoke(
        app,
        [
            "decide",
            "-i",
            _write(tmp_path, _payout_request()),
            "--policy",
            "payout-authorization",
            "--json",
            "--policies",
            str(POLICIES),
        ],
    )
    assert json.loads(result.output)["policy"]["id"] == "payout-authorization"


def test_named_policy_outside_the_session_scope_exits_2(tmp_path):
    result = runner.invoke(
        app,
        ["decide", "-i", _write(tmp_path, request_dict()), "--policy", "conference-default",
         "--policies", str(POLICIES)],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "'conference-default' does not apply to a support_call session" in result.output


def test_any_scope_lets_a_named_policy_decide_and_says_so(tmp_path):
    result = runner.invoke(
        app,
        ["decide", "-i", _write(tmp_path, request_dict()), "--policy", "conference-default",
         "--any-scope", "--json", "--policies", str(POLICIES)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning: scope override (--any-scope)" in result.stderr
    assert json.loads(result.stdout)["policy"]["id"] == "conference-default"


def test_invalid_json_is_one_clear_line_and_exit_2(tmp_path):
    result = runner.invoke(
        app, ["decide", "-i", _write(tmp_path, "{not json"), "--policies", str(POLICIES)]
    )
    assert result.exit_code == 2
    assert "invalid JSON" in result.output and "Traceback" not in result.output


def test_invalid_request_names_the_field_and_exits_2(tmp_path):
    raw = request_dict()
    raw["identity"]["assurance"] = "medium"
    result = runner.invoke(
        app, ["decide", "-i", _write(tmp_path, raw), "--policies", str(POLICIES)]
    )
    assert result.exit_code == 2
    assert "identity.assurance: expected one of" in result.output


def test_missing_input_file_exits_2(tmp_path):
    result = runner.invoke(
        app, ["decide", "-i", str(tmp_path / "nope.json"), "--policies", str(POLICIES)]
    )
    assert result.exit_code == 2 and "file not found" in result.output


def test_unknown_policy_exits_2_naming_the_known_ones(tmp_path):
    result = runner.invoke(
        app,
        [
            "decide",
            "-i",
            _write(tmp_path, request_dict(policy="nope")),
            "--policies",
            str(POLICIES),
        ],
    )
    assert result.exit_code == 2 and "known policies:" in result.output


def test_policy_list_shows_versions(monkeypatch):
    monkeypatch.setenv("LIVEGUARD_POLICIES", str(POLICIES))
    result = runner.invoke(app, ["policy", "list"])
    assert result.exit_code == 0
    version = load_policy("support-password-reset", POLICIES).manifest.version
    assert "support-password-reset" in result.output and version in result.output


def test_policy_test_passes_on_bundled_policies():
    result = runner.invoke(
        app, ["policy", "test", "conference-default", "--policies", str(POLICIES)]
    )
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output


def test_policy_test_fails_with_exit_1_on_a_wrong_expectation(tmp_path):
    repo = tmp_path / "policies"
    shutil.copytree(POLICIES / "conference-default", repo / "conference-default")
    tests = yaml.safe_load((repo / "conference-default" / "tests.yaml").read_text())
    tests["cases"][0]["expect"]["action"] = "block"
    (repo / "conference-default" / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = runner.invoke(app, ["policy", "test", "--policies", str(repo)])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "expected action block, got log" in result.output


def test_policy_lint_reports_every_problem(tmp_path):
    repo = tmp_path / "policies"
    shutil.copytree(POLICIES / "conference-default", repo / "conference-default")
    (repo / "conference-default" / "tests.yaml").unlink()
    manifest = yaml.safe_load((repo / "conference-default" / "manifest.yaml").read_text())
    manifest["fail_mode"] = "log"
    (repo / "conference-default" / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    result = runner.invoke(app, ["policy", "lint", "--policies", str(repo)])
    assert result.exit_code == 1
    assert "fail_mode" in result.output


def test_governance_check_passes_on_bundled_policies():
    result = runner.invoke(
        app, ["governance", "check", "--policies", str(POLICIES), "--today", "2026-11-25"]
    )
    assert result.exit_code == 0, result.output
    assert "0 problems" in result.output


def test_governance_check_fails_one_line_per_problem(tmp_path):
    repo = tmp_path / "policies"
    shutil.copytree(POLICIES / "support-password-reset", repo / "support-password-reset")
    pia = yaml.safe_load((repo / "support-password-reset" / "pia.yaml").read_text())
    pia["policy_version"] = "0.9.0"
    (repo / "support-password-reset" / "pia.yaml").write_text(yaml.safe_dump(pia))
    result = runner.invoke(
        app, ["governance", "check", "--policies", str(repo), "--today", "2030-01-01"]
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(str(repo))]
    assert len(lines) >= 2  # version mismatch and overdue review, each on its own line
    assert all("pia.yaml" in line for line in lines)


def test_governance_check_reports_live_versions_without_sign_off():
    result = runner.invoke(app, ["governance", "check", "--policies", str(POLICIES)])
    assert result.exit_code == 0, result.output
    assert "warning: support-password-reset sha256:" in result.output
    assert "no sign-off record" in result.output
    assert "without a board sign-off (warnings)" in result.output


def test_governance_check_can_require_sign_off():
    result = runner.invoke(
        app, ["governance", "check", "--require-signoff", "--policies", str(POLICIES)]
    )
    assert result.exit_code == 1
    assert "no sign-off record" in result.output
