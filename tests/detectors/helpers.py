"""Shared fixtures' helpers: real clips from the shared data, synthetic audio."""

from __future__ import annotations

import csv
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from detectors.audio_io import load_audio, shared_data_dir

SR = 16_000


@lru_cache(maxsize=1)
def manifest() -> list[dict[str, str]]:
    path = shared_data_dir() / "audio" / "manifest.csv"
    if not path.is_file():
        why = f"shared data not found at {path} (set LIVEGUARD_SHARED_DATA)"
        # CI (.ci/run) requires the data: there a missing dataset is a failure, not a skip.
        if os.environ.get("LIVEGUARD_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(why)
        pytest.skip(why)
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def toy_windows(n: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """`n` made-up window arrays (`frontend.window_frames` layout), half bona fide and half
    spoof whose frame-to-frame band changes are half as large (an over-smooth vocoder), and
    their labels."""
    from detectors.frontend import FINE_COL, N_BANDS, WINDOW_COLUMNS, WINDOW_FRAMES

    rng = np.random.default_rng(seed)
    windows = np.zeros((n, WINDOW_FRAMES, WINDOW_COLUMNS), np.float32)
    labels = np.r_[np.zeros(n // 2), np.ones(n // 2)].astype(int)
    jitter = np.where(labels[:, None, None] == 1, 0.5, 1.0)
    windows[:, :, :N_BANDS] = rng.standard_normal((n, WINDOW_FRAMES, N_BANDS)) * jitter
    windows[:, :, N_BANDS] = -20.0
    windows[:, :, N_BANDS + 1] = 1.0
    windows[:, :, FINE_COL:] = rng.standard_normal((n, WINDOW_FRAMES, WINDOW_COLUMNS - FINE_COL))
    return windows, labels


def clip_path(system_prefix: str, index: int = 0, label: str | None = None) -> Path:
    rows = [
        r
        for r in manifest()
        if r["system"].startswith(system_prefix) and (label is None or r["label"] == label)
    ]
    return shared_data_dir() / "audio" / rows[index]["path"]


def speech(system_prefix: str = "LibriSpeech train", index: int = 0) -> np.ndarray:
    return load_audio(clip_path(system_prefix, index))


def speakers_clips(system_prefix: str = "LibriSpeech train") -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for r in manifest():
        if r["system"].startswith(system_prefix):
            out.setdefault(r["speaker"], []).append(shared_data_dir() / "audio" / r["path"])
    return out


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, amp: float = 0.1, seed: int = 0) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def run_detectors(
    dets: list,
    parties: dict[str, np.ndarray],
    metadata: dict | None = None,
    series: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> list:
    """Stream audio (per party) through a real runtime, hop by hop; returns emissions."""
    from prometheus_client import CollectorRegistry

    from detectors.runtime import StreamingRuntime

    rt = StreamingRuntime(dets, registry=CollectorRegistry())
    rt.start()
    rt.open_session("t", metadata=metadata or {})
    out = []
    n = max(len(x) for x in parties.values())
    for s in range(0, n, SR):
        for name, (t, v) in (series or {}).items():  # series arrive alongside the audio
            sel = (t >= s * 1000 / SR) & (t < (s + SR) * 1000 / SR)
            if sel.any():
                rt.push_series("t", name, t[sel], v[sel])
        for party, x in parties.items():
            rt.push_audio("t", x[s : s + SR], party=party)
        out.extend(rt.drain())
    out.extend(rt.close_session("t"))
    return out


def last(emissions: list, name: str):
    sigs = [e.signal for e in emissions if e.signal.name == name]
    return sigs[-1] if sigs else None
