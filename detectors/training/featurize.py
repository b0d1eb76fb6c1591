"""Feature extraction over a labelled set, per degradation condition, cached on disk."""

from __future__ import annotations

import hashlib

import numpy as np

from detectors.audio_io import REPO_ROOT, load_audio
from detectors.dataset import Clip
from detectors.degrade import CONDITIONS
from detectors.frontend import clip_vectors

CACHE_DIR = REPO_ROOT / ".cache" / "detectors"


def _key(clips: list[Clip], condition: str) -> str:
    h = hashlib.sha256(condition.encode())
    for c in clips:
        h.update(str(c.path).encode())
    h.update(b"features-v1")
    return h.hexdigest()[:16]


def featurize(
    clips: list[Clip], condition: str = "clean", cache: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Hop vectors for all clips and the clip index of each vector."""
    path = CACHE_DIR / f"{condition}-{_key(clips, condition)}.npz"
    if cache and path.is_file():
        data = np.load(path)
        return data["x"], data["clip"]
    fn = CONDITIONS[condition]
    xs, idx = [], []
    for i, clip in enumerate(clips):
        audio = load_audio(clip.path)
        seed = int(hashlib.sha1(str(clip.path).encode()).hexdigest()[:8], 16)
        v = clip_vectors(fn(audio, seed))
        xs.append(v)
        idx.append(np.full(len(v), i))
    x = np.concatenate(xs) if xs else np.zeros((0, 0), np.float32)
    clip_idx = np.concatenate(idx) if idx else np.zeros(0, int)
    if cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, x=x, clip=clip_idx)
    return x, clip_idx
