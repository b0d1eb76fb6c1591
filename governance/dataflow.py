"""The data-flow manifest (``policies/<id>/dataflow.yaml``).

Every data element a policy and its detectors consume: what it is, where it is processed,
how long it is kept, who receives it, and when raw media may leave the edge. The schema
only checks shape; governance rules (consent, retention limits, pattern contradictions)
live in ``governance.checks`` so that ``check`` can report all of them at once instead of
failing on the first.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from governance.fields import validate_field_path
from governance.minimize import ancestors

__all__ = [
    "RAW_MEDIA",
    "Category",
    "DataElement",
    "DataFlowManifest",
    "Escalation",
    "Location",
    "Pattern",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Pattern(StrEnum):
    """The domain's reference deployment architectures (DESIGN.md, Deployment patterns)."""

    edge_only = "edge_only"
    cloud_only = "cloud_only"
    hybrid = "hybrid"
    feature_only_cloud = "feature_only_cloud"


class Category(StrEnum):
    raw_audio = "raw_audio"
    raw_video = "raw_video"
    features = "features"
    scores = "scores"
    metadata = "metadata"
    identity = "identity"


RAW_MEDIA: frozenset[Category] = frozenset({Category.raw_audio, Category.raw_video})


class Location(StrEnum):
    edge = "edge"
    cloud = "cloud"


FieldPath = Annotated[str, AfterValidator(validate_field_path)]


class Escalation(BaseModel):
    """When raw media may leave the edge (stage 2/3: heavier detectors, human review)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed: bool = False
    # Defaults are deliberately the non-compliant value: a manifest that allows escalation
    # must say, explicitly, that consent is required; ``check`` flags the omission.
    requires_consent: bool = False
    reviewer_access: tuple[str, ...] = ()
    destination: Location = Location.cloud
    max_seconds: int | None = Field(default=None, ge=1, le=3600)
    # How long an escalated excerpt is kept for its reviewers (stage 2). Undeclared, the
    # live runtime escalates nothing: raw media is never kept for an unstated time.
    retention_days: int | None = Field(default=None, ge=1, le=365)


class DataElement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    category: Category
    description: str = ""
    processed_at: Location
    # Optional in the schema on purpose: a missing retention is a governance problem that
    # ``check`` reports by name, not a load crash that hides every other problem.
    retention_days: int | None = Field(default=None, ge=0, le=36500)
    recipients: tuple[str, ...] = ()
    fields: tuple[FieldPath, ...] = ()
    biometric_identification: bool = False
    escalation: Escalation | None = None

    @model_validator(mode="after")
    def _shape(self) -> DataElement:
        if not _NAME.match(self.name):
            raise ValueError(f"element name {self.name!r}: expected lowercase_with_underscores")
        if self.escalation is not None and self.category not in RAW_MEDIA:
            raise ValueError(
                f"element {self.name!r}: escalation only applies to raw_audio/raw_video elements"
            )
        return self

    @property
    def is_raw_media(self) -> bool:
        return self.category in RAW_MEDIA

    @property
    def escalation_allowed(self) -> bool:
        return self.escalation is not None and self.escalation.allowed


class DataFlowManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: str = Field(min_length=1)
    pattern: Pattern
    human_review: bool = False
    elements: tuple[DataElement, ...] = Field(min_length=1)

    # field path → element declaring it; computed once, the engine asks per request.
    _by_field: dict[str, DataElement] = PrivateAttr(default_factory=dict)
    _allowed: frozenset[str] = PrivateAttr(default=frozenset())
    _retained: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="after")
    def _unique(self) -> DataFlowManifest:
        # Unique names and fields keep retention and recipients unambiguous per field.
        problems: list[str] = []
        seen_names: set[str] = set()
        owner: dict[str, str] = {}
        for el in self.elements:
            if el.name in seen_names:
                problems.append(f"element name {el.name!r} is used twice")
            seen_names.add(el.name)
            for f in el.fields:
                if f in owner:
                    problems.append(f"field {f!r} is declared by both {owner[f]!r} and {el.name!r}")
                owner.setdefault(f, el.name)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def model_post_init(self, _context: object) -> None:
        by_field = {f: el for el in self.elements for f in el.fields}
        self._by_field = by_field
        self._allowed = frozenset(by_field)
        self._retained = frozenset(
            f
            for f, el in by_field.items()
            if el.retention_days is not None and el.retention_days > 0
        )

    def allowed_fields(self) -> frozenset[str]:
        """Every request field the policy may read (union of the elements' ``fields``)."""
        return self._allowed

    def retained_fields(self) -> frozenset[str]:
        """Fields the decision log may store (elements kept for more than 0 days)."""
        return self._retained

    def element_for(self, field: str) -> DataElement | None:
        """The element whose most specific declared field covers ``field``."""
        for path in (field, *ancestors(field)):
            el = self._by_field.get(path)
            if el is not None:
                return el
        return None

    def retention_days_for(self, field: str) -> int | None:
        """Days ``field`` may be kept; ``None`` when undeclared or retention is missing."""
        el = self.element_for(field)
        return None if el is None else el.retention_days

    def raw_media_escalation_allowed(self) -> bool:
        return any(el.is_raw_media and el.escalation_allowed for el in self.elements)

    def uses_biometric_identification(self) -> bool:
        return any(el.biometric_identification for el in self.elements)
