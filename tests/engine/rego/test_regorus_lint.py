"""``liveguard policy lint`` says which embedded engine and regorus path each Rego policy
took at load, and why a policy is kept off the VM (file:line)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from engine.cli.main import app
from tests.engine.rego.conftest import POLICIES, write_policy

HEADER = "package liveguard.probe\n\nimport rego.v1\n\n"


def _lint(root: Path, *ids: str) -> str:
    result = CliRunner().invoke(app, ["policy", "lint", *ids, "--policies", str(root)])
    return result.output


def test_lint_says_the_twins_take_the_regorus_vm() -> None:
    out = _lint(POLICIES, "support-password-reset-rego", "payout-authorization-rego")
    assert "support-password-reset-rego: regorus VM" in out
    assert "payout-authorization-rego: regorus VM" in out


def test_lint_names_each_construct_that_keeps_a_policy_off_the_vm(tmp_path: Path) -> None:
    src = HEADER + (
        "d := 10 / input.identity.failed_attempts\n\n"
        'decision := {"action": "log", "reasons": [{"code": "x", "message": sprintf("%v", [d])}]}\n'
    )
    folder = write_policy(tmp_path, "probe", src)
    out = _lint(tmp_path, "probe")
    assert "probe: regorus Engine, not the VM" in out
    assert f"{folder}/policy.rego:5: division by a non-literal (can fail on zero)" in out


def test_lint_reports_a_policy_pinned_to_regopy(tmp_path: Path) -> None:
    folder = write_policy(
        tmp_path, "probe", HEADER + 'decision := {"action": "log", "reasons": []}\n'
    )
    manifest = folder / "manifest.yaml"
    manifest.write_text(manifest.read_text() + "rego_engine: regopy\n")
    assert "probe: regopy (rego-cpp)" in _lint(tmp_path, "probe")
