from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from signals import Evidence, Modality, Signal, apply_platt, fit_platt, logit, sigmoid


def _signal(**kw):
    base = dict(name="audio.synthetic_voice", modality="audio", score=0.8, confidence=0.7)
    base.update(kw)
    return Signal.model_validate(base)


def _error_fields(exc: ValidationError) -> set[str]:
    return {".".join(map(str, e["loc"])) for e in exc.errors()}


def test_wire_signal_parses_with_evidence():
    s = _signal(
        evidence=[
            {"code": "audio.vocoder_artifacts", "message": "Vocoder artifacts", "value": 0.91}
        ],
        detector="synthetic_voice@1.0.0",
        window_ms=4000,
    )
    assert s.modality is Modality.audio
    assert s.evidence[0] == Evidence(
        code="audio.vocoder_artifacts", message="Vocoder artifacts", value=0.91
    )
    assert s.media_derived


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.01, 1.01])
def test_score_outside_unit_interval_or_not_finite_is_rejected(bad):
    with pytest.raises(ValidationError) as exc:
        _signal(score=bad)
    assert _error_fields(exc.value) == {"score"}


@pytest.mark.parametrize("bad", [math.nan, -1.0, 2.0])
def test_confidence_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ValidationError) as exc:
        _signal(confidence=bad)
    assert _error_fields(exc.value) == {"confidence"}


@pytest.mark.parametrize("name", ["synthetic_voice", "Audio.Voice", "audio.", "audio.voice.extra"])
def test_name_must_be_modality_dot_what(name):
    with pytest.raises(ValidationError, match=r"modality\.what"):
        _signal(name=name)


def test_evidence_code_must_be_dotted():
    with pytest.raises(ValidationError) as exc:
        _signal(evidence=[{"code": "Vocoder", "message": "x"}])
    assert _error_fields(exc.value) == {"evidence.0.code"}


def test_detector_must_carry_a_semver():
    with pytest.raises(ValidationError, match="name@semver"):
        _signal(detector="synthetic_voice")


def test_unknown_field_is_rejected():
    with pytest.raises(ValidationError) as exc:
        _signal(raw_audio="...")
    assert _error_fields(exc.value) == {"raw_audio"}


def test_session_signals_are_not_media_derived():
    assert not _signal(name="session.anomaly", modality="session").media_derived


def test_logit_and_sigmoid_are_inverse_and_finite_at_the_edges():
    assert sigmoid(logit(0.3)) == pytest.approx(0.3)
    assert math.isfinite(logit(0.0)) and math.isfinite(logit(1.0))


def test_platt_fit_orders_scores_and_stays_calibrated_on_separable_data():
    raw = [-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0]
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    a, b = fit_platt(raw, labels)
    probs = [apply_platt(x, a, b) for x in raw]
    assert probs == sorted(probs)
    # Smoothed targets keep a perfectly separable set away from 0 and 1.
    assert 0.02 < probs[0] < 0.3 and 0.7 < probs[-1] < 0.98


def test_signal_name_and_detector_ref_are_length_bounded():
    with pytest.raises(ValidationError):
        Signal(name="audio." + "x" * 100, modality="audio", score=0.5, confidence=0.5)
    with pytest.raises(ValidationError):
        Signal(
            name="audio.x",
            modality="audio",
            score=0.5,
            confidence=0.5,
            detector="d" * 200 + "@1.0.0",
        )
