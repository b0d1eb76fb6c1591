"""The privacy impact assessment (``policies/<id>/pia.yaml``), GDPR Art. 35(7).

The schema mirrors the article so a DPO can map each section to its paragraph:
(a) ``processing``, (b) ``necessity_proportionality``, (c) ``risks``, (d) ``mitigations``.
Cross-document rules (version match, Art. 9 condition, review date) are in
``governance.checks``.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

__all__ = [
    "Access",
    "Level",
    "NecessityProportionality",
    "PrivacyImpactAssessment",
    "Processing",
    "Retention",
    "Risk",
]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
SEMVER = re.compile(r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.\-]+)?$")


class Level(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Processing(_Frozen):
    """Art. 35(7)(a): systematic description of the processing and its purposes."""

    description: Text
    purposes: tuple[Text, ...] = Field(min_length=1)


class NecessityProportionality(_Frozen):
    """Art. 35(7)(b): necessity and proportionality in relation to the purposes."""

    necessity: Text
    proportionality: Text
    data_minimisation: Text


class Risk(_Frozen):
    """Art. 35(7)(c): one risk to the rights and freedoms of data subjects."""

    risk: Text
    likelihood: Level
    severity: Level


class Retention(_Frozen):
    decision_log_days: int = Field(ge=0, le=36500)
    raw_media_days: int = Field(ge=0, le=36500)


class Access(_Frozen):
    role: Text
    purpose: Text


class PrivacyImpactAssessment(_Frozen):
    policy: Text
    policy_version: str
    controller: Text
    dpo: Text
    assessed_on: date
    review_date: date
    processing: Processing
    necessity_proportionality: NecessityProportionality
    risks: tuple[Risk, ...] = Field(min_length=1)
    mitigations: tuple[Text, ...] = Field(min_length=1)  # Art. 35(7)(d)
    legal_basis: Text
    # Required (by ``check``) when any data element identifies a person from voice or face.
    art9_condition: Text | None = None
    data_subjects: tuple[Text, ...] = Field(min_length=1)
    retention: Retention
    access: tuple[Access, ...] = ()
    residual_risk: Level
    # Art. 36: a high residual risk needs prior consultation of the supervisory authority.
    prior_consultation: Text | None = None

    @field_validator("policy_version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not SEMVER.match(v):
            raise ValueError(f"expected a semantic version like 1.0.0 (got {v!r})")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PrivacyImpactAssessment:
        if self.review_date < self.assessed_on:
            raise ValueError(
                f"review_date {self.review_date} is before assessed_on {self.assessed_on}"
            )
        return self

    def access_roles(self) -> frozenset[str]:
        return frozenset(a.role for a in self.access)
