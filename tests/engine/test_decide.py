from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from engine import Action, DecisionRequest, decide, load_policy
from engine.core.models import ReasonKind, SecondPassObligation
from engine.core.policy import Outcome
from tests.conftest import request_dict, signal


def _req(**kw) -> DecisionRequest:
    return DecisionRequest.model_validate(request_dict(**kw))


@pytest.fixture(scope="module")
def spr(policies_dir=Path(__file__).resolve().parents[2] / "policies"):
    return load_policy("support-password-reset", policies_dir)


def test_design_example_steps_up_with_an_actionable_summary(spr):
    d = decide(_req(), spr)
    assert d.action is Action.step_up
    assert d.summary == (
        "Step up verification: the caller's voice shows synthetic-speech artifacts (0.87) "
        "on a password reset with low identity assurance and a new or untrusted device."
    )
    assert d.policy.id == "support-password-reset" and d.policy.version == spr.manifest.version
    assert d.policy.digest == spr.digest
    assert {o.kind for o in d.obligations} >= {"step_up"}


def test_reasons_carry_codes_and_the_signals_behind_them(spr):
    d = decide(_req(), spr)
    sig = next(r for r in d.reasons if r.kind is ReasonKind.signal)
    assert sig.code == "audio.vocoder_artifacts"
    assert sig.signals == ("audio.synthetic_voice",)
    assert "Voice shows vocoder artifacts" in sig.message


def test_every_contribution_is_kept_in_the_decision(spr):
    raw = request_dict(signals=[signal("audio.synthetic_voice", 0.9), signal("audio.replay", 0.2)])
    d = decide(DecisionRequest.model_validate(raw), spr)
    assert {c.signal for c in d.fused.contributions} == {"audio.synthetic_voice", "audio.replay"}
    assert d.risk == pytest.approx(d.fused.risk, abs=1e-4)


def test_decide_is_deterministic_given_the_id_and_clock(spr):
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    a = decide(_req(), spr, now=now, decision_id="d1").model_dump(exclude={"latency_us"})
    b = decide(_req(), spr, now=now, decision_id="d1").model_dump(exclude={"latency_us"})
    assert a == b
    assert a["decided_at"] == "2026-11-25T12:00:00+00:00"


def test_summary_is_one_sentence(spr):
    for sig_score in (0.05, 0.6, 0.87, 0.99):
        d = decide(_req(signals=[signal("audio.synthetic_voice", sig_score)]), spr)
        assert d.summary.endswith(".") and d.summary.count(". ") == 0 and "\n" not in d.summary


def test_effective_thresholds_reflect_adjustments(spr):
    d = decide(_req(), spr)
    base = spr.spec.thresholds
    assert d.thresholds[Action.step_up] < base[Action.step_up]


def test_degraded_evidence_never_blocks_by_default(policy_copy):
    folder = policy_copy("support-password-reset")
    data = yaml.safe_load((folder / "policy.yaml").read_text())
    data["degraded"] = {"max_action": "review"}
    data["fusion"]["min_evidence"] = 0.9
    (folder / "policy.yaml").write_text(yaml.safe_dump(data))
    policy = load_policy(folder)
    d = decide(
        _req(
            signals=[
                signal("audio.synthetic_voice", 0.9999, 1.0),
                signal("audio.replay", 0.9999, 1.0),
            ]
        ),
        policy,
    )
    assert d.degraded and d.fused.risk > data["thresholds"]["block"]
    assert d.action is Action.review


def _policy_with_undeclared_geo(policy_copy) -> Path:
    """A policy whose rule reads device.geo_mismatch, which its manifest does not declare."""
    folder = policy_copy("support-password-reset")
    data = yaml.safe_load((folder / "policy.yaml").read_text())
    data["rules"].append(
        {
            "id": "geo_blocks",
            "when": {"device.geo_mismatch": True},
            "action": "block",
            "reason": "Geo",
            "applies_when_degraded": True,
        }
    )
    data["fusion"]["weights"]["video.face_dynamics"] = 5.0
    (folder / "policy.yaml").write_text(yaml.safe_dump(data))
    flow = yaml.safe_load((folder / "dataflow.yaml").read_text())
    for el in flow["elements"]:
        if "fields" in el:
            el["fields"] = [f for f in el["fields"] if f != "device.geo_mismatch"]
    (folder / "dataflow.yaml").write_text(yaml.safe_dump(flow))
    return folder


def test_an_undeclared_field_cannot_influence_a_decision(policy_copy):
    policy = load_policy(_policy_with_undeclared_geo(policy_copy))
    raw = request_dict()
    raw["device"]["geo_mismatch"] = False
    quiet = decide(DecisionRequest.model_validate(raw), policy, decision_id="x")
    raw["device"]["geo_mismatch"] = True
    loud = decide(DecisionRequest.model_validate(raw), policy, decision_id="x")
    assert quiet.model_dump(exclude={"latency_us"}) == loud.model_dump(exclude={"latency_us"})
    assert "rule.geo_blocks" not in {r.code for r in loud.reasons}


