from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from governance.dataflow import DataFlowManifest
from governance.errors import format_validation_error

Edit = Callable[[dict[str, Any]], None]


def _errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        DataFlowManifest.model_validate(data)
    return format_validation_error("dataflow.yaml", info.value)


def test_clean_manifest_loads(make_dataflow: Callable[..., DataFlowManifest]) -> None:
    df = make_dataflow()
    assert df.pattern == "hybrid" and len(df.elements) == 4


def test_manifest_is_frozen(make_dataflow: Callable[..., DataFlowManifest]) -> None:
    with pytest.raises(ValidationError):
        make_dataflow().human_review = False  # type: ignore[misc]


def test_allowed_fields_is_the_union_of_element_fields(
    make_dataflow: Callable[..., DataFlowManifest],
) -> None:
    assert make_dataflow().allowed_fields() == {
        "signals.audio.synthetic_voice",
        "session.channel",
        "session.kind",
        "transaction.kind",
        "identity.assurance",
        "device",
    }


def test_retained_fields_excludes_zero_day_elements(
    make_dataflow: Callable[..., DataFlowManifest],
) -> None:
    assert make_dataflow().retained_fields() == {
        "signals.audio.synthetic_voice",
        "identity.assurance",
        "device",
    }


def test_retention_for_a_field_comes_from_its_covering_element(
    make_dataflow: Callable[..., DataFlowManifest],
) -> None:
    df = make_dataflow()
    assert df.retention_days_for("device.posture") == 180
    assert df.retention_days_for("session.kind") == 0
    assert df.retention_days_for("identity.method") is None


def test_raw_media_escalation_allowed_reflects_the_raw_elements(
    make_dataflow: Callable[..., DataFlowManifest],
) -> None:
    assert make_dataflow().raw_media_escalation_allowed() is True

    def forbid(d: dict[str, Any]) -> None:
        d["elements"][0]["escalation"]["allowed"] = False

    assert make_dataflow(forbid).raw_media_escalation_allowed() is False


def test_missing_retention_loads_as_none(make_dataflow: Callable[..., DataFlowManifest]) -> None:
    def drop(d: dict[str, Any]) -> None:
        del d["elements"][1]["retention_days"]

    assert make_dataflow(drop).elements[1].retention_days is None


def test_unknown_declared_field_is_rejected_with_its_location(
    dataflow_data: Callable[..., dict[str, Any]],
) -> None:
    def typo(d: dict[str, Any]) -> None:
        d["elements"][3]["fields"] = ["identity.assurance", "device.pos"]

    [line] = _errors(dataflow_data(typo))
    assert line.startswith("dataflow.yaml: elements[3].fields[1]: unknown field 'device.pos'")


def test_unknown_pattern_lists_the_four_patterns(
    dataflow_data: Callable[..., dict[str, Any]],
) -> None:
    def bad(d: dict[str, Any]) -> None:
        d["pattern"] = "edge"

    [line] = _errors(dataflow_data(bad))
    assert "edge_only, cloud_only, hybrid, feature_only_cloud" in line


def test_escalation_on_non_raw_element_is_rejected(
    dataflow_data: Callable[..., dict[str, Any]],
) -> None:
    def bad(d: dict[str, Any]) -> None:
        d["elements"][1]["escalation"] = {"allowed": False}

    [line] = _errors(dataflow_data(bad))
    assert "elements[1]" in line and "raw_audio/raw_video" in line


def test_field_declared_by_two_elements_is_rejected(
    dataflow_data: Callable[..., dict[str, Any]],
) -> None:
    def dup(d: dict[str, Any]) -> None:
        d["elements"][2]["fields"].append("identity.assurance")

    [line] = _errors(dataflow_data(dup))
    assert "'identity.assurance' is declared by both" in line


def test_duplicate_element_names_are_rejected(dataflow_data: Callable[..., dict[str, Any]]) -> None:
    def dup(d: dict[str, Any]) -> None:
        d["elements"][2]["name"] = "caller_voice"

    assert any("used twice" in line for line in _errors(dataflow_data(dup)))


def test_negative_retention_is_rejected(dataflow_data: Callable[..., dict[str, Any]]) -> None:
    def neg(d: dict[str, Any]) -> None:
        d["elements"][0]["retention_days"] = -1

    assert _errors(dataflow_data(neg)) == [
        "dataflow.yaml: elements[0].retention_days: expected a number >= 0 (got -1)"
    ]
