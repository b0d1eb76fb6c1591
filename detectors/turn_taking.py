"""behavior.turn_taking: machine-like conversation rhythm.

From the VAD of both parties (windows tagged with party "agent" and "remote"), speech
turns are segmented and the remote party's response latency (end of the agent's turn to
the start of the reply) is measured. People answer with variable latencies and sometimes
talk over the agent; a voice bot driven by ASR -> LLM -> TTS tends to answer after a
near-constant pipeline delay and never overlaps. Only segment times are kept.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import BaseDetector
from detectors.protocol import Window
from detectors.vad import CHUNK, SR
from signals import Evidence, Modality, Signal, sigmoid

CHUNK_MS = CHUNK * 1000 // SR


@dataclass
class _Track:
    speaking: bool = False
    start_ms: float = 0.0
    silence_ms: float = 0.0
    segments: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=64))


@dataclass
class TurnTakingState:
    tracks: dict[str, _Track] = field(default_factory=dict)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=32))
    overlaps: int = 0
    last_agent_end: float | None = None


class TurnTakingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    caller: str = "remote"
    agent: str = "agent"
    min_pause_ms: int = Field(300, description="Silence that ends a turn.")
    min_turns: int = 4
    threshold: float = 0.5


def update_track(
    track: _Track, probs: np.ndarray, start_ms: float, cfg: TurnTakingConfig
) -> list[tuple[float, float]]:
    """Advance one party's VAD track; returns segments that ended in this window."""
    ended = []
    for i, p in enumerate(probs):
        t = start_ms + i * CHUNK_MS
        if p >= cfg.threshold:
            if not track.speaking:
                track.speaking, track.start_ms = True, t
            track.silence_ms = 0.0
        elif track.speaking:
            track.silence_ms += CHUNK_MS
            if track.silence_ms >= cfg.min_pause_ms:
                seg = (track.start_ms, t - track.silence_ms + CHUNK_MS)
                track.segments.append(seg)
                ended.append(seg)
                track.speaking = False
    return ended


class TurnTakingDetector(BaseDetector):
    name: ClassVar[str] = "behavior.turn_taking"
    version: ClassVar[str] = "1.0.0"
    modality: ClassVar[Modality] = Modality.behavior
    consumes: ClassVar[tuple[str, ...]] = ("features.speech_activity",)
    config_model: ClassVar[type[BaseModel]] = TurnTakingConfig

    def new_state(self) -> TurnTakingState:
        return TurnTakingState()

    def process(self, window: Window, state: TurnTakingState) -> Signal | None:
        cfg: TurnTakingConfig = self.config  # type: ignore[assignment]
        f = window.features
        if f is None or window.party not in (cfg.caller, cfg.agent):
            return None
        track = state.tracks.setdefault(window.party, _Track())
        # A caller turn that starts while the agent is still speaking is an overlap.
        agent = state.tracks.get(cfg.agent)
        was_speaking = track.speaking
        update_track(track, f.vad, window.start_ms, cfg)
        if window.party == cfg.agent:
            if track.segments:
                state.last_agent_end = track.segments[-1][1]
            return None
        if track.speaking and not was_speaking and agent is not None:
            start = track.start_ms
            # The agent's track is already updated to the end of this hop, so "talking over"
            # is judged on segment times, not on the agent's state right now.
            agent_busy = (agent.speaking and agent.start_ms < start) or any(
                a0 < start < a1 for a0, a1 in list(agent.segments)[-2:]
            )
            if agent_busy:
                state.overlaps += 1
                state.last_agent_end = None
            elif state.last_agent_end is not None and start >= state.last_agent_end:
                state.latencies.append(start - state.last_agent_end)
                state.last_agent_end = None
        if len(state.latencies) < cfg.min_turns:
            return None
        lat = np.array(state.latencies) / 1000.0
        mean, cv = float(lat.mean()), float(lat.std() / (lat.mean() + 1e-3))
        turns = len(lat) + state.overlaps
        overlap_rate = state.overlaps / turns
        # People: cv around 0.5-1 and some overlap; bots: cv well under 0.25, no overlap.
        score = sigmoid(6.0 * (0.3 - cv) - 8.0 * overlap_rate + (0.5 if 0.4 < mean < 2.5 else 0.0))
        conf = min(1.0, len(lat) / 8.0)
        ev = [
            Evidence(
                code="behavior.machine_turn_taking"
                if score >= 0.5
                else "behavior.human_turn_taking",
                message=(
                    f"Replies come after an unusually constant delay ({mean:.2f} s ± {lat.std():.2f})"
                    if score >= 0.5
                    else f"Natural reply timing ({mean:.2f} s ± {lat.std():.2f})"
                ),
                value=round(cv, 3),
            ),
            Evidence(
                code="behavior.overlap_rate",
                message=f"Talks over the agent in {overlap_rate:.0%} of turns",
                value=round(overlap_rate, 3),
            ),
        ]
        return self.signal(self.one_sided(score), conf, ev, window.start_ms + window.duration_ms)