def test_an_undeclared_signal_cannot_influence_a_decision(policy_copy):
    policy = load_policy(_policy_with_undeclared_geo(policy_copy))
    base = decide(_req(), policy, decision_id="x")
    raw = request_dict()
    raw["signals"].append({**signal("video.face_dynamics", 0.999, 1.0), "modality": "video"})
    with_video = decide(DecisionRequest.model_validate(raw), policy, decision_id="x")
    assert with_video.action is base.action and with_video.risk == base.risk
    assert "video.face_dynamics" not in {c.signal for c in with_video.fused.contributions}


def test_governance_flags_the_undeclared_field(policy_copy):
    from governance.checks import check_policy_dir

    folder = _policy_with_undeclared_geo(policy_copy)
    policy = load_policy(folder)
    problems = check_policy_dir(
        folder,
        policy_version=policy.manifest.version,
        fields_read=policy.fields_read(),
        today=datetime(2026, 11, 25).date(),
    )
    assert any(
        p.code == "field_undeclared" and "device.geo_mismatch" in p.message for p in problems
    )


def test_no_media_consent_drops_media_signals_and_says_so(spr):
    raw = request_dict()
    raw["session"]["consent"]["media_analysis"] = False
    raw["signals"].append(signal("session.anomaly", 0.3))
    d = decide(DecisionRequest.model_validate(raw), spr)
    assert [c.signal for c in d.fused.contributions] == ["session.anomaly"]
    privacy = next(r for r in d.reasons if r.kind is ReasonKind.privacy)
    # How many were set aside, never which: the stored decision must not name them.
    assert privacy.signals == ()
    assert "1 media-derived signal was set aside" in privacy.message
    assert "synthetic" not in privacy.message
    assert "not consented" in d.summary


def _second_pass(d) -> SecondPassObligation:
    return next(o for o in d.obligations if o.kind == "second_pass")


def test_second_pass_offers_raw_media_only_with_escalation_consent(spr):
    raw = request_dict(signals=[signal("audio.synthetic_voice", 0.93)])
    raw["identity"] = {"assurance": "substantial", "seconds_since_auth": 4000}
    assert not _second_pass(decide(DecisionRequest.model_validate(raw), spr)).raw_media_allowed
    raw["session"]["consent"]["raw_media_escalation"] = True
    assert _second_pass(decide(DecisionRequest.model_validate(raw), spr)).raw_media_allowed


def test_no_media_consent_issues_no_second_pass(spr):
    """The same session that gets a second pass with consent gets none without it: a second
    pass is voice analysis the participant did not allow."""
    raw = request_dict(signals=[signal("audio.synthetic_voice", 0.93)])
    raw["identity"] = {"assurance": "substantial", "seconds_since_auth": 4000}
    assert _second_pass(decide(DecisionRequest.model_validate(raw), spr)).detectors
    raw["session"]["consent"]["media_analysis"] = False
    d = decide(DecisionRequest.model_validate(raw), spr)
    assert [o.kind for o in d.obligations if o.kind == "second_pass"] == []


def test_second_pass_never_offers_raw_media_when_the_manifest_forbids_it(policies_dir):
    policy = load_policy("conference-default", policies_dir)
    assert not policy.dataflow.raw_media_escalation_allowed()


def test_review_obligation_carries_queue_sla_and_checklist(spr):
    raw = request_dict(
        signals=[
            signal("audio.synthetic_voice", 0.95),
            signal("audio.replay", 0.9, 0.8),
            signal("session.anomaly", 0.8),
        ]
    )
    raw["device"] = {"posture": "known"}
    d = decide(DecisionRequest.model_validate(raw), spr)
    assert d.action is Action.review
    review = next(o for o in d.obligations if o.kind == "review")
    assert (
        review.queue == "fraud-review" and review.sla_minutes == 10 and len(review.checklist) >= 3
    )


class _Exploding:
    def evaluate(self, view, fused, degraded) -> Outcome:
        raise RuntimeError("backend crashed")

    def fields_read(self) -> set[str]:
        return set()


def test_evaluation_failure_yields_fail_mode_and_an_error_never_allow(policies_dir):
    policy = load_policy("payout-authorization", policies_dir)
    policy.evaluator = _Exploding()
    d = decide(_req(policy="payout-authorization"), policy)
    assert d.action is Action.review  # the manifest's fail_mode
    assert d.error and "backend crashed" in d.error
    assert d.reasons[0].code == "policy_eval_error"
    assert "could not be evaluated" in d.summary


class _UnknownAction:
    def evaluate(self, view, fused, degraded) -> Outcome:
        return Outcome(action="allow_everything", thresholds={}, reasons=())  # type: ignore[arg-type]

    def fields_read(self) -> set[str]:
        return set()


def test_unknown_action_from_a_backend_fails_safe(policies_dir):
    policy = load_policy("conference-default", policies_dir)
    policy.evaluator = _UnknownAction()
    d = decide(_req(policy="conference-default"), policy)
    assert d.action is Action.warn and d.error


def test_a_policy_remembers_a_bounded_number_of_signal_names(spr):
    for i in range(3000):
        spr.signal_allowed(f"audio.probe_{i}")
    assert len(spr._signal_allowed) <= 1024
    assert spr.signal_allowed("audio.synthetic_voice") is True
