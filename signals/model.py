"""The normalized evidence every detector emits and every policy consumes."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

SIGNAL_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
EVIDENCE_CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
DETECTOR_REF = re.compile(r"^[a-z][a-z0-9_.\-]*@\d+\.\d+\.\d+([-+][0-9A-Za-z.\-]+)?$")

#: Strict: a JSON number only. ``true`` or ``"0.9"`` is refused, not coerced (a coerced
#: ``true`` is a score of 1.0 — enough to turn a step-up into a review).
UnitFloat = Annotated[StrictFloat, Field(ge=0.0, le=1.0, allow_inf_nan=False)]

#: Characters that must never reach an agent's screen from free text: C0/C1 controls
#: (terminal escapes, line breaks that fake extra lines) and Unicode bidi overrides,
#: embeddings and isolates (which reorder what is shown, "Trojan Source" style).
_UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    """``text`` without control characters and bidi controls; runs of whitespace left by
    them collapse to one space."""
    if _UNSAFE_TEXT.search(text) is None:
        return text
    return " ".join(_UNSAFE_TEXT.sub(" ", text).split())


class Modality(StrEnum):
    audio = "audio"
    video = "video"
    av = "av"  # audio-visual (e.g. lip sync)
    behavior = "behavior"
    session = "session"


#: Modalities whose signals are derived from the participant's voice or face; they need
#: the session's consent for media analysis.
MEDIA_MODALITIES: frozenset[Modality] = frozenset({Modality.audio, Modality.video, Modality.av})


class Evidence(BaseModel):
    """One plain-language observation behind a signal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(
        description="Stable dotted code, e.g. 'audio.vocoder_artifacts'.",
        # Shown in the JSON schema; the validator below gives the friendlier error.
        json_schema_extra={"pattern": EVIDENCE_CODE.pattern},
    )
    message: str = Field(min_length=1, max_length=300, description="Plain language for agents.")
    value: StrictFloat | None = Field(default=None, allow_inf_nan=False)

    @field_validator("message")
    @classmethod
    def _message_is_plain_text(cls, v: str) -> str:
        cleaned = clean_text(v)
        if not cleaned:
            raise ValueError("expected plain text; got only control or bidi characters")
        return cleaned

    @field_validator("code")
    @classmethod
    def _code_is_dotted(cls, v: str) -> str:
        if not EVIDENCE_CODE.match(v):
            raise ValueError("expected a dotted lowercase code like 'audio.vocoder_artifacts'")
        return v


class Signal(BaseModel):
    """A calibrated score from one detector over one window of a session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        max_length=64,
        description="'modality.what', e.g. 'audio.synthetic_voice'.",
        json_schema_extra={"pattern": SIGNAL_NAME.pattern},
    )
    modality: Modality
    score: UnitFloat = Field(
        description="Probability the session is manipulated, by this signal alone."
    )
    confidence: UnitFloat = Field(description="Quality of the evidence; low on degraded input.")
    evidence: tuple[Evidence, ...] = ()
    detector: str = Field(
        default="unknown@0.0.0",
        max_length=128,
        description="'name@semver' of the detector.",
        json_schema_extra={"pattern": DETECTOR_REF.pattern},
    )
    window_ms: StrictInt = Field(default=0, ge=0, le=3_600_000)
    observed_at: datetime | None = None

    @field_validator("name")
    @classmethod
    def _name_is_modality_what(cls, v: str) -> str:
        if not SIGNAL_NAME.match(v):
            raise ValueError("expected 'modality.what' in lowercase, e.g. 'audio.synthetic_voice'")
        return v

    @field_validator("detector")
    @classmethod
    def _detector_is_versioned(cls, v: str) -> str:
        if not DETECTOR_REF.match(v):
            raise ValueError("expected 'name@semver', e.g. 'synthetic_voice@1.0.0'")
        return v

    @property
    def media_derived(self) -> bool:
        return self.modality in MEDIA_MODALITIES
