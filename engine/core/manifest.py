"""``manifest.yaml``: a policy version's identity, scope and safety settings.

The schema only (no file reading): the decision core needs a policy's id, version and
fail_mode, and selection needs its ``applies_to``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.core.models import Action

POLICY_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.\-]+)?$")
#: The most a manifest may declare for ``eval_budget_ms``; the service may lower it further.
MAX_EVAL_BUDGET_MS = 1000.0
#: A policy's evaluation budget when its manifest declares none (the service's default is
#: ``LIVEGUARD_EVAL_BUDGET_MS``).
DEFAULT_EVAL_BUDGET_MS = 5.0


class AppliesTo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    channels: list[Literal["conference", "support_call"]] = Field(min_length=1)
    kinds: list[str] = Field(min_length=1)

    def matches(self, channel: str, kind: str) -> bool:
        return channel in self.channels and (kind in self.kinds or "*" in self.kinds)


class Approval(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    by: str
    role: Literal["security", "privacy", "legal", "board", "product"]
    date: date


class PolicyManifest(BaseModel):
    """``manifest.yaml``: identity, scope and safety settings of one policy version."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    version: str
    owner: str = Field(min_length=3)
    description: str = ""
    applies_to: AppliesTo
    engine: Literal["yaml", "rego"] = "yaml"
    entrypoint: str | None = Field(
        default=None, description="Rego rule to query, e.g. data.liveguard.x.decision"
    )
    rego_engine: Literal["regorus", "regopy"] | None = Field(
        default=None,
        description="engine: rego only. Which embedded Rego engine evaluates this policy; "
        "default: the service's LIVEGUARD_REGO_ENGINE (regorus).",
    )
    fail_mode: Action = Field(
        description="Action when evaluation fails: fail safe, never silently allow."
    )
    approvals: list[Approval] = []
    eval_budget_ms: float | None = Field(
        default=None,
        gt=0,
        le=MAX_EVAL_BUDGET_MS,
        description="Time one evaluation may take; past it the decision is fail_mode with "
        "policy_eval_timeout. Default: the service's LIVEGUARD_EVAL_BUDGET_MS.",
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not POLICY_ID.match(v):
            raise ValueError("expected a lowercase id with dashes, e.g. 'support-password-reset'")
        return v

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not SEMVER.match(v):
            raise ValueError("expected a semantic version like 1.2.0")
        return v

    @field_validator("fail_mode")
    @classmethod
    def _fail_safe(cls, v: Action) -> Action:
        if v == Action.log:
            raise ValueError(
                "expected warn, step_up, review or block: failing must never allow silently"
            )
        return v

    @model_validator(mode="after")
    def _rego_engine_for_rego(self) -> PolicyManifest:
        if self.rego_engine is not None and self.engine != "rego":
            raise ValueError("rego_engine: only for engine: rego")
        return self

    @property
    def package(self) -> str:
        """The Rego package suffix: the id with '-' written '_'."""
        return self.id.replace("-", "_")
