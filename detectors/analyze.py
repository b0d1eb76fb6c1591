"""Stream a recorded call through the detectors, window by window (`liveguard analyze`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from detectors.audio_io import SR, AudioInputError, load_audio
from detectors.registry import discover
from detectors.runtime import Emission, RuntimeConfig, StreamingRuntime
from signals import Signal


@dataclass(frozen=True)
class AnalysisInput:
    audio: Path
    #: feature series by name (e.g. "mouth_openness", or everything `video.FaceSeries` has)
    series: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    two_party: bool = False  # stereo: channel 0 = agent, channel 1 = remote caller
    metadata: dict[str, object] | None = None


def stream_file(
    inp: AnalysisInput,
    hop_ms: int = 1_000,
    on_emission: Callable[[Emission], None] | None = None,
    detectors: list[str] | None = None,
) -> list[Emission]:
    """Feed the file hop by hop, as a live call would arrive; returns every emission."""
    if inp.two_party:
        chans = load_audio(inp.audio, channels="split")
        if chans.shape[0] != 2:
            raise AudioInputError(f"{inp.audio}: --two-party needs a stereo file (agent, caller)")
        parties = {"agent": chans[0], "remote": chans[1]}
    else:
        parties = {"remote": load_audio(inp.audio)}
    if max(len(x) for x in parties.values()) < SR // 10:
        raise AudioInputError(f"audio {inp.audio} is shorter than 0.1 s")
    rt = StreamingRuntime(
        discover(detectors),
        RuntimeConfig(hop_ms=hop_ms),
        registry=CollectorRegistry(),  # a CLI run does not export metrics
    )
    rt.start()
    sid = "analyze"
    rt.open_session(sid, metadata=inp.metadata or {})
    out: list[Emission] = []

    def emit(ems: list[Emission]) -> None:
        for e in ems:
            out.append(e)
            if on_emission:
                on_emission(e)

    hop = SR * hop_ms // 1000
    n = max(len(x) for x in parties.values())
    for start in range(0, n, hop):
        for name, (t, v) in (inp.series or {}).items():
            # the edge sends its series alongside the audio, up to the end of this hop
            sel = (t >= start * 1000 / SR) & (t < (start + hop) * 1000 / SR)
            if sel.any():
                rt.push_series(sid, name, t[sel], v[sel])
        for party, x in parties.items():
            rt.push_audio(sid, x[start : start + hop], party=party)
        emit(rt.drain())
    emit(rt.close_session(sid))
    rt.stop()
    return out


def latest_signals(emissions: list[Emission]) -> list[Signal]:
    """The last signal of each detector: the session-level view the decision is made on."""
    last: dict[str, Signal] = {}
    for e in emissions:
        last[e.signal.name] = e.signal
    return list(last.values())


def iter_table(emissions: list[Emission]) -> Iterator[str]:
    for e in emissions:
        yield format_emission(e)


def format_emission(e: Emission) -> str:
    s = e.signal
    msg = s.evidence[0].message if s.evidence else ""
    return (
        f"[{e.start_ms / 1000:7.1f}s] {s.name:<24} score {s.score:.2f}  "
        f"conf {s.confidence:.2f}  {msg}"
    )
