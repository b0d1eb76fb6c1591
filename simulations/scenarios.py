"""The scenario catalog: red-team attacks and the legitimate traffic they hide in.

One YAML file per scenario in ``simulations/scenarios/`` (or any folder given). A scenario
says what its sessions are (ground truth, attack type), how much of the traffic they are
(``share``), how their context is distributed (channel, kind, identity, transaction, device,
consent) and which signals they produce. Audio signals are drawn from a *detector response
profile* (``from_profile: true``: the real detectors' outputs on labelled clips under call
conditions, see ``simulations.profile``); signals no profile measures are hand-set and must
say so (``hand_set: true``), and the report lists them as such.

Validation is strict (unknown keys, wrong types and out-of-range values are refused) and
every problem names the file and the field.
"""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from governance.errors import format_validation_error
from governance.files import FileRefused, load_yaml

__all__ = [
    "CATALOG_DIR",
    "AudioDraw",
    "Categorical",
    "Number",
    "Scenario",
    "ScenarioError",
    "SignalSpec",
    "load_catalog",
    "load_scenario",
]

CATALOG_DIR = Path(__file__).resolve().parent / "scenarios"
#: A catalog larger than this is a mistake, not a catalog.
MAX_SCENARIOS = 200
_STRICT = ConfigDict(frozen=True, extra="forbid")
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
SIGNAL_NAME = re.compile(r"^(audio|video|av|behavior|session)\.[a-z][a-z0-9_]*$")


class ScenarioError(ValueError):
    """One or more scenario files are invalid; ``problems``: ``file: field: expected …``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _weights(v: dict[str, float]) -> dict[str, float]:
    if not v:
        raise ValueError("expected at least one value with a weight")
    if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
        raise ValueError("expected non-negative weights with a positive sum")
    return v


class Categorical(BaseModel):
    """``{value: weight, …}``: weights are relative (normalized when sampled)."""

    model_config = _STRICT
    weights: dict[str, float]

    @field_validator("weights")
    @classmethod
    def _check(cls, v: dict[str, float]) -> dict[str, float]:
        return _weights(v)

    @model_validator(mode="before")
    @classmethod
    def _bare_mapping(cls, data: object) -> object:
        # Written in YAML as a bare mapping; YAML turns `yes`/`1` keys into non-strings.
        if isinstance(data, dict) and "weights" not in data:
            return {"weights": {str(k): v for k, v in data.items()}}
        return data


class Number(BaseModel):
    """Exactly one of: ``constant``, ``uniform: [lo, hi]``, ``lognormal: [mu, sigma]`` (of
    the natural log), ``poisson: lambda``, ``beta: [a, b]`` (for scores in [0, 1]),
    ``choice: {value: weight}``; optional ``round`` digits."""

    model_config = _STRICT
    constant: float | None = None
    uniform: tuple[float, float] | None = None
    lognormal: tuple[float, Annotated[float, Field(gt=0)]] | None = None
    poisson: Annotated[float, Field(ge=0, le=1000)] | None = None
    beta: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] | None = None
    choice: dict[float, float] | None = None
    round: Annotated[int, Field(ge=0, le=6)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Number:
        kinds = [
            k
            for k in ("constant", "uniform", "lognormal", "poisson", "beta", "choice")
            if getattr(self, k) is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "expected exactly one of constant, uniform, lognormal, poisson, beta, choice"
                + (f"; got {', '.join(kinds)}" if kinds else "")
            )
        if self.uniform is not None and self.uniform[0] > self.uniform[1]:
            raise ValueError("uniform: expected [low, high] with low ≤ high")
        if self.choice is not None:
            _weights({str(k): w for k, w in self.choice.items()})
        return self


class Consent(BaseModel):
    model_config = _STRICT
    media_analysis: Probability = Field(description="Probability the participant consented.")
    raw_media_escalation: Probability = 0.0


class IdentityDist(BaseModel):
    model_config = _STRICT
    assurance: Categorical
    method: Categorical | None = None
    seconds_since_auth: Number | None = None
    failed_attempts: Number = Number(constant=0)

    @field_validator("assurance")
    @classmethod
    def _levels(cls, v: Categorical) -> Categorical:
        return _in_levels(v, ("none", "low", "substantial", "high"))


class TransactionDist(BaseModel):
    model_config = _STRICT
    present: Probability = 1.0
    kind: Categorical
    value: Number
    currency: Categorical = Categorical(weights={"USD": 1.0})


class DeviceDist(BaseModel):
    model_config = _STRICT
    present: Probability = 1.0
    posture: Categorical
    new_device: Probability = 0.0
    geo_mismatch: Probability = 0.0

    @field_validator("posture")
    @classmethod
    def _levels(cls, v: Categorical) -> Categorical:
        return _in_levels(v, ("managed", "known", "unknown", "compromised"))


def _in_levels(v: Categorical, levels: tuple[str, ...]) -> Categorical:
    bad = [k for k in v.weights if k not in levels]
    if bad:
        raise ValueError(f"expected values among {', '.join(levels)}; got {', '.join(bad)}")
    return v


class Context(BaseModel):
    """The session context a scenario's sessions carry (the request fields policies read)."""

    model_config = _STRICT
    channel: Categorical
    kind: Categorical
    participant: Categorical
    consent: Consent
    identity: IdentityDist
    transaction: TransactionDist | None = None
    device: DeviceDist | None = None

    @field_validator("channel")
    @classmethod
    def _channels(cls, v: Categorical) -> Categorical:
        return _in_levels(v, ("conference", "support_call"))

    @field_validator("participant")
    @classmethod
    def _participants(cls, v: Categorical) -> Categorical:
        return _in_levels(v, ("internal", "external"))

    @field_validator("kind")
    @classmethod
    def _kinds(cls, v: Categorical) -> Categorical:
        bad = [k for k in v.weights if not re.match(r"^[a-z][a-z0-9_]*$", k)]
        if bad:
            raise ValueError(f"expected session kinds like password_reset; got {', '.join(bad)}")
        return v


