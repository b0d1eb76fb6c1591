"""video.face_dynamics: does the face move like a live person's?

Consumes the compact series an edge landmark tracker sends (see `detectors.video`):
face present, eye aspect ratio, landmark jitter, head yaw — never frames. Cues: blink rate
(early face-swap and avatar pipelines blink rarely), non-rigid landmark jitter (temporal
flicker of face swaps), an unnaturally still head (a photo or a frozen avatar), and how
often the face is missing (which lowers confidence rather than raising suspicion).
Thresholds are hand-set from the literature, not learned: treat the score as uncalibrated.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import BaseDetector
from detectors.protocol import Window
from signals import Evidence, Modality, Signal, sigmoid


class FaceDynamicsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    parties: tuple[str, ...] = ("remote",)
    min_face_seconds: float = Field(5.0, description="Face time needed before any verdict.")
    full_confidence_seconds: float = 20.0
    low_blink_per_min: float = Field(3.0, description="People blink ~8-20/min; far fewer is odd.")
    jitter_threshold: float = Field(0.03, description="Median non-rigid motion per frame.")
    still_head_deg: float = Field(0.3, description="Yaw std below this over the window: frozen.")


@dataclass
class FaceDynamicsState:
    last_t: float = -1.0
    frames: int = 0
    face_frames: int = 0
    face_ms: float = 0.0
    blinks: int = 0
    in_blink: int = 0  # frames into the current blink, 0 = eyes open
    ear_open: float | None = None
    jitter: deque[float] = field(default_factory=lambda: deque(maxlen=500))
    yaw: deque[float] = field(default_factory=lambda: deque(maxlen=250))


class FaceDynamicsDetector(BaseDetector):
    name: ClassVar[str] = "video.face_dynamics"
    version: ClassVar[str] = "0.1.0"
    modality: ClassVar[Modality] = Modality.video
    consumes: ClassVar[tuple[str, ...]] = (
        "features.face_present",
        "features.eye_aspect_ratio",
        "features.landmark_jitter",
        "features.head_pose",
    )
    config_model: ClassVar[type[BaseModel]] = FaceDynamicsConfig

    def new_state(self) -> FaceDynamicsState:
        return FaceDynamicsState()

    def _update(self, st: FaceDynamicsState, window: Window) -> bool:
        present = window.series.get("face_present")
        if present is None:
            return False
        new = present.times_ms > st.last_t
        if not new.any():
            return False
        times = present.times_ms[new]
        faces = present.values[new] > 0.5

        def values(name: str) -> np.ndarray:
            s = window.series.get(name)
            if s is None or len(s.times_ms) == 0:
                return np.full(len(times), np.nan)
            return np.interp(times, s.times_ms, s.values, left=np.nan, right=np.nan)

        ear, jit, yaw = values("eye_aspect_ratio"), values("landmark_jitter"), values("head_yaw")
        dt = float(np.median(np.diff(present.times_ms))) if len(present.times_ms) > 1 else 40.0
        for i, face in enumerate(faces):
            st.frames += 1
            if not face:
                st.in_blink = 0
                continue
            st.face_frames += 1
            st.face_ms += dt
            e = ear[i]
            if not np.isnan(e):
                if st.ear_open is None:
                    st.ear_open = e
                if st.in_blink == 0 and e < 0.65 * st.ear_open:
                    st.in_blink = 1
                elif st.in_blink > 0:
                    if e > 0.8 * st.ear_open:
                        if st.in_blink * dt <= 600:  # a blink, not eyes closed
                            st.blinks += 1
                        st.in_blink = 0
                    else:
                        st.in_blink += 1
                if st.in_blink == 0:
                    st.ear_open = 0.95 * st.ear_open + 0.05 * e
            if not np.isnan(jit[i]):
                st.jitter.append(float(jit[i]))
            if not np.isnan(yaw[i]):
                st.yaw.append(float(yaw[i]))
        st.last_t = float(times[-1])
        return True

    def process(self, window: Window, state: FaceDynamicsState) -> Signal | None:
        cfg: FaceDynamicsConfig = self.config  # type: ignore[assignment]
        if window.party not in cfg.parties or not self._update(state, window):
            return None
        face_s = state.face_ms / 1000.0
        missing = 1.0 - state.face_frames / max(1, state.frames)
        if face_s < cfg.min_face_seconds:
            if missing > 0.5 and state.frames >= 25:
                ev = [
                    Evidence(
                        code="video.face_missing",
                        message=f"No face in {missing:.0%} of the video",
                        value=round(missing, 3),
                    )
                ]
                return self.signal(0.5, 0.05, ev, int(state.frames * 40))
            return None
        blink_rate = state.blinks / (face_s / 60.0)
        jit = float(np.median(state.jitter)) if state.jitter else 0.0
        yaw_std = float(np.std(state.yaw)) if len(state.yaw) > 10 else float("nan")
        lo = -1.5
        ev: list[Evidence] = []
        if face_s >= 15 and blink_rate < cfg.low_blink_per_min:
            lo += 1.5
            ev.append(
                Evidence(
                    code="video.rare_blinking",
                    message=f"Blinks rarely ({blink_rate:.1f} per minute)",
                    value=round(blink_rate, 2),
                )
            )
        if jit > cfg.jitter_threshold:
            lo += min(3.0, 1.5 * jit / cfg.jitter_threshold)
            ev.append(
                Evidence(
                    code="video.landmark_jitter",
                    message="Facial landmarks flicker between frames",
                    value=round(jit, 4),
                )
            )
        if not np.isnan(yaw_std) and yaw_std < cfg.still_head_deg:
            lo += 1.0
            ev.append(
                Evidence(
                    code="video.still_head",
                    message="The head does not move at all",
                    value=round(yaw_std, 3),
                )
            )
        if not ev:
            ev.append(
                Evidence(
                    code="video.natural_face_motion",
                    message=f"Face moves naturally (blinks {blink_rate:.0f}/min)",
                    value=round(blink_rate, 2),
                )
            )
        if missing > 0.3:
            ev.append(
                Evidence(
                    code="video.face_missing",
                    message=f"No face in {missing:.0%} of frames",
                    value=round(missing, 3),
                )
            )
        conf = (1.0 - missing) * min(1.0, face_s / cfg.full_confidence_seconds)
        return self.signal(self.one_sided(sigmoid(lo)), conf, ev, int(state.face_ms))
