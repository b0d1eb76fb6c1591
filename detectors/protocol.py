"""The detector plugin contract: what every built-in and third-party detector provides.

A detector turns one window of one session (audio samples, the shared audio features
computed once per window, optional feature series such as a mouth-openness track, and
session metadata) into at most one `Signal`. Per-session streaming state is owned by the
runtime and handed back on every call, so a detector instance is shared by all sessions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from signals import Modality, Signal

if TYPE_CHECKING:
    from detectors.frontend import AudioFeatures

#: Data categories of the data-flow manifest (governance). A detector declares what it
#: consumes as "category" or "category.element" (e.g. "features.mouth_openness"), so the
#: governance check can compare a policy's detectors against its manifest.
DATA_CATEGORIES: frozenset[str] = frozenset(
    {"raw_audio", "raw_video", "features", "scores", "metadata", "identity"}
)


class DetectorState(StrEnum):
    stopped = "stopped"
    running = "running"
    failed = "failed"


class DetectorStatus(BaseModel):
    """What `status()` reports; surfaced by the runtime and the CLI."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    state: DetectorState
    model_digest: str | None = None
    detail: str = ""


@dataclass(slots=True)
class Series:
    """A compact feature series (e.g. mouth openness) sampled at `times_ms`."""

    times_ms: np.ndarray
    values: np.ndarray


@dataclass(slots=True)
class Window:
    """One hop of one session, as handed to detectors.

    `samples` holds the raw audio of this window only; the runtime sets it (and the derived
    spectrogram) to None as soon as every detector has seen the window, so no raw media
    outlives its window.
    """

    session_id: str
    seq: int
    start_ms: int
    duration_ms: int
    sample_rate: int
    samples: np.ndarray | None
    party: str = "remote"
    risk: float = 0.0
    series: dict[str, Series] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    features: AudioFeatures | None = None

    def release(self) -> None:
        """Forget the raw samples and anything derived frame by frame from them."""
        self.samples = None
        if self.features is not None:
            self.features.release()


@runtime_checkable
class Detector(Protocol):
    """The contract checked at registration (see `detectors.registry`)."""

    name: ClassVar[str]  # the signal name it emits, "modality.what"
    version: ClassVar[str]  # semver of detector + model
    modality: ClassVar[Modality]
    consumes: ClassVar[tuple[str, ...]]  # data elements, see DATA_CATEGORIES
    config_model: ClassVar[type[BaseModel]]

    def start(self) -> None:
        """Load models; called once before the first window."""

    def stop(self) -> None:
        """Release models."""

    def status(self) -> DetectorStatus: ...

    def new_state(self) -> Any:
        """Fresh per-session streaming state (must be bounded in size)."""

    def process(self, window: Window, state: Any) -> Signal | None: ...


class BatchDetector(Detector, Protocol):
    """Optional: detectors that can score windows of many sessions in one model call."""

    def process_batch(
        self, windows: Sequence[Window], states: Sequence[Any]
    ) -> list[Signal | None]: ...


def detector_ref(name: str, version: str) -> str:
    """`Signal.detector` value: the short name after the modality, e.g. 'synthetic_voice@1.0.0'."""
    return f"{name.split('.', 1)[-1]}@{version}"
