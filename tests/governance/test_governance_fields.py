from __future__ import annotations

import pytest

from governance.fields import KNOWN_FIELD_ROOTS, field_path_error, validate_field_path


@pytest.mark.parametrize(
    "path",
    [
        "session.consent.media_analysis",
        "session.consent",
        "device",
        "transaction.value",
        "signals",
        "signals.audio",
        "signals.audio.synthetic_voice",
        "signals.av.lipsync",
    ],
)
def test_known_fields_and_their_ancestors_are_valid(path: str) -> None:
    assert validate_field_path(path) == path


def test_field_roots_are_the_request_sections() -> None:
    assert {"session", "identity", "transaction", "device", "signals"} == KNOWN_FIELD_ROOTS


def test_unknown_field_under_known_root_lists_the_known_ones() -> None:
    message = field_path_error("device.pos")
    assert message is not None
    assert "'device.pos'" in message and "device.posture" in message


def test_unknown_root_is_rejected_with_the_valid_roots() -> None:
    message = field_path_error("customer.email")
    assert message is not None and "session" in message


def test_unknown_signal_modality_is_rejected() -> None:
    with pytest.raises(ValueError, match="modality 'smell'"):
        validate_field_path("signals.smell.garlic")


def test_signal_paths_deeper_than_a_signal_are_rejected() -> None:
    assert field_path_error("signals.audio.synthetic_voice.score") is not None
