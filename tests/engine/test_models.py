from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from engine.core.models import ACTIONS, Action, DecisionRequest
from tests.conftest import request_dict


def _fields(exc: ValidationError) -> set[str]:
    return {".".join(map(str, e["loc"])) for e in exc.errors()}


def test_actions_are_ordered_by_severity():
    assert Action.log < Action.warn < Action.step_up < Action.review < Action.block
    assert sorted([Action.block, Action.log, Action.review]) == [
        Action.log,
        Action.review,
        Action.block,
    ]
    assert max(ACTIONS) is Action.block


def test_design_wire_example_parses():
    req = DecisionRequest.model_validate(request_dict())
    assert req.session.consent.media_analysis is True
    assert req.signals[0].name == "audio.synthetic_voice"


def test_transaction_device_and_policy_may_be_omitted_and_signals_empty():
    raw = request_dict(signals=[])
    for key in ("transaction", "device", "policy"):
        raw.pop(key)
    req = DecisionRequest.model_validate(raw)
    assert req.transaction is None and req.device is None and req.signals == ()


def test_unknown_top_level_field_is_rejected():
    with pytest.raises(ValidationError) as exc:
        DecisionRequest.model_validate(request_dict(raw_audio="AAAA"))
    assert _fields(exc.value) == {"raw_audio"}


def test_nested_error_names_the_field():
    raw = request_dict()
    raw["identity"]["assurance"] = "medium"
    raw["signals"][0]["score"] = 1.5
    with pytest.raises(ValidationError) as exc:
        DecisionRequest.model_validate(raw)
    assert _fields(exc.value) == {"identity.assurance", "signals.0.score"}


def test_negative_transaction_value_is_rejected():
    raw = request_dict()
    raw["transaction"]["value"] = -5
    with pytest.raises(ValidationError) as exc:
        DecisionRequest.model_validate(raw)
    assert _fields(exc.value) == {"transaction.value"}


@pytest.mark.parametrize("flag", ["yes", "1", 1, 0, "true", None])
def test_consent_flags_must_be_json_booleans(flag):
    raw = request_dict()
    raw["session"]["consent"]["media_analysis"] = flag
    raw["session"]["consent"]["raw_media_escalation"] = flag
    with pytest.raises(ValidationError) as exc:
        DecisionRequest.model_validate(raw)
    assert _fields(exc.value) == {
        "session.consent.media_analysis",
        "session.consent.raw_media_escalation",
    }


@pytest.mark.parametrize("flag", ["true", 1])
def test_device_flags_must_be_json_booleans(flag):
    raw = request_dict()
    raw["device"]["new_device"] = flag
    with pytest.raises(ValidationError) as exc:
        DecisionRequest.model_validate(raw)
    assert _fields(exc.value) == {"device.new_device"}


@pytest.mark.parametrize("score", ["0.9", True, False])
def test_signal_scores_must_be_json_numbers(score):
    raw = request_dict()
    raw["signals"][0]["score"] = score
    raw["signals"][0]["confidence"] = score
    with pytest.raises(ValidationError) as exc:
        DecisionRequest.model_validate(raw)
    assert _fields(exc.value) == {"signals.0.score", "signals.0.confidence"}


def test_strict_numbers_hold_on_the_json_path_too():
    raw = request_dict()
    raw["signals"][0]["score"] = True
    raw["identity"]["failed_attempts"] = "9"
    raw["transaction"]["value"] = "48000"
    with pytest.raises(ValidationError) as exc:
        DecisionRequest.model_validate_json(json.dumps(raw))
    assert _fields(exc.value) == {
        "signals.0.score",
        "identity.failed_attempts",
        "transaction.value",
    }


def test_integer_scores_are_json_numbers_and_accepted():
    raw = request_dict()
    raw["signals"][0]["score"] = 1
    assert DecisionRequest.model_validate(raw).signals[0].score == 1.0


def test_free_text_loses_control_and_bidi_characters():
    raw = request_dict()
    raw["signals"][0]["evidence"][0]["message"] = "Voice\x1b[2J ok\u202e gnp.exe\u2066\n\rline"
    raw["identity"]["method"] = "otp\u202e"
    req = DecisionRequest.model_validate(raw)
    assert req.signals[0].evidence[0].message == "Voice [2J ok gnp.exe line"
    assert req.identity.method == "otp"
