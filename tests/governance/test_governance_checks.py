"""Each governance rule: one test that triggers it, and the clean baseline that doesn't."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from governance.checks import RetentionLimits, check_policy, check_policy_dir
from governance.dataflow import DataFlowManifest
from governance.pia import PrivacyImpactAssessment
from governance.problems import GovernanceProblem

POLICY_ID = "support-password-reset"
TODAY = date(2026, 11, 1)
FIELDS_READ = [
    "signals.audio.synthetic_voice",
    "identity.assurance",
    "device.posture",
    "device.new_device",
    "session.kind",
    "fused.risk",
]

Edit = Callable[[dict[str, Any]], None] | None


@pytest.fixture
def run(
    make_pia: Callable[..., PrivacyImpactAssessment],
    make_dataflow: Callable[..., DataFlowManifest],
) -> Callable[..., list[GovernanceProblem]]:
    def _run(
        pia: Edit = None,
        df: Edit = None,
        *,
        fields: list[str] = FIELDS_READ,
        version: str | None = "1.0.0",
        today: date = TODAY,
        limits: RetentionLimits = RetentionLimits(),
    ) -> list[GovernanceProblem]:
        return check_policy(
            policy_id=POLICY_ID,
            policy_version=version,
            fields_read=fields,
            pia=make_pia(pia),
            dataflow=make_dataflow(df),
            today=today,
            limits=limits,
        )

    return _run


def codes(problems: list[GovernanceProblem]) -> list[str]:
    return [p.code for p in problems]


def test_clean_policy_has_no_problems(run: Callable[..., list[GovernanceProblem]]) -> None:
    assert run() == []


# --- fields ------------------------------------------------------------------------------


def test_undeclared_fields_are_reported_one_line_each(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    problems = run(fields=[*FIELDS_READ, "transaction.value", "signals.video.face_swap"])
    assert codes(problems) == ["field_undeclared", "field_undeclared"]
    assert "'signals.video.face_swap'" in problems[0].message
    assert "'transaction.value'" in problems[1].message


def test_undeclared_field_line_names_the_dataflow_file(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    [problem] = run(fields=["identity.method"])
    assert str(problem).startswith(f"{POLICY_ID}/dataflow.yaml: policy reads 'identity.method'")


def test_string_prefix_does_not_declare_a_sibling(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    assert codes(run(fields=["session.kind_detail"])) == ["field_undeclared"]


# --- Art. 9 ------------------------------------------------------------------------------


def _biometric(d: dict[str, Any]) -> None:
    d["elements"][3]["biometric_identification"] = True


def test_biometric_identification_without_art9_condition_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    [problem] = run(df=_biometric)
    assert problem.code == "art9_missing" and "'identity_context'" in problem.message


def test_biometric_identification_with_art9_condition_is_clean(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def art9(d: dict[str, Any]) -> None:
        d["art9_condition"] = "explicit_consent (GDPR Art. 9(2)(a))"

    assert run(pia=art9, df=_biometric) == []


# --- escalation --------------------------------------------------------------------------


def test_escalation_without_consent_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def no_consent(d: dict[str, Any]) -> None:
        d["elements"][0]["escalation"]["requires_consent"] = False

    assert codes(run(df=no_consent)) == ["escalation_without_consent"]


def test_escalation_consent_defaults_to_not_required(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def omitted(d: dict[str, Any]) -> None:
        del d["elements"][0]["escalation"]["requires_consent"]

    assert codes(run(df=omitted)) == ["escalation_without_consent"]


def test_escalation_without_reviewer_access_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def no_reviewer(d: dict[str, Any]) -> None:
        d["elements"][0]["escalation"]["reviewer_access"] = []

    assert codes(run(df=no_reviewer)) == ["escalation_without_reviewer"]


def test_escalation_without_retention_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def no_retention(d: dict[str, Any]) -> None:
        del d["elements"][0]["escalation"]["retention_days"]

    [problem] = run(df=no_retention)
    assert problem.code == "escalation_without_retention"
    assert "escalation.retention_days" in problem.message


def test_disallowed_escalation_needs_neither_consent_nor_reviewer(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def off(d: dict[str, Any]) -> None:
        d["elements"][0]["escalation"] = {"allowed": False}

    assert run(df=off) == []


def test_reviewer_role_missing_from_pia_access_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def other_role(d: dict[str, Any]) -> None:
        d["elements"][0]["escalation"]["reviewer_access"] = ["vendor-support"]

    [problem] = run(df=other_role)
    assert problem.code == "reviewer_access_undeclared" and "'vendor-support'" in problem.message


# --- retention ---------------------------------------------------------------------------


def test_missing_retention_is_reported(run: Callable[..., list[GovernanceProblem]]) -> None:
    def drop(d: dict[str, Any]) -> None:
        del d["elements"][2]["retention_days"]

    [problem] = run(df=drop)
    assert problem.code == "retention_missing" and "'call_context'" in problem.message


def test_retention_over_the_category_maximum_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def long(d: dict[str, Any]) -> None:
        d["elements"][1]["retention_days"] = 401

    def pia_long(d: dict[str, Any]) -> None:
        d["retention"]["decision_log_days"] = 500

    [problem] = run(pia=pia_long, df=long)
    assert problem.code == "retention_excessive"
    assert "401 exceeds the 400-day maximum for scores" in problem.message


def test_raw_media_retention_limit_defaults_to_30_days(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def keep_audio(d: dict[str, Any]) -> None:
        d["elements"][0]["retention_days"] = 31

    def pia_keep(d: dict[str, Any]) -> None:
        d["retention"]["raw_media_days"] = 31

    assert codes(run(pia=pia_keep, df=keep_audio)) == ["retention_excessive"]


def test_retention_limits_are_configurable(run: Callable[..., list[GovernanceProblem]]) -> None:
    assert codes(run(limits=RetentionLimits(identity=90))) == ["retention_excessive"]


def test_raw_retention_beyond_pia_assessment_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def keep_audio(d: dict[str, Any]) -> None:
        d["elements"][0]["retention_days"] = 7

    [problem] = run(df=keep_audio)
    assert problem.code == "retention_inconsistent" and "raw_media_days 0" in problem.message


def test_decision_log_retention_beyond_pia_assessment_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def shorter(d: dict[str, Any]) -> None:
        d["retention"]["decision_log_days"] = 60

    assert codes(run(pia=shorter)) == ["retention_inconsistent", "retention_inconsistent"]


# --- PIA dates, versions, ids ------------------------------------------------------------


def test_pia_past_its_review_date_is_reported(run: Callable[..., list[GovernanceProblem]]) -> None:
    [problem] = run(today=date(2027, 4, 2))
    assert problem.code == "pia_overdue" and "2027-04-01" in problem.message


def test_pia_on_its_review_date_is_not_overdue(run: Callable[..., list[GovernanceProblem]]) -> None:
    assert run(today=date(2027, 4, 1)) == []


def test_pia_for_another_policy_version_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    [problem] = run(version="1.1.0")
    assert problem.code == "pia_version_mismatch"
    assert str(problem) == (
        f"{POLICY_ID}/pia.yaml: PIA was written for policy version 1.0.0, "
        "but the policy is version 1.1.0"
    )


def test_documents_for_another_policy_are_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def other(d: dict[str, Any]) -> None:
        d["policy"] = "payout-authorization"

    problems = run(pia=other, df=other)
    assert codes(problems) == ["policy_mismatch", "policy_mismatch"]
    assert {Path(p.file).name for p in problems} == {"pia.yaml", "dataflow.yaml"}


def test_high_residual_risk_without_prior_consultation_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def high(d: dict[str, Any]) -> None:
        d["residual_risk"] = "high"

    assert codes(run(pia=high)) == ["prior_consultation_missing"]


def test_high_residual_risk_with_prior_consultation_is_clean(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def consulted(d: dict[str, Any]) -> None:
        d["residual_risk"] = "high"
        d["prior_consultation"] = "ICO consulted 2026-09-15, ref 123"

    assert run(pia=consulted) == []


# --- deployment patterns -----------------------------------------------------------------


def _pattern(pattern: str, *more: Edit) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        d["pattern"] = pattern
        for m in more:
            if m is not None:
                m(d)

    return edit


def _no_escalation(d: dict[str, Any]) -> None:
    d["elements"][0]["escalation"] = {"allowed": False}


def _raw_in_cloud(d: dict[str, Any]) -> None:
    d["elements"][0]["processed_at"] = "cloud"


def _features_in_cloud(d: dict[str, Any]) -> None:
    d["elements"].append(
        {
            "name": "mouth_openness",
            "category": "features",
            "processed_at": "cloud",
            "retention_days": 0,
            "recipients": ["detector:lipsync"],
        }
    )


def test_edge_only_rejects_raw_media_escalation(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    [problem] = run(df=_pattern("edge_only"))
    assert problem.code == "pattern_violation" and "escalation" in problem.message


def test_edge_only_rejects_raw_media_in_the_cloud(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    [problem] = run(df=_pattern("edge_only", _no_escalation, _raw_in_cloud))
    assert (
        problem.code == "pattern_violation"
        and "raw_audio processed in the cloud" in problem.message
    )


def test_edge_only_rejects_features_in_the_cloud(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    assert codes(run(df=_pattern("edge_only", _no_escalation, _features_in_cloud))) == [
        "pattern_violation"
    ]


def test_edge_only_allows_scores_and_context_in_the_cloud(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    assert run(df=_pattern("edge_only", _no_escalation)) == []


def test_feature_only_cloud_allows_features_in_the_cloud(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    assert run(df=_pattern("feature_only_cloud", _no_escalation, _features_in_cloud)) == []


def test_feature_only_cloud_rejects_raw_media_escalation(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    assert codes(run(df=_pattern("feature_only_cloud"))) == ["pattern_violation"]


def test_feature_only_cloud_rejects_raw_media_in_the_cloud(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    assert codes(run(df=_pattern("feature_only_cloud", _no_escalation, _raw_in_cloud))) == [
        "pattern_violation"
    ]


def test_hybrid_rejects_raw_media_processed_in_the_cloud(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    assert codes(run(df=_raw_in_cloud)) == ["pattern_violation"]


def test_cloud_only_accepts_any_placement(run: Callable[..., list[GovernanceProblem]]) -> None:
    assert run(df=_pattern("cloud_only", _raw_in_cloud, _features_in_cloud)) == []


# --- media sources -----------------------------------------------------------------------


def test_media_signal_without_its_source_media_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def no_audio(d: dict[str, Any]) -> None:
        del d["elements"][0]

    [problem] = run(df=no_audio)
    assert problem.code == "media_source_undeclared" and problem.message.startswith("audio")


def test_features_count_as_the_source_of_media_signals(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def features_only(d: dict[str, Any]) -> None:
        del d["elements"][0]
        _features_in_cloud(d)
        d["pattern"] = "feature_only_cloud"

    assert run(df=features_only) == []


# --- human review ------------------------------------------------------------------------


def test_human_review_without_reviewer_access_is_reported(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def blind(d: dict[str, Any]) -> None:
        d["elements"][0]["escalation"] = {"allowed": False}
        d["elements"][1]["recipients"] = ["decision_log"]

    assert codes(run(df=blind)) == ["review_without_access"]


def test_human_review_accepts_any_review_role_as_recipient(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def team(d: dict[str, Any]) -> None:
        d["elements"][0]["escalation"] = {"allowed": False}
        d["elements"][1]["recipients"] = ["decision_log", "fraud-review"]

    assert run(df=team) == []


def test_no_human_review_needs_no_reviewer_access(
    run: Callable[..., list[GovernanceProblem]],
) -> None:
    def automated(d: dict[str, Any]) -> None:
        d["human_review"] = False
        d["elements"][0]["escalation"] = {"allowed": False}
        d["elements"][1]["recipients"] = ["decision_log"]

    assert run(df=automated) == []


# --- all at once, and from a folder ------------------------------------------------------


def test_every_problem_is_reported_in_one_run(run: Callable[..., list[GovernanceProblem]]) -> None:
    def bad_flow(d: dict[str, Any]) -> None:
        d["elements"][0]["escalation"]["requires_consent"] = False
        del d["elements"][2]["retention_days"]
        _biometric(d)

    problems = run(df=bad_flow, fields=["identity.method"], version="2.0.0", today=date(2028, 1, 1))
    assert sorted(codes(problems)) == sorted(
        [
            "field_undeclared",
            "escalation_without_consent",
            "retention_missing",
            "pia_overdue",
            "pia_version_mismatch",
            "art9_missing",
        ]
    )


def test_missing_documents_never_pass(make_dataflow: Callable[..., DataFlowManifest]) -> None:
    problems = check_policy(
        policy_id=POLICY_ID,
        policy_version="1.0.0",
        fields_read=[],
        pia=None,
        dataflow=None,
        today=TODAY,
    )
    assert codes(problems) == ["manifest_missing", "manifest_missing"]


def test_check_policy_dir_reports_load_problems_once(policy_dir: Callable[..., Path]) -> None:
    folder = policy_dir(pia=None)
    problems = check_policy_dir(
        folder, policy_version="1.0.0", fields_read=FIELDS_READ, today=TODAY
    )
    assert codes(problems) == ["manifest_missing"]
    assert problems[0].file == str(folder / "pia.yaml")


def test_check_policy_dir_on_clean_folder_is_clean(policy_dir: Callable[..., Path]) -> None:
    problems = check_policy_dir(
        policy_dir(), policy_version="1.0.0", fields_read=FIELDS_READ, today=TODAY
    )
    assert problems == []


def test_problem_renders_as_file_and_message() -> None:
    p = GovernanceProblem("x", "policies/x/pia.yaml", "pia_overdue", "review date passed")
    assert str(p) == "policies/x/pia.yaml: review date passed"
