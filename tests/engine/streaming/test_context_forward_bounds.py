"""A context update forwarded to another replica travels in one PostgreSQL NOTIFY
(payloads below 8000 bytes): the largest update the model admits fits, a larger one is
refused whole (413), and a decision sent back is split into parts that each fit."""

from __future__ import annotations

import base64

import pytest

from engine.streaming.events import (
    MAX_PARTS,
    MAX_PAYLOAD_BYTES,
    PART_CHARS,
    ForwardTooLarge,
    answer_parts,
    context_request,
)
from engine.streaming.sessions import ContextUpdate

ID = "0123456789abcdef"
#: Escaped as two \\u surrogates (12 bytes) by json.dumps: the costliest character.
WIDE = "\U0001f600"


def test_the_largest_update_the_model_admits_fits_one_notify() -> None:
    update = ContextUpdate.model_validate(
        {
            "participant": "external",
            "consent": {"media_analysis": True, "raw_media_escalation": True},
            "identity": {
                "assurance": "substantial",
                "method": WIDE * 64,
                # The JSON parsers stop at 4300 digits (Python's int limit, pydantic's too).
                "seconds_since_auth": int("9" * 4300),
                "failed_attempts": 1000,
            },
            "transaction": {"kind": WIDE * 64, "value": 1.7976931348623157e308, "currency": "USD"},
            "device": {"posture": "compromised", "new_device": True, "geo_mismatch": True},
        }
    )
    payload = context_request(ID, ID, ID, "s" * 128, update.model_dump(mode="json"))
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES


def test_an_update_too_large_for_one_notify_is_refused_whole() -> None:
    with pytest.raises(ForwardTooLarge, match="too large to forward") as exc:
        context_request(ID, ID, ID, "call-1", {"identity": {"method": "m" * MAX_PAYLOAD_BYTES}})
    assert exc.value.http_status == 413


def test_a_decision_sent_back_is_split_into_parts_that_rebuild_it() -> None:
    decision = '{"summary": "' + "é" * 20_000 + '"}'
    parts = answer_parts(decision)
    assert len(parts) > 1 and all(len(p) <= PART_CHARS for p in parts)
    assert base64.b64decode("".join(parts)).decode() == decision


def test_a_decision_too_large_for_the_parts_is_refused() -> None:
    with pytest.raises(ValueError):
        answer_parts("x" * (MAX_PARTS * PART_CHARS))
