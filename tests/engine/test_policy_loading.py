from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.core.errors import PolicyAmbiguous, PolicyInvalid, PolicyNotFound
from engine.core.models import DecisionRequest
from engine.policy.repository import PolicyRepository, load_policy
from governance.folder import folder_digest
from tests.conftest import request_dict


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_bundled_policy_loads_with_version_and_digest(policies_dir):
    policy = load_policy("support-password-reset", policies_dir)
    assert policy.ref.version == policy.manifest.version == "1.3.0"
    assert policy.ref.digest.startswith("sha256:") and len(policy.ref.digest) == 7 + 64


def test_malformed_policy_reports_every_problem_with_file_and_path(policy_copy):
    folder = policy_copy("support-password-reset")

    def break_policy(d):
        d["thresholds"]["review"] = "high"
        d["fusion"]["prior"] = 2
        d["adjustments"][0]["when"] = {"identity.assurance": {"lte": "medium"}}
        d["rules"][0]["action"] = "explode"

    _edit(folder / "policy.yaml", break_policy)
    _edit(folder / "manifest.yaml", lambda d: d.update(version="one"))
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(folder)
    text = "\n".join(exc.value.problems)
    assert f"{folder / 'manifest.yaml'}: version:" in text
    assert f"{folder / 'policy.yaml'}: thresholds.review:" in text
    assert f"{folder / 'policy.yaml'}: fusion.prior:" in text
    assert f"{folder / 'policy.yaml'}: rules[0].action:" in text or "rules.0.action" in text
    assert len(exc.value.problems) >= 4


def test_bad_condition_is_reported_with_its_location(policy_copy):
    folder = policy_copy("support-password-reset")
    _edit(
        folder / "policy.yaml",
        lambda d: d["adjustments"][0].update(when={"identity.assurance": {"lte": "medium"}}),
    )
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(folder)
    assert any(
        "adjustments[0].when.identity.assurance.lte: expected one of" in p
        for p in exc.value.problems
    )


def test_yaml_syntax_error_names_the_line(policy_copy):
    folder = policy_copy("support-password-reset")
    (folder / "policy.yaml").write_text("fusion:\n  prior: [0.1\n")
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(folder)
    assert any("policy.yaml: line" in p and "invalid YAML" in p for p in exc.value.problems)


def test_fail_mode_must_never_be_log(policy_copy):
    folder = policy_copy("support-password-reset")
    _edit(folder / "manifest.yaml", lambda d: d.update(fail_mode="log"))
    with pytest.raises(PolicyInvalid, match="does not load") as exc:
        load_policy(folder)
    assert any("fail_mode" in p and "never allow silently" in p for p in exc.value.problems)


def test_thresholds_must_be_ordered(policy_copy):
    folder = policy_copy("support-password-reset")
    _edit(folder / "policy.yaml", lambda d: d["thresholds"].update(step_up=0.95))
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(folder)
    assert any("non-decreasing" in p for p in exc.value.problems)


def test_digest_is_stable_and_changes_with_any_file(policy_copy):
    folder = policy_copy("conference-default")
    before = folder_digest(folder)
    assert folder_digest(folder) == before
    (folder / "tests.yaml").write_text((folder / "tests.yaml").read_text() + "\n# note\n")
    assert folder_digest(folder) != before


def test_unknown_policy_lists_the_known_ones(policies_dir):
    with pytest.raises(PolicyNotFound, match=r"known policies: .*support-password-reset"):
        PolicyRepository(policies_dir).get("no-such-policy")


def test_selection_by_applies_to(policies_dir):
    raw = request_dict()
    raw.pop("policy")
    raw["session"]["kind"] = "account_recovery"
    assert (
        PolicyRepository(policies_dir).select(DecisionRequest.model_validate(raw)).id
        == "support-password-reset"
    )


def test_selection_with_no_matching_policy_is_a_clear_error(policies_dir):
    raw = request_dict()
    raw.pop("policy")
    raw["session"]["kind"] = "loan_application"
    with pytest.raises(
        PolicyNotFound,
        match="no policy applies to channel 'support_call' and session kind 'loan_application'",
    ):
        PolicyRepository(policies_dir).select(DecisionRequest.model_validate(raw))


def test_selection_with_several_matching_policies_is_a_clear_error(policy_copy):
    first = policy_copy("support-password-reset")
    second = first.parent / "support-password-reset-v2"
    second.mkdir()
    for f in first.iterdir():
        (second / f.name).write_bytes(f.read_bytes())
    _edit(second / "manifest.yaml", lambda d: d.update(id="support-password-reset-v2"))
    _edit(second / "dataflow.yaml", lambda d: d.update(policy="support-password-reset-v2"))
    raw = request_dict()
    raw.pop("policy")
    with pytest.raises(PolicyAmbiguous, match="support-password-reset, support-password-reset-v2"):
        PolicyRepository(first.parent).select(DecisionRequest.model_validate(raw))


def test_folder_name_must_match_the_manifest_id(policy_copy):
    folder = policy_copy("conference-default")
    _edit(folder / "manifest.yaml", lambda d: d.update(id="conference-other"))
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(folder)
    assert any("expected the folder name 'conference-default'" in p for p in exc.value.problems)
