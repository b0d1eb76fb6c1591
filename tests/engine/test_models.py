from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.models import ACTIONS, Action, DecisionRequest
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
