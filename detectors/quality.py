"""audio.quality: is there speech, and is the audio good enough to judge?

The measures (Silero VAD speech presence, SNR, bandwidth, clipping, packet-loss gaps) are
computed once per window by the front-end; this detector reports them. Its score is 0.5 —
poor audio is not evidence of manipulation, so it adds nothing to fusion — and its
confidence is the usability of the window. Other audio detectors scale their confidence
by the same quality figure.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from detectors.base import BaseDetector
from detectors.protocol import Window
from signals import Evidence, Modality, Signal


class QualityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    parties: tuple[str, ...] = ("remote",)
    min_snr_db: float = 12.0


class AudioQualityDetector(BaseDetector):
    name: ClassVar[str] = "audio.quality"
    version: ClassVar[str] = "1.0.0"
    modality: ClassVar[Modality] = Modality.audio
    consumes: ClassVar[tuple[str, ...]] = ("raw_audio",)
    config_model: ClassVar[type[BaseModel]] = QualityConfig

    def process(self, window: Window, state: object) -> Signal | None:
        cfg: QualityConfig = self.config  # type: ignore[assignment]
        if window.party not in cfg.parties or window.features is None:
            return None
        q = window.features.quality
        ev = [
            Evidence(
                code="audio.quality_index",
                message=f"Audio usable for analysis: {q.quality:.0%}",
                value=round(q.quality, 3),
            )
        ]
        if q.speech_ratio < 0.1:
            ev.append(
                Evidence(
                    code="audio.no_speech",
                    message="Little or no speech in this window",
                    value=round(q.speech_ratio, 3),
                )
            )
        if q.snr_db < cfg.min_snr_db and q.speech_ratio >= 0.2:
            ev.append(
                Evidence(
                    code="audio.low_snr",
                    message=f"Noisy audio (SNR about {q.snr_db:.0f} dB)",
                    value=round(q.snr_db, 1),
                )
            )
        if q.narrowband:
            ev.append(
                Evidence(
                    code="audio.narrowband",
                    message=f"Narrowband telephony audio (up to {q.bandwidth_hz:.0f} Hz)",
                    value=round(q.bandwidth_hz),
                )
            )
        if q.clipping_ratio > 0.001:
            ev.append(
                Evidence(
                    code="audio.clipping",
                    message="Audio is clipped (overdriven)",
                    value=round(q.clipping_ratio, 4),
                )
            )
        if q.gap_ratio > 0.02:
            ev.append(
                Evidence(
                    code="audio.packet_loss",
                    message=f"Dropouts: {q.gap_ratio:.0%} of the audio is missing",
                    value=round(q.gap_ratio, 3),
                )
            )
        return self.signal(0.5, q.quality, ev, window.duration_ms)
