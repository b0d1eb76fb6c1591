"""Stream a recorded call through the detectors, window by window (`liveguard analyze`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from detectors.audio_io import SR, AudioInputError, load_audio
from detectors.dataset import LABELS, manifest_rows
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
        discover(detectors, edge_only=detectors is None),
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


# --- batch analysis of recordings (`liveguard analyze --manifest FILE.csv`) -----------------


@dataclass
class FileResult:
    path: str
    label: str | None
    system: str | None
    signals: list[Signal]
    error: str | None = None
    #: detectors that raised on this file's windows: their signals are missing for that
    #: reason (the runtime logs the first failure of each), not for lack of speech
    failed_detectors: tuple[str, ...] = ()


def read_file_manifest(manifest: Path) -> list[tuple[Path, dict[str, str]]]:
    """Rows of a `path,label[,system]` CSV (the `detectors evaluate` format); paths are
    relative to the manifest's folder unless absolute."""
    if not manifest.is_file():
        raise AudioInputError(f"manifest {manifest} not found")
    try:
        names, rows = manifest_rows(manifest)
    except ValueError as exc:
        raise AudioInputError(str(exc)) from None
    if "path" not in names:
        raise AudioInputError(f"manifest {manifest} has no 'path' column")
    files = []
    for line, r in enumerate(rows, start=2):  # line 1 is the header
        if not (r.get("path") or "").strip():
            continue
        label = (r.get("label") or "").strip()
        # analysis does not need the label, but it echoes it: a typo there would pass as
        # ground truth into whatever scores the output, so it is refused like evaluate does
        if label and label.lower() not in LABELS:
            raise AudioInputError(
                f"manifest {manifest} line {line}: label {label!r} is not one of "
                f"{', '.join(sorted(LABELS))} (or empty)"
            )
        files.append((manifest.parent / r["path"].strip(), r))
    if not files:
        raise AudioInputError(f"manifest {manifest} lists no files")
    return files


def analyze_files(
    files: list[tuple[Path, dict[str, str]]],
    hop_ms: int = 1_000,
    concurrency: int = 32,
    detectors: list[str] | None = None,
    on_done: Callable[[int], None] | None = None,
) -> Iterator[FileResult]:
    """Stream many recordings through one runtime at once, as concurrent live calls.

    Up to `concurrency` files are open as sessions; each round pushes one hop of every open
    file and runs the runtime's micro-batches over all of them, so the models see batches of
    windows from many files. Results come back in manifest order; a file that cannot be read
    yields an error result instead of stopping the run.
    """
    rt = StreamingRuntime(
        discover(detectors, edge_only=detectors is None),
        RuntimeConfig(hop_ms=hop_ms),
        registry=CollectorRegistry(),
    )
    rt.start()
    hop = SR * hop_ms // 1000
    pending = list(enumerate(files))[::-1]  # popped from the end: manifest order
    active: dict[str, tuple[int, np.ndarray, int, list[Emission]]] = {}
    done: dict[int, FileResult] = {}
    next_out = 0

    def result(
        i: int, signals: list[Signal], error: str | None = None, failed: Iterable[str] = ()
    ) -> FileResult:
        path, row = files[i]
        return FileResult(
            str(path), row.get("label"), row.get("system"), signals, error, tuple(sorted(failed))
        )

    try:
        while pending or active:
            while pending and len(active) < concurrency:
                i, (path, _) = pending.pop()
                try:
                    x = load_audio(path)
                except AudioInputError as exc:
                    done[i] = result(i, [], str(exc))
                    continue
                sid = f"f{i}"
                rt.open_session(sid)
                active[sid] = (i, x, 0, [])
            for sid, (i, x, pos, ems) in list(active.items()):
                rt.push_audio(sid, x[pos : pos + hop])
                active[sid] = (i, x, pos + hop, ems)
            for e in rt.drain():
                active[e.session_id][3].append(e)
            for sid, (i, x, pos, ems) in list(active.items()):
                if pos >= len(x):
                    failed: set[str] = set()
                    ems.extend(rt.close_session(sid, failed))
                    done[i] = result(i, latest_signals(ems), failed=failed)
                    del active[sid]
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
                if on_done:
                    on_done(next_out)
    finally:
        rt.stop()


class SecondPassRunner:
    """Stage 2 for recordings: the detectors a decision's ``second_pass`` obligation lists,
    run over the same file (for a recording the file is the window a live call's next
    windows would have been). One runtime per set of names, built on first use and kept, so
    a batch loads each second-pass model once; names not registered are skipped."""

    def __init__(self, hop_ms: int = 1_000) -> None:
        self._hop_ms = hop_ms
        self._runtimes: dict[frozenset[str], StreamingRuntime] = {}
        self._n = 0

    def run(
        self, path: Path, names: frozenset[str], failures: set[str] | None = None
    ) -> list[Signal]:
        """The listed detectors' final signals for the file; `failures`, when given,
        receives the names of those that raised on its windows."""
        rt = self._runtimes.get(names)
        if rt is None:
            registry = discover(sorted(names))
            if not registry.names():
                return []
            rt = StreamingRuntime(
                registry, RuntimeConfig(hop_ms=self._hop_ms), registry=CollectorRegistry()
            )
            rt.start()
            self._runtimes[names] = rt
        x = load_audio(path)
        self._n += 1
        sid = f"second-pass-{self._n}"
        rt.open_session(sid)
        hop = SR * self._hop_ms // 1000
        ems: list[Emission] = []
        for start in range(0, len(x), hop):
            rt.push_audio(sid, x[start : start + hop])
            ems.extend(rt.drain())
        ems.extend(rt.close_session(sid, failures))
        return latest_signals([e for e in ems if e.session_id == sid])

    def close(self) -> None:
        for rt in self._runtimes.values():
            rt.stop()
        self._runtimes.clear()
