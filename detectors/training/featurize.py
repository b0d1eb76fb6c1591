"""Feature extraction over labelled sets, per degradation condition, cached on disk.

Every (feature set, condition) pair is computed once and kept under `.cache/detectors/`
(gitignored), keyed on the clip paths and the feature set's version, so reruns of training
and evaluation read features instead of decoding and degrading audio again. Clips are
processed in chunks by a small process pool (two workers: the development machine has two
shared cores); ffmpeg conditions send a whole chunk through one encoder run (clips separated
by silence), because starting ffmpeg twice per clip cost more than the codec itself.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from detectors.audio_io import REPO_ROOT, load_audio
from detectors.dataset import Clip
from detectors.degrade import CONDITIONS, FFMPEG_CONDITIONS
from detectors.frontend import clip_vectors, window_bands

CACHE_DIR = REPO_ROOT / ".cache" / "detectors"
CHUNK = 32
GAP = 8_000  # 0.5 s of silence between clips sharing one codec run

#: name -> (per-clip function, version). A version bump invalidates the cache.
FEATURE_SETS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    # synthetic_voice 1.x: mean/std hop vectors (n_hops, 128)
    "hops_v1": (clip_vectors, "features-v1"),
    # synthetic_voice 2.x-4.x and the second pass: per 1 s window, 98 frames x (64 log bands,
    # frame dB, valid flag, 32 fine-structure values, periodicity, ln F0), float16; the
    # recipes before v7 read the first 98 columns, filled by the code that filled windows-v3
    "windows_v4": (window_bands, "windows-v4"),
}


#: The seeds of the shipped models' augmentations (noise, packet loss, clipping, reverberation)
#: were derived from absolute clip paths on the machine that trained them, where the shared
#: data lay at /work/shared/data. A seed now comes from the clip's place in its data set
#: (`Clip.key`) under that same root, so the same clip gets the same noise, and training the
#: same model, wherever the checkout and the data are and however `--data` names them.
SEED_ROOT = "/work/shared/data"


def clip_seed(clip: Clip) -> int:
    name = f"{SEED_ROOT}/{clip.key}" if clip.key else str(clip.path)
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)


def _key(clips: Sequence[Clip], condition: str, version: str) -> str:
    h = hashlib.sha256(condition.encode())
    for c in clips:
        h.update(str(c.path).encode())
    h.update(version.encode())
    return h.hexdigest()[:16]


def cache_path(clips: Sequence[Clip], condition: str, feature_set: str) -> Path:
    version = FEATURE_SETS[feature_set][1]
    return CACHE_DIR / feature_set / f"{condition}-{_key(clips, condition, version)}.npz"


def degrade_chunk(audios: list[np.ndarray], seeds: list[int], condition: str) -> list[np.ndarray]:
    """The condition applied to each clip; ffmpeg conditions run once for the whole chunk."""
    fn = CONDITIONS[condition]
    if condition not in FFMPEG_CONDITIONS or len(audios) == 1:
        return [fn(a, s) for a, s in zip(audios, seeds, strict=True)]
    gap = np.zeros(GAP, np.float32)
    starts, parts, pos = [], [], 0
    for a in audios:
        starts.append(pos)
        parts += [a, gap]
        pos += len(a) + GAP
    y = fn(np.concatenate(parts), 0)
    return [y[s : s + len(a)] for s, a in zip(starts, audios, strict=True)]


def _work(
    paths: list[str], seeds: list[int], condition: str, sets: list[str]
) -> dict[str, list[np.ndarray]]:
    audios = [load_audio(p) for p in paths]
    degraded = degrade_chunk(audios, seeds, condition)
    return {s: [FEATURE_SETS[s][0](x) for x in degraded] for s in sets}


def featurize_many(
    clips: Sequence[Clip],
    conditions: Sequence[str],
    feature_sets: Sequence[str],
    cache: bool = True,
    workers: int | None = None,
    progress: bool = True,
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(feature set, condition) -> (vectors, clip index of each vector), from cache or computed."""
    from detectors.progress import progress_bar

    out: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    todo: dict[str, list[str]] = {}
    for cond in conditions:
        for fs in feature_sets:
            path = cache_path(clips, cond, fs)
            if cache and path.is_file():
                data = np.load(path)
                out[(fs, cond)] = (data["x"], data["clip"])
            else:
                todo.setdefault(cond, []).append(fs)
    if not todo:
        return out
    workers = workers or min(2, os.cpu_count() or 1)
    chunks = [list(range(i, min(i + CHUNK, len(clips)))) for i in range(0, len(clips), CHUNK)]
    with progress_bar(progress) as bar:
        task = bar.add_task("features", total=len(chunks) * len(todo))
        for cond, sets in todo.items():
            bar.update(task, description=f"features {cond}")
            results: list[dict[str, list[np.ndarray]]] = []
            args = [
                ([str(clips[i].path) for i in ch], [clip_seed(clips[i]) for i in ch], cond, sets)
                for ch in chunks
            ]
            if workers > 1:
                with ProcessPoolExecutor(workers) as pool:
                    for r in pool.map(_work, *zip(*args, strict=True)):
                        results.append(r)
                        bar.advance(task)
            else:
                for a in args:
                    results.append(_work(*a))
                    bar.advance(task)
            for fs in sets:
                per_clip = [v for r in results for v in r[fs]]
                x = np.concatenate(per_clip)
                idx = np.concatenate([np.full(len(v), i) for i, v in enumerate(per_clip)])
                out[(fs, cond)] = (x, idx)
                if cache:
                    path = cache_path(clips, cond, fs)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.savez(path, x=x, clip=idx)
    return out


def featurize(
    clips: list[Clip], condition: str = "clean", cache: bool = True, feature_set: str = "hops_v1"
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of one feature set for all clips under one condition, and their clip index."""
    return featurize_many(clips, [condition], [feature_set], cache=cache, progress=False)[
        (feature_set, condition)
    ]


def merge_features(
    first: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    second: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    n_first: int,
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Features of two clip lists as one (the second's clip indices shifted past the first's
    `n_first` clips). A view only the first has stays as it is: the second's clips (training
    aids) are simply absent from it. Each list keeps its own cache entries."""
    out = dict(first)
    for key, (x2, c2) in second.items():
        if key in first:
            x1, c1 = first[key]
            out[key] = (np.concatenate([x1, x2]), np.concatenate([c1, c2 + n_first]))
    return out
