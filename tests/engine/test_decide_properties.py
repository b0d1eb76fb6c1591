"""Properties of decide() over generated requests, for every bundled YAML policy."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Decision, DecisionRequest, decide
from engine.policy.repository import PolicyRepository
from simulations.generate import SIGNALS

POLICIES = Path(__file__).resolve().parents[2] / "policies"
REPO = PolicyRepository(POLICIES)
YAML_POLICIES = [
    REPO.get(pid)
    for pid in [
        "conference-default",
        "executive-meeting",
        "support-password-reset",
        "payout-authorization",
    ]
]
unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def requests(draw) -> DecisionRequest:
    names = draw(st.lists(st.sampled_from(SIGNALS), max_size=6))
    raw = {
        "session": {
            "id": "prop",
            "channel": draw(st.sampled_from(["conference", "support_call"])),
            "kind": draw(
                st.sampled_from(
                    ["password_reset", "executive_meeting", "webinar", "payout_authorization"]
                )
            ),
            "participant": draw(st.sampled_from(["internal", "external"])),
            "consent": {
                "media_analysis": draw(st.booleans()),
                "raw_media_escalation": draw(st.booleans()),
            },
        },
        "identity": {
            "assurance": draw(st.sampled_from(["none", "low", "substantial", "high"])),
            "seconds_since_auth": draw(st.none() | st.integers(0, 100_000)),
            "failed_attempts": draw(st.integers(0, 8)),
        },
        "signals": [
            {
                "name": n,
                "modality": n.split(".")[0],
                "score": draw(unit),
                "confidence": draw(unit),
                "detector": "x@1.0.0",
            }
            for n in names
        ],
    }
    if draw(st.booleans()):
        raw["transaction"] = {
            "kind": draw(st.sampled_from(["payout", "wire_transfer", "password_reset"])),
            "value": draw(st.floats(0, 1e7)),
        }
    if draw(st.booleans()):
        raw["device"] = {
            "posture": draw(st.sampled_from(["managed", "known", "unknown", "compromised"])),
            "new_device": draw(st.booleans()),
            "geo_mismatch": draw(st.booleans()),
        }
    return DecisionRequest.model_validate(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.sampled_from(YAML_POLICIES))
def test_decisions_are_valid_models_within_degraded_bounds(request, policy):
    d = decide(request, policy, decision_id="prop")
    # The hot path skips validation; the result must still be a valid Decision on the wire.
    assert Decision.model_validate_json(d.model_dump_json()) == Decision.model_validate(
        d.model_dump()
    )
    assert d.error is None
    assert 0.0 <= d.risk <= 1.0
    assert d.summary.endswith(".") and "\n" not in d.summary
    thresholds = list(d.thresholds.values())
    assert thresholds == sorted(thresholds)
    if d.degraded:
        rules_that_may_exceed = {
            f"rule.{r.id}" for r in policy.spec.rules if r.applies_when_degraded
        }
        if not rules_that_may_exceed & {r.code for r in d.reasons}:
            assert d.action <= policy.spec.degraded.max_action
    if not request.session.consent.media_analysis:
        assert all(
            c.signal.split(".")[0] not in ("audio", "video", "av") for c in d.fused.contributions
        )


@settings(max_examples=200, deadline=None)
@given(requests(), st.sampled_from(YAML_POLICIES), unit)
def test_stronger_evidence_never_lowers_the_risk(request, policy, bump):
    if not request.signals:
        return
    first = request.signals[0]
    higher = first.model_copy(update={"score": max(first.score, bump)})
    stronger = request.model_copy(update={"signals": (higher, *request.signals[1:])})
    assert decide(stronger, policy).risk >= decide(request, policy).risk - 1e-9
