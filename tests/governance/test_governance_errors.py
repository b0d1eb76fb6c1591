from __future__ import annotations

from enum import StrEnum

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from governance.errors import format_loc, format_validation_error


class Where(StrEnum):
    edge = "edge"
    cloud = "cloud"


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    where: Where
    retention_days: int = Field(ge=0)
    name: str = "x"

    @field_validator("name")
    @classmethod
    def _lower(cls, v: str) -> str:
        if v != v.lower():
            raise ValueError("expected lowercase")
        return v


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    items: list[Item] = Field(min_length=1)


def _lines(data: object) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Doc.model_validate(data)
    return format_validation_error("p/doc.yaml", info.value)


def test_list_indexes_render_in_brackets() -> None:
    assert format_loc(("elements", 2, "retention_days")) == "elements[2].retention_days"


def test_empty_location_is_named_top_level() -> None:
    assert format_loc(()) == "(top level)"


def test_missing_field_says_field_required() -> None:
    assert _lines({"items": [{"where": "edge", "retention_days": 1}]}) == [
        "p/doc.yaml: title: field required"
    ]


def test_enum_error_lists_the_choices() -> None:
    lines = _lines({"title": "t", "items": [{"where": "moon", "retention_days": 1}]})
    assert lines == ["p/doc.yaml: items[0].where: expected one of: edge, cloud (got 'moon')"]


def test_extra_field_is_named() -> None:
    lines = _lines(
        {"title": "t", "colour": "red", "items": [{"where": "edge", "retention_days": 1}]}
    )
    assert lines == ["p/doc.yaml: colour: extra field not allowed"]


def test_bound_violation_states_the_bound() -> None:
    lines = _lines({"title": "t", "items": [{"where": "edge", "retention_days": -1}]})
    assert lines == ["p/doc.yaml: items[0].retention_days: expected a number >= 0 (got -1)"]


def test_custom_validator_message_is_used_verbatim() -> None:
    lines = _lines({"title": "t", "items": [{"where": "edge", "retention_days": 1, "name": "X"}]})
    assert lines == ["p/doc.yaml: items[0].name: expected lowercase"]


def test_every_error_is_reported_not_only_the_first() -> None:
    lines = _lines({"items": [{"where": "moon", "retention_days": "soon"}]})
    assert len(lines) == 3


def test_invalid_only_item_does_not_also_report_list_too_short() -> None:
    lines = _lines({"title": "t", "items": [{"where": "moon", "retention_days": 1}]})
    assert not any("at least" in line for line in lines)


def test_empty_list_reports_minimum_length() -> None:
    assert _lines({"title": "t", "items": []}) == ["p/doc.yaml: items: expected at least 1 item(s)"]


def test_wrong_container_type_says_mapping_expected() -> None:
    lines = _lines({"title": "t", "items": ["edge"]})
    assert lines == ["p/doc.yaml: items[0]: expected a mapping (got 'edge')"]


class Level(StrEnum):
    warn = "warn"
    block = "block"


class Shift(BaseModel):
    shift: float | dict[Level, float]


def _shift_lines(value: object) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Shift.model_validate({"shift": value})
    return format_validation_error("policy.yaml", info.value)


def test_union_of_wrong_types_is_one_line_naming_the_alternatives() -> None:
    assert _shift_lines("abc") == ["policy.yaml: shift: expected a number or a mapping (got 'abc')"]


def test_union_reports_the_branch_that_matched_the_shape() -> None:
    assert _shift_lines({"warn": "z"}) == ["policy.yaml: shift.warn: expected a number (got 'z')"]


def test_bad_mapping_key_is_called_an_invalid_key() -> None:
    assert _shift_lines({"wrn": 0.1}) == [
        "policy.yaml: shift.wrn: invalid key: expected one of: warn, block (got 'wrn')"
    ]
