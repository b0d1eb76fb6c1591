"""Detector response profiles: the real detectors over labelled audio under call conditions.

``liveguard simulate profile --data DIR -o profile.parquet`` streams every clip of one or
more labelled sets (``DIR/manifest.csv``: path,label,system,speaker,corpus,…), degraded by
each call condition (μ-law, GSM, noise, packet loss, a loudspeaker replay, …), through the
detector runtime hop by hop as ``liveguard analyze`` does, and keeps per clip × condition
each detector's final signal (score, confidence, detector@version). Scenarios then draw
their audio signals from these rows: the board sees detector performance someone measured.

Bounded: ``limit`` clips (at most ``MAX_CLIPS``), each cut to ``max_seconds``, at most
``os.cpu_count()`` worker processes. The file is written to a temporary name and renamed, so
parallel runs and readers never see half a profile.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import zip_longest
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry

from detectors.audio_io import SR, load_audio
from detectors.dataset import Clip, read_manifest
from detectors.degrade import CONDITIONS, ffmpeg_available, simulate_replay
from detectors.registry import discover
from detectors.runtime import RuntimeConfig, StreamingRuntime
from simulations.files import write_atomically
from simulations.progress import progress_bar

__all__ = [
    "MAX_CLIPS",
    "PROFILE_CONDITIONS",
    "ProfileError",
    "load_profile",
    "profile_conditions",
    "run_profile",
    "select_clips",
]

MAX_CLIPS = 20_000
MAX_SECONDS = 60.0
#: Which detectors a profile runs: the audio ones (the others need video or two parties).
AUDIO_PREFIX = "audio."
METADATA_KEY = b"liveguard.profile"
FFMPEG = frozenset({"alaw_8k", "gsm_codec", "opus_12k", "mp3_24k"})


def _replay(x: np.ndarray, seed: int) -> np.ndarray:
    return simulate_replay(x, seed)


#: Call conditions a profile can apply: the detectors' evaluation conditions plus a replay
#: (a genuine recording through a loudspeaker and a room), which replay scenarios draw on.
PROFILE_CONDITIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    **CONDITIONS,
    "replay": _replay,
}


class ProfileError(ValueError):
    pass


def profile_conditions(names: Sequence[str]) -> list[str]:
    unknown = [c for c in names if c not in PROFILE_CONDITIONS]
    if unknown:
        raise ProfileError(
            f"--conditions: unknown condition {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(PROFILE_CONDITIONS)}"
        )
    if any(c in FFMPEG for c in names) and not ffmpeg_available():
        raise ProfileError(
            "--conditions: codec conditions need ffmpeg (make sysdeps / apt-get install ffmpeg)"
        )
    return list(dict.fromkeys(names))


def select_clips(data_dirs: Sequence[Path], limit: int, seed: int = 0) -> list[tuple[Path, Clip]]:
    """Up to ``limit`` clips, spread over (label, system) groups round-robin so a small run
    still covers every synthesis system and both labels; seeded, so reruns pick the same."""
    if not 1 <= limit <= MAX_CLIPS:
        raise ProfileError(f"--limit: expected 1 to {MAX_CLIPS:,}, got {limit}")
    groups: dict[tuple[int, str], list[tuple[Path, Clip]]] = {}
    for d in data_dirs:
        try:
            clips = read_manifest(Path(d))
        except (FileNotFoundError, ValueError) as exc:
            raise ProfileError(f"--data: {exc}") from None
        for c in clips:
            groups.setdefault((c.label, c.system), []).append((Path(d), c))
    rng = random.Random(seed)
    # Alternate bona fide and spoof groups so even a handful of clips covers both labels.
    by_label = [sorted(k for k in groups if k[0] == lab) for lab in (0, 1)]
    order = [k for pair in zip_longest(*by_label) for k in pair if k is not None]
    for key in order:
        rng.shuffle(groups[key])
    picked: list[tuple[Path, Clip]] = []
    while len(picked) < limit and any(groups[k] for k in order):
        for key in order:
            if groups[key] and len(picked) < limit:
                picked.append(groups[key].pop())
    return picked


@dataclass(frozen=True)
class _Job:
    index: int
    data_dir: str
    path: str
    label: str
    system: str
    corpus: str
    speaker: str
    condition: str
    max_seconds: float
    hop_ms: int


_RUNTIME: StreamingRuntime | None = None


def _runtime(hop_ms: int) -> StreamingRuntime:
    # One runtime per process, started once (model loading is the ~3 s start-up cost).
    global _RUNTIME
    if _RUNTIME is None:
        names = [n for n in _detector_names() if n.startswith(AUDIO_PREFIX)]
        _RUNTIME = StreamingRuntime(
            discover(names), RuntimeConfig(hop_ms=hop_ms), registry=CollectorRegistry()
        )
        _RUNTIME.start()
    return _RUNTIME


def _detector_names() -> list[str]:
    from importlib.metadata import entry_points

    return sorted(ep.name for ep in entry_points(group="liveguard.detectors"))


def _seed(path: str, condition: str) -> int:
    # Degradations draw noise: seeded per clip and condition, so a rerun measures the same.
    return int.from_bytes(hashlib.sha256(f"{path}|{condition}".encode()).digest()[:4], "big")


def _run_one(job: _Job) -> dict[str, Any]:
    rt = _runtime(job.hop_ms)
    x = load_audio(Path(job.data_dir) / job.path)[: int(job.max_seconds * SR)]
    y = np.asarray(PROFILE_CONDITIONS[job.condition](x, _seed(job.path, job.condition)))
    y = y.astype(np.float32)
    sid = f"profile-{job.index}"
    rt.open_session(sid)
    last: dict[str, Any] = {}
    hop = SR * job.hop_ms // 1000
    for start in range(0, len(y), hop):
        rt.push_audio(sid, y[start : start + hop])
        for e in rt.drain():
            last[e.signal.name] = e.signal
    for e in rt.close_session(sid):
        last[e.signal.name] = e.signal
    row: dict[str, Any] = {
        "clip": job.path,
        "data_set": Path(job.data_dir).name,
        "label": job.label,
        "system": job.system,
        "corpus": job.corpus,
        "speaker": job.speaker,
        "condition": job.condition,
        "duration_s": round(len(y) / SR, 3),
    }
    for name, s in last.items():
        row[f"{name}.score"] = float(s.score)
        row[f"{name}.confidence"] = float(s.confidence)
        row[f"{name}.detector"] = s.detector
        digest = getattr(s, "model_digest", None)
        if digest:
            row[f"{name}.model_digest"] = digest
    return row


def _models(hop_ms: int) -> dict[str, str | None]:
    """Each detector's name@version and its model file's digest (what the evidence rests on)."""
    return {d.ref: d.status().model_digest for d in _runtime(hop_ms).detectors}


def _run_batch(jobs: list[_Job]) -> list[dict[str, Any]]:
    return [_run_one(j) for j in jobs]


def run_profile(
    data_dirs: Sequence[Path],
    output: Path,
    *,
    conditions: Sequence[str] = ("clean", "mulaw_8k", "noise_10db", "replay"),
    limit: int = 200,
    max_seconds: float = 8.0,
    jobs: int = 1,
    seed: int = 0,
    hop_ms: int = 1000,
    progress: bool = True,
) -> pa.Table:
    """Profile ``limit`` clips × ``conditions``; writes ``output`` and returns the table."""
    conds = profile_conditions(conditions)
    if not 0.5 <= max_seconds <= MAX_SECONDS:
        raise ProfileError(f"--max-seconds: expected 0.5 to {MAX_SECONDS:g}, got {max_seconds}")
    cpus = os.cpu_count() or 1
    if not 1 <= jobs <= cpus:
        raise ProfileError(f"--jobs: expected 1 to {cpus} (this machine's cores), got {jobs}")
    clips = select_clips(data_dirs, limit, seed)
    if not clips:
        raise ProfileError("--data: the manifests list no clips")
    work = [
        _Job(
            i,
            str(d),
            str(c.path.relative_to(d)),
            "spoof" if c.label else "bonafide",
            c.system,
            c.corpus,
            c.speaker,
            cond,
            max_seconds,
            hop_ms,
        )
        for i, ((d, c), cond) in enumerate((dc, cond) for dc in clips for cond in conds)
    ]
    rows: list[dict[str, Any]] = [{} for _ in work]
    with progress_bar(progress) as bar:
        task = bar.add_task("profiling detectors", total=len(work))
        if jobs == 1:
            for j in work:
                rows[j.index] = _run_one(j)
                bar.advance(task)
            models = _models(hop_ms)
        else:
            # Small batches per task: each worker keeps its runtime; results come back in
            # any order and are put back in job order, so the file does not depend on timing.
            batches = [work[i : i + 4] for i in range(0, len(work), 4)]
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                models = pool.submit(_models, hop_ms).result()
                futures = {pool.submit(_run_batch, b): b for b in batches}
                for fut in as_completed(futures):
                    for j, row in zip(futures[fut], fut.result(), strict=True):
                        rows[j.index] = row
                    bar.advance(task, len(futures[fut]))
    table = _table(rows)
    detectors = sorted({str(v) for r in rows for k, v in r.items() if k.endswith(".detector")})
    meta = {
        "limits": measured_limits(table),
        "conditions": conds,
        "clips": len(clips),
        "max_seconds": max_seconds,
        "hop_ms": hop_ms,
        "seed": seed,
        "data_sets": sorted({Path(d).name for d, _ in clips}),
        "detectors": detectors,
        "models": models,
    }
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True)})
    write_atomically(table, output)
    return table


def _auc(bonafide: np.ndarray, spoof: np.ndarray) -> float | None:
    """P(spoof scores above bona fide), ties half: how well the score separates the labels."""
    if bonafide.size == 0 or spoof.size == 0:
        return None
    greater = (spoof[:, None] > bonafide[None, :]).sum()
    ties = (spoof[:, None] == bonafide[None, :]).sum()
    return float((greater + 0.5 * ties) / (spoof.size * bonafide.size))


def measured_limits(table: pa.Table) -> list[dict[str, Any]]:
    """Per signal × condition: clips of each label that produced it, and the AUC (the limits
    the report states next to the evidence)."""
    labels = np.array(table.column("label").to_pylist(), dtype=object)
    conds = np.array(table.column("condition").to_pylist(), dtype=object)
    out = []
    for col in sorted(c for c in table.column_names if c.endswith(".score")):
        scores = table.column(col).to_numpy()
        for cond in sorted(set(conds)):
            m = (conds == cond) & ~np.isnan(scores)
            b, s = scores[m & (labels == "bonafide")], scores[m & (labels == "spoof")]
            out.append(
                {
                    "signal": col.removesuffix(".score"),
                    "condition": cond,
                    "bonafide": int(b.size),
                    "spoof": int(s.size),
                    "auc": _auc(b, s),
                }
            )
        # A replay is a genuine voice through a loudspeaker: what separates it is the
        # condition, not the label. Bona fide clips replayed vs the same clips clean.
        clean = scores[(conds == "clean") & (labels == "bonafide") & ~np.isnan(scores)]
        replayed = scores[(conds == "replay") & (labels == "bonafide") & ~np.isnan(scores)]
        if clean.size and replayed.size:
            out.append(
                {
                    "signal": col.removesuffix(".score"),
                    "condition": "replay vs clean",
                    "bonafide": int(clean.size),
                    "spoof": int(replayed.size),
                    "auc": _auc(clean, replayed),
                }
            )
    return out


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    fixed = ["clip", "data_set", "label", "system", "corpus", "speaker", "condition", "duration_s"]
    extra = sorted({k for r in rows for k in r} - set(fixed))
    cols: dict[str, pa.Array] = {}
    for k in fixed + extra:
        values = [r.get(k) for r in rows]
        if k.endswith((".score", ".confidence")) or k == "duration_s":
            cols[k] = pa.array([np.nan if v is None else v for v in values], pa.float64())
        else:
            cols[k] = pa.array(values, pa.string())
    return pa.table(cols)


def load_profile(path: Path) -> tuple[pa.Table, dict[str, Any]]:
    """A profile file and its metadata; refuses files that are not profiles."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"--profile: {path}: no such file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ProfileError(f"--profile: {path}: not a Parquet file ({exc})") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    missing = {"label", "system", "corpus", "condition"} - set(table.column_names)
    if raw is None or missing:
        raise ProfileError(
            f"--profile: {path}: not a detector response profile "
            "(write one with 'liveguard simulate profile')"
        )
    return table, json.loads(raw)