class AudioDraw(BaseModel):
    """Which rows of the detector response profile this scenario's audio is drawn from."""

    model_config = _STRICT
    label: Literal["bonafide", "spoof"]
    conditions: list[str] = Field(min_length=1, description="Profile conditions, e.g. mulaw_8k.")
    systems: list[str] = Field(
        default=["*"], min_length=1, description="Glob patterns over the clips' system column."
    )
    corpora: list[str] = Field(default=["*"], min_length=1, description="Glob patterns.")

    def matches(self, label: str, condition: str, system: str, corpus: str) -> bool:
        return (
            label == self.label
            and condition in self.conditions
            and any(fnmatch(system, p) for p in self.systems)
            and any(fnmatch(corpus, p) for p in self.corpora)
        )


class HandSet(BaseModel):
    """A distribution chosen by hand (no detector measured it)."""

    model_config = _STRICT
    score: Number
    confidence: Number

    @model_validator(mode="after")
    def _unit(self) -> HandSet:
        for name in ("score", "confidence"):
            n: Number = getattr(self, name)
            if n.lognormal is not None or n.poisson is not None:
                raise ValueError(f"{name}: expected a distribution on [0, 1] (beta, uniform, …)")
        return self


class SignalSpec(BaseModel):
    """One signal a scenario's sessions produce.

    ``from_profile: true``: score and confidence are the detector's measured output on the
    clip drawn for the session (the scenario's ``audio`` section says which clips); the
    ``fallback`` is hand-set and used only when no profile is given (and reported so).
    Otherwise ``hand_set: true`` with ``score`` and ``confidence`` distributions.
    """

    model_config = _STRICT
    present: Probability = Field(
        default=1.0, description="Probability the session carries this signal at all."
    )
    from_profile: bool = False
    hand_set: bool = False
    score: Number | None = None
    confidence: Number | None = None
    fallback: HandSet | None = None
    why: str = Field(default="", max_length=300, description="Why a hand-set value is plausible.")

    @model_validator(mode="after")
    def _source(self) -> SignalSpec:
        if self.from_profile:
            if self.hand_set or self.score is not None or self.confidence is not None:
                raise ValueError(
                    "from_profile: a profile-drawn signal takes no hand_set, score or confidence "
                    "(put a hand-set fallback under fallback)"
                )
            if self.fallback is None:
                raise ValueError(
                    "fallback: expected a hand-set {score, confidence} used when no profile is given"
                )
        else:
            if not self.hand_set:
                raise ValueError(
                    "expected from_profile: true, or hand_set: true with score and confidence "
                    "(hand-set distributions are reported as such)"
                )
            if self.score is None or self.confidence is None:
                raise ValueError("hand_set: expected both score and confidence distributions")
            HandSet(score=self.score, confidence=self.confidence)  # same [0, 1] check
            if self.fallback is not None:
                raise ValueError("fallback: only a from_profile signal has a fallback")
        return self

    def hand_dist(self) -> HandSet:
        if self.fallback is not None:
            return self.fallback
        assert self.score is not None and self.confidence is not None
        return HandSet(score=self.score, confidence=self.confidence)


