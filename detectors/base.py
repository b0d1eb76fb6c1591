"""A convenience base class; plugins may use it or implement the protocol from scratch."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from detectors.protocol import DetectorState, DetectorStatus, detector_ref
from signals import Evidence, Modality, Signal


class NoConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BaseDetector:
    name: ClassVar[str]
    version: ClassVar[str]
    modality: ClassVar[Modality]
    consumes: ClassVar[tuple[str, ...]]
    config_model: ClassVar[type[BaseModel]] = NoConfig

    def __init__(self, config: BaseModel | dict[str, Any] | None = None) -> None:
        if config is None:
            config = self.config_model()
        elif isinstance(config, dict):
            config = self.config_model.model_validate(config)
        self.config = config
        self._state = DetectorState.stopped
        self._detail = ""

    def start(self) -> None:
        self._state = DetectorState.running

    def stop(self) -> None:
        self._state = DetectorState.stopped

    def model_digest(self) -> str | None:
        return None

    def status(self) -> DetectorStatus:
        return DetectorStatus(
            name=self.name,
            version=self.version,
            state=self._state,
            model_digest=self.model_digest(),
            detail=self._detail,
        )

    def new_state(self) -> Any:
        return None

    @property
    def ref(self) -> str:
        return detector_ref(self.name, self.version)

    @staticmethod
    def one_sided(p: float, floor: float = 0.4) -> float:
        """Score of an attack-specific detector.

        Policies read a signal's logit as a likelihood ratio for "this session is
        manipulated". Finding no replay (or no voice change, ...) says little about other
        attacks, so the absence of a cue may lower the fused risk only slightly.
        """
        return max(float(p), floor)

    def signal(
        self,
        score: float,
        confidence: float,
        evidence: list[Evidence],
        window_ms: int,
    ) -> Signal:
        """Build this detector's Signal, clamping numerics into the valid range."""
        return Signal(
            name=self.name,
            modality=self.modality,
            score=min(max(float(score), 0.0), 1.0),
            confidence=min(max(float(confidence), 0.0), 1.0),
            evidence=tuple(evidence),
            detector=self.ref,
            window_ms=max(0, int(window_ms)),
        )
