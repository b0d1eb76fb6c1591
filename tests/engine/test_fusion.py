from __future__ import annotations

import pytest

from engine.core.fusion import FusionConfig, fuse
from signals import Signal, logit

CONFIG = FusionConfig(
    prior=0.05,
    cap=2.0,
    min_evidence=0.3,
    weights={"audio.synthetic_voice": 1.0, "audio.replay": 0.5},
)


def sig(name: str, score: float, confidence: float = 1.0) -> Signal:
    return Signal(name=name, modality=name.split(".")[0], score=score, confidence=confidence)


def test_no_signals_leaves_the_prior_and_no_evidence_mass():
    fused = fuse([], CONFIG)
    assert fused.risk == pytest.approx(0.05)
    assert fused.evidence_mass == 0.0 and fused.contributions == ()


def test_contribution_is_weight_times_confidence_times_logit():
    fused = fuse([sig("audio.replay", 0.7, 0.8)], CONFIG)
    (c,) = fused.contributions
    assert c.log_odds == pytest.approx(0.5 * 0.8 * logit(0.7))
    assert fused.log_odds == pytest.approx(logit(0.05) + c.log_odds)


def test_one_signal_is_capped():
    fused = fuse([sig("audio.synthetic_voice", 0.9999)], CONFIG)
    assert fused.contributions[0].capped
    assert fused.contributions[0].log_odds == 2.0


def test_low_confidence_lowers_both_contribution_and_evidence_mass():
    strong = fuse([sig("audio.synthetic_voice", 0.9, 0.9)], CONFIG)
    weak = fuse([sig("audio.synthetic_voice", 0.9, 0.2)], CONFIG)
    assert weak.risk < strong.risk
    assert weak.evidence_mass == pytest.approx(0.2 / 1.5)
    assert strong.evidence_mass == pytest.approx(0.9 / 1.5)


def test_signals_the_policy_does_not_weigh_are_ignored_and_listed():
    fused = fuse([sig("video.face_dynamics", 0.99)], CONFIG)
    assert fused.risk == pytest.approx(0.05)
    assert fused.ignored_signals == ("video.face_dynamics",)


def test_genuine_evidence_lowers_risk_below_the_prior():
    assert fuse([sig("audio.synthetic_voice", 0.05)], CONFIG).risk < 0.05


def test_many_weak_windows_cannot_dilute_the_strongest_window():
    windows = [sig("audio.synthetic_voice", 0.55, 0.5)] * 5 + [
        sig("audio.synthetic_voice", 0.95, 0.9)
    ]
    fused = fuse(windows, CONFIG)
    assert len(fused.contributions) == 1
    assert fused.contributions[0].score == 0.95


def test_contributions_are_sorted_strongest_first():
    fused = fuse([sig("audio.replay", 0.6), sig("audio.synthetic_voice", 0.9)], CONFIG)
    assert [c.signal for c in fused.contributions] == ["audio.synthetic_voice", "audio.replay"]


@pytest.mark.parametrize(
    "bad", [{"prior": 0.0}, {"prior": 1.0}, {"weights": {}}, {"weights": {"a.b": -1}}]
)
def test_invalid_fusion_config_is_rejected(bad):
    args = {"prior": 0.05, "weights": {"a.b": 1.0}} | bad
    with pytest.raises(ValueError):
        FusionConfig(**args)