class Scenario(BaseModel):
    """One scenario file."""

    model_config = _STRICT
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    ground_truth: Literal["attack", "legitimate"]
    attack_type: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    share: float = Field(gt=0.0, le=1.0, description="Fraction of all traffic.")
    context: Context
    audio: AudioDraw | None = None
    signals: dict[str, SignalSpec] = Field(default_factory=dict)

    @field_validator("signals")
    @classmethod
    def _names(cls, v: dict[str, SignalSpec]) -> dict[str, SignalSpec]:
        bad = [n for n in v if not SIGNAL_NAME.match(n)]
        if bad:
            raise ValueError(
                f"expected signal names like audio.synthetic_voice; got {', '.join(bad)}"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.ground_truth == "attack" and self.attack_type is None:
            raise ValueError("attack_type: expected for an attack scenario (e.g. voice_clone)")
        if self.ground_truth == "legitimate" and self.attack_type is not None:
            raise ValueError("attack_type: a legitimate scenario has none")
        profiled = [n for n, s in self.signals.items() if s.from_profile]
        if profiled and self.audio is None:
            raise ValueError(
                f"audio: expected a profile draw (label, conditions) for {', '.join(profiled)}"
            )
        return self

    @property
    def is_attack(self) -> bool:
        return self.ground_truth == "attack"

    def hand_set_signals(self) -> list[str]:
        return sorted(n for n, s in self.signals.items() if not s.from_profile)


def load_scenario(path: Path) -> Scenario:
    """One scenario file; ``ScenarioError`` names the file and every field at fault."""
    try:
        data = load_yaml(path)
    except FileRefused as exc:
        raise ScenarioError([str(exc)]) from None
    if not isinstance(data, dict):
        raise ScenarioError([f"{path}: expected a mapping at the top level"])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(str(path), exc)) from None
    if scenario.id != path.stem:
        raise ScenarioError(
            [f"{path}: id: expected the file name {path.stem!r}, got {scenario.id!r}"]
        )
    return scenario


def load_catalog(directory: Path = CATALOG_DIR, only: list[str] | None = None) -> list[Scenario]:
    """Every scenario of a folder (all problems at once), optionally only the named ones.

    The catalog's shares must add up to 1 (they are fractions of all traffic); a selection
    keeps their proportions.
    """
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ScenarioError([f"{directory}: no scenario files (*.yaml)"])
    if len(files) > MAX_SCENARIOS:
        raise ScenarioError([f"{directory}: more than {MAX_SCENARIOS} scenario files"])
    problems: list[str] = []
    out: list[Scenario] = []
    for f in files:
        try:
            out.append(load_scenario(f))
        except ScenarioError as exc:
            problems += exc.problems
    if problems:
        raise ScenarioError(problems)
    total = sum(s.share for s in out)
    if abs(total - 1.0) > 1e-6:
        raise ScenarioError(
            [f"{directory}: share: expected the scenarios' shares to add up to 1, got {total:.6g}"]
        )
    if only:
        known = {s.id for s in out}
        unknown = [i for i in only if i not in known]
        if unknown:
            raise ScenarioError(
                [
                    f"--scenarios: unknown scenario {', '.join(map(repr, unknown))}; "
                    f"known: {', '.join(sorted(known))}"
                ]
            )
        out = [s for s in out if s.id in set(only)]
    return out
