"""session.anomaly: context that makes an impersonation more likely.

Metadata only (no media): device posture, new device, geography mismatch, local time and
failed authentication attempts, as known to the calling service. The weights are prior
log-odds chosen by hand (documented here, not learned): each present factor adds its
weight to a base rate of 5 %; the signal is emitted when the metadata changes.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from detectors.base import BaseDetector
from detectors.protocol import Window
from signals import Evidence, Modality, Signal, sigmoid

FIELDS = ("device_posture", "new_device", "geo_mismatch", "local_hour", "failed_attempts")


class SessionAnomalyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    base_rate: float = 0.05
    compromised_device: float = 2.5
    unknown_device: float = 0.7
    new_device: float = 0.8
    geo_mismatch: float = 1.2
    odd_hour: float = 0.6  # local time 00:00-05:59
    per_failed_attempt: float = 0.6
    max_failed_attempts: int = 4


class SessionAnomalyDetector(BaseDetector):
    name: ClassVar[str] = "session.anomaly"
    version: ClassVar[str] = "1.0.0"
    modality: ClassVar[Modality] = Modality.session
    consumes: ClassVar[tuple[str, ...]] = (
        "metadata.device",
        "metadata.geo",
        "metadata.time",
        "identity.failed_attempts",
    )
    config_model: ClassVar[type[BaseModel]] = SessionAnomalyConfig

    def new_state(self) -> dict[str, Any]:
        return {"last": None}

    def evaluate(self, md: dict[str, Any], window_ms: int = 0) -> Signal | None:
        cfg: SessionAnomalyConfig = self.config  # type: ignore[assignment]
        present = [k for k in FIELDS if md.get(k) is not None]
        if not present:
            return None
        lo = math.log(cfg.base_rate / (1 - cfg.base_rate))
        ev: list[Evidence] = []
        posture = md.get("device_posture")
        if posture == "compromised":
            lo += cfg.compromised_device
            ev.append(
                Evidence(
                    code="session.compromised_device", message="Device is reported compromised"
                )
            )
        elif posture == "unknown":
            lo += cfg.unknown_device
            ev.append(Evidence(code="session.unknown_device", message="Device is not known to us"))
        if md.get("new_device"):
            lo += cfg.new_device
            ev.append(Evidence(code="session.new_device", message="First call from this device"))
        if md.get("geo_mismatch"):
            lo += cfg.geo_mismatch
            ev.append(
                Evidence(
                    code="session.geo_mismatch",
                    message="Location does not match the account's usual location",
                )
            )
        hour = md.get("local_hour")
        if hour is not None and 0 <= int(hour) < 6:
            lo += cfg.odd_hour
            ev.append(
                Evidence(
                    code="session.odd_hour",
                    message=f"Call at an unusual local time ({int(hour):02d}:00)",
                    value=float(hour),
                )
            )
        failed = int(md.get("failed_attempts") or 0)
        if failed:
            lo += cfg.per_failed_attempt * min(failed, cfg.max_failed_attempts)
            ev.append(
                Evidence(
                    code="session.failed_auth",
                    message=f"{failed} failed authentication attempt(s)",
                    value=float(failed),
                )
            )
        if not ev:
            ev.append(
                Evidence(
                    code="session.context_normal", message="Device, location and time look normal"
                )
            )
        conf = len(present) / len(FIELDS)
        return self.signal(sigmoid(lo), conf, ev, window_ms)

    def process(self, window: Window, state: dict[str, Any]) -> Signal | None:
        md = dict(window.metadata or {})
        key = tuple(sorted((k, str(md.get(k))) for k in FIELDS))
        if key == state["last"]:
            return None
        state["last"] = key
        return self.evaluate(md, window.start_ms + window.duration_ms)
