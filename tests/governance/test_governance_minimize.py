from __future__ import annotations

from typing import Any

import pytest

from governance.minimize import Projection, is_declared, minimize, retain
from signals import Modality, Signal

REQUEST: dict[str, Any] = {
    "session": {
        "id": "call-7f3a",
        "channel": "support_call",
        "kind": "password_reset",
        "participant": "external",
        "consent": {"media_analysis": True, "raw_media_escalation": False},
    },
    "identity": {"assurance": "low", "method": "knowledge_based", "failed_attempts": 1},
    "transaction": {"kind": "password_reset", "value": 0, "currency": "USD"},
    "device": {"posture": "unknown", "new_device": True, "geo_mismatch": False},
    "signals": [
        {"name": "audio.synthetic_voice", "modality": "audio", "score": 0.87, "confidence": 0.8},
        {"name": "video.face_swap", "modality": "video", "score": 0.2, "confidence": 0.9},
        {"name": "av.lipsync", "modality": "av", "score": 0.4, "confidence": 0.5},
    ],
    "policy": "support-password-reset",
}


@pytest.mark.parametrize(
    ("path", "allowed", "expected"),
    [
        ("device.posture", {"device.posture"}, True),
        ("device.posture", {"device"}, True),
        ("signals.audio.synthetic_voice.score", {"signals.audio.synthetic_voice"}, True),
        ("device.posture", {"device.pos"}, False),
        ("device.posture_extra", {"device.posture"}, False),
        ("device", {"device.posture"}, False),
        ("identity.assurance", set(), False),
    ],
)
def test_is_declared_matches_by_path_segment(path: str, allowed: set[str], expected: bool) -> None:
    assert is_declared(path, frozenset(allowed)) is expected


def test_engine_output_and_session_id_are_always_readable() -> None:
    assert is_declared("fused.risk", frozenset())
    assert is_declared("risk", frozenset())
    assert is_declared("session.id", frozenset())


def test_minimize_keeps_only_declared_fields() -> None:
    out = minimize(REQUEST, frozenset({"identity.assurance", "device.posture"}))
    assert out["identity"] == {"assurance": "low"}
    assert out["device"] == {"posture": "unknown"}
    assert "transaction" not in out


def test_minimize_always_keeps_the_session_id() -> None:
    assert minimize(REQUEST, frozenset())["session"] == {"id": "call-7f3a"}


def test_declared_section_keeps_its_whole_subtree() -> None:
    out = minimize(REQUEST, frozenset({"session.consent"}))
    assert out["session"] == {
        "id": "call-7f3a",
        "consent": {"media_analysis": True, "raw_media_escalation": False},
    }


def test_minimize_keeps_signals_declared_by_name() -> None:
    out = minimize(REQUEST, frozenset({"signals.audio.synthetic_voice"}))
    assert [s["name"] for s in out["signals"]] == ["audio.synthetic_voice"]


def test_minimize_keeps_signals_declared_by_modality() -> None:
    out = minimize(REQUEST, frozenset({"signals.video", "signals.av"}))
    assert [s["name"] for s in out["signals"]] == ["video.face_swap", "av.lipsync"]


def test_minimize_keeps_an_empty_signal_list_when_none_declared() -> None:
    assert minimize(REQUEST, frozenset())["signals"] == []


def test_minimize_handles_signal_objects() -> None:
    sig = Signal(name="audio.synthetic_voice", modality=Modality.audio, score=0.9, confidence=0.8)
    out = minimize({"signals": [sig]}, frozenset({"signals.audio.synthetic_voice"}))
    assert out["signals"] == [sig]


def test_minimize_keeps_policy_selector_and_engine_output() -> None:
    out = minimize({**REQUEST, "fused": {"risk": 0.7}}, frozenset())
    assert out["policy"] == "support-password-reset" and out["fused"] == {"risk": 0.7}


def test_minimize_returns_a_copy() -> None:
    out = minimize(REQUEST, frozenset({"session", "signals"}))
    out["session"]["consent"]["media_analysis"] = False
    out["signals"][0]["score"] = 0.0
    assert REQUEST["session"]["consent"]["media_analysis"] is True
    assert REQUEST["signals"][0]["score"] == 0.87


def test_minimize_skips_sections_missing_from_the_request() -> None:
    out = minimize({"session": {"id": "c"}}, frozenset({"transaction.value", "device"}))
    assert out == {"session": {"id": "c"}}


def test_retain_keeps_only_retained_fields() -> None:
    out = retain(REQUEST, frozenset({"identity.assurance"}))
    assert out == {
        "session": {"id": "call-7f3a"},
        "identity": {"assurance": "low"},
        "signals": [],
        "policy": "support-password-reset",
    }


def test_projection_is_compiled_once_per_field_set() -> None:
    allowed = frozenset({"device.posture"})
    assert Projection.from_allowed(allowed) is Projection.from_allowed(set(allowed))


def test_projection_is_fast_enough_for_per_request_use() -> None:
    import time

    proj = Projection.from_allowed(frozenset({"identity", "device.posture", "signals.audio"}))
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        proj.apply(REQUEST)
    per_call_us = (time.perf_counter() - start) / n * 1e6
    assert per_call_us < 100  # generous bound for slow CI; typically a few µs
