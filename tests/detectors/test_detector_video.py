"""video.face_dynamics on landmark series, and edge extraction when the [video] extra is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors.face_dynamics import FaceDynamicsDetector

from .helpers import last, noise, run_detectors

FPS = 25


def face_series(
    seconds: float,
    blinks_per_min: float,
    jitter: float,
    yaw_deg: float,
    present: float = 1.0,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    t = np.arange(n) * 1000.0 / FPS
    ear = 0.3 + rng.normal(0, 0.005, n)
    if blinks_per_min > 0:
        every = int(60 * FPS / blinks_per_min)
        for start in range(every // 2, n - 4, every):
            ear[start : start + 3] = 0.08  # a 120 ms blink
    face = (rng.random(n) < present).astype(float)
    return {
        "face_present": (t, face),
        "eye_aspect_ratio": (t, ear),
        "landmark_jitter": (t, np.abs(rng.normal(jitter, jitter / 4, n))),
        "head_yaw": (t, yaw_deg * np.sin(2 * np.pi * t / 4000) + rng.normal(0, 0.2, n)),
    }


def run(series: dict, seconds: float):
    return last(
        run_detectors([FaceDynamicsDetector()], {"remote": noise(seconds, 0.01)}, series=series),
        "video.face_dynamics",
    )


def codes(sig) -> set[str]:
    return {e.code for e in sig.evidence}


def test_live_face_scores_low_and_counts_blinks() -> None:
    sig = run(face_series(20, blinks_per_min=15, jitter=0.008, yaw_deg=5), 20)
    assert sig is not None and sig.score == pytest.approx(0.4)  # the floor: nothing odd
    assert codes(sig) == {"video.natural_face_motion"}
    assert sig.evidence[0].value == pytest.approx(15, abs=3.5)  # blinks per minute
    assert sig.confidence > 0.9


def test_no_blinks_flicker_and_frozen_head_score_high() -> None:
    sig = run(face_series(20, blinks_per_min=0, jitter=0.08, yaw_deg=0.0), 20)
    assert sig is not None and sig.score > 0.8
    assert {"video.rare_blinking", "video.landmark_jitter"} <= codes(sig)


def test_missing_face_lowers_confidence() -> None:
    sig = run(face_series(20, 15, 0.008, 5, present=0.5), 20)
    assert sig is not None and "video.face_missing" in codes(sig)
    assert sig.confidence < 0.6


def _write_video(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """An mp4 written with OpenCV (part of the [video] extra), so no ffmpeg is needed."""
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write mp4 here"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_extraction_from_a_video_file(tmp_path: Path) -> None:
    pytest.importorskip("mediapipe", reason="the optional [video] extra is not installed")
    import cv2
    import matplotlib.cbook  # mediapipe depends on matplotlib, which ships the sample photo

    from detectors.video import SERIES_NAMES, extract_series

    rng = np.random.default_rng(0)
    pattern = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(2 * FPS)]
    fs = extract_series(_write_video(tmp_path / "noface.mp4", pattern))
    assert len(fs.times_ms) == 2 * FPS and set(fs.values) == set(SERIES_NAMES)
    assert fs.values["face_present"].sum() == 0  # noise has no face

    photo = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    photo = cv2.resize(photo, (320, int(photo.shape[0] * 320 / photo.shape[1]) // 2 * 2))
    fs = extract_series(_write_video(tmp_path / "face.mp4", [photo] * (2 * FPS)))
    assert fs.values["face_present"].mean() > 0.9
    t, mouth = fs.mouth_openness()
    assert len(t) > 40 and np.all(mouth >= 0)
