from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from governance.errors import format_validation_error
from governance.pia import PrivacyImpactAssessment


def _errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        PrivacyImpactAssessment.model_validate(data)
    return format_validation_error("pia.yaml", info.value)


def test_clean_pia_loads(make_pia: Callable[..., PrivacyImpactAssessment]) -> None:
    pia = make_pia()
    assert pia.review_date == date(2027, 4, 1)
    assert pia.access_roles() == {"fraud-review-team"}


def test_dates_parse_from_iso_strings(make_pia: Callable[..., PrivacyImpactAssessment]) -> None:
    def strings(d: dict[str, Any]) -> None:
        d["assessed_on"], d["review_date"] = "2026-10-01", "2027-04-01"

    assert make_pia(strings).assessed_on == date(2026, 10, 1)


def test_art35_sections_are_required(pia_data: Callable[..., dict[str, Any]]) -> None:
    def strip(d: dict[str, Any]) -> None:
        for key in ("processing", "necessity_proportionality", "risks", "mitigations"):
            del d[key]

    assert _errors(pia_data(strip)) == [
        f"pia.yaml: {k}: field required"
        for k in ("processing", "necessity_proportionality", "risks", "mitigations")
    ]


def test_risk_levels_are_low_medium_high(pia_data: Callable[..., dict[str, Any]]) -> None:
    def bad(d: dict[str, Any]) -> None:
        d["risks"][0]["severity"] = "catastrophic"

    [line] = _errors(pia_data(bad))
    assert line.startswith("pia.yaml: risks[0].severity: expected one of: low, medium, high")


def test_policy_version_must_be_semver(pia_data: Callable[..., dict[str, Any]]) -> None:
    def bad(d: dict[str, Any]) -> None:
        d["policy_version"] = "v1"

    [line] = _errors(pia_data(bad))
    assert line.startswith("pia.yaml: policy_version: expected a semantic version")


def test_review_date_before_assessment_is_rejected(pia_data: Callable[..., dict[str, Any]]) -> None:
    def bad(d: dict[str, Any]) -> None:
        d["review_date"] = date(2026, 1, 1)

    [line] = _errors(pia_data(bad))
    assert "before assessed_on" in line


def test_blank_texts_are_rejected(pia_data: Callable[..., dict[str, Any]]) -> None:
    def bad(d: dict[str, Any]) -> None:
        d["legal_basis"] = "   "

    assert _errors(pia_data(bad)) == ["pia.yaml: legal_basis: expected non-empty text"]
