"""Edge feature extraction from video: per-frame face landmarks -> compact series.

Uses the MediaPipe face mesh whose TFLite models ship inside the mediapipe wheel
(optional extra: `pip install 'liveguard[video]'`). Frames are decoded, measured and
dropped one at a time inside this process; only the series leave it: mouth openness,
eye aspect ratio, head pose, face present and landmark jitter — what `av.lipsync` and
`video.face_dynamics` consume.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# MediaPipe face-mesh landmark indices (468-point topology).
LIP_UP, LIP_DOWN, MOUTH_L, MOUTH_R = 13, 14, 78, 308
LEFT_EYE = (33, 160, 158, 133, 153, 144)  # outer, upper x2, inner, lower x2
RIGHT_EYE = (362, 385, 387, 263, 373, 380)
NOSE, CHIN, CHEEK_L, CHEEK_R, FOREHEAD = 1, 152, 234, 454, 10
SERIES_NAMES = (
    "face_present",
    "mouth_openness",
    "eye_aspect_ratio",
    "head_yaw",
    "head_pitch",
    "head_roll",
    "landmark_jitter",
)


class VideoInputError(ValueError):
    code = "video_invalid"


@dataclass
class FaceSeries:
    """One value per video frame; NaN where no face was found."""

    times_ms: np.ndarray
    values: dict[str, np.ndarray]

    def series(self, name: str, drop_missing: bool = True) -> tuple[np.ndarray, np.ndarray]:
        v = self.values[name]
        keep = ~np.isnan(v) if drop_missing else np.ones(len(v), dtype=bool)
        return self.times_ms[keep], v[keep]

    def mouth_openness(self) -> tuple[np.ndarray, np.ndarray]:
        return self.series("mouth_openness")

    def to_csv(self, path: Path) -> None:
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["t_ms", *SERIES_NAMES])
            for i, t in enumerate(self.times_ms):
                w.writerow([f"{t:.1f}", *(f"{self.values[n][i]:.5f}" for n in SERIES_NAMES)])


def _eye_aspect_ratio(p: np.ndarray, idx: tuple[int, ...]) -> float:
    outer, up1, up2, inner, low2, low1 = (p[i] for i in idx)
    width = np.linalg.norm(outer - inner) + 1e-9
    return float((np.linalg.norm(up1 - low1) + np.linalg.norm(up2 - low2)) / (2 * width))


def frame_measures(p: np.ndarray) -> dict[str, float]:
    """Measures of one face from its landmarks (N x 3, normalised image coordinates)."""
    face_w = np.linalg.norm(p[CHEEK_L, :2] - p[CHEEK_R, :2]) + 1e-9
    face_h = np.linalg.norm(p[FOREHEAD, :2] - p[CHIN, :2]) + 1e-9
    mouth_w = np.linalg.norm(p[MOUTH_L, :2] - p[MOUTH_R, :2]) + 1e-9
    mid = (p[CHEEK_L, :2] + p[CHEEK_R, :2]) / 2
    # Head pose from landmark geometry (approximate, degrees): enough for "is the head
    # moving naturally", not for metrology.
    yaw = np.degrees(np.arcsin(np.clip(2 * (p[NOSE, 0] - mid[0]) / face_w, -1, 1)))
    pitch = np.degrees(np.arcsin(np.clip(2 * (p[NOSE, 1] - mid[1]) / face_h, -1, 1)))
    eye_vec = p[RIGHT_EYE[3], :2] - p[LEFT_EYE[0], :2]
    roll = np.degrees(np.arctan2(eye_vec[1], eye_vec[0]))
    return {
        "mouth_openness": float(np.linalg.norm(p[LIP_UP, :2] - p[LIP_DOWN, :2]) / mouth_w),
        "eye_aspect_ratio": (_eye_aspect_ratio(p, LEFT_EYE) + _eye_aspect_ratio(p, RIGHT_EYE)) / 2,
        "head_yaw": float(yaw),
        "head_pitch": float(pitch),
        "head_roll": float(roll),
    }


def jitter(prev: np.ndarray | None, cur: np.ndarray) -> float:
    """Non-rigid frame-to-frame landmark motion, relative to face size.

    The mean translation and scale are removed, so head motion does not count; what
    remains is landmarks moving against each other — large in face-swap flicker.
    """
    if prev is None:
        return float("nan")

    def norm(q: np.ndarray) -> np.ndarray:
        q = q[:, :2] - q[:, :2].mean(axis=0)
        return q / (np.sqrt((q**2).sum(axis=1).mean()) + 1e-9)

    return float(np.sqrt(((norm(cur) - norm(prev)) ** 2).sum(axis=1).mean()))


def extract_series(path: str | Path, max_seconds: float | None = None) -> FaceSeries:
    try:
        import cv2
        import mediapipe as mp
    except ImportError as exc:
        raise ImportError(
            "video analysis needs the optional extra: pip install 'liveguard[video]'"
        ) from exc
    p = Path(path)
    if not p.is_file():
        raise VideoInputError(f"cannot read video {p}: no such file")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        raise VideoInputError(f"cannot read video {p}: not a supported video file")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    times: list[float] = []
    rows: list[dict[str, float]] = []
    prev: np.ndarray | None = None
    mesh = mp.solutions.face_mesh.FaceMesh(
        static_image_mode=False, max_num_faces=1, refine_landmarks=False
    )
    try:
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            t = 1000.0 * i / fps
            if max_seconds is not None and t > max_seconds * 1000:
                break
            res = mesh.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            del frame  # the frame is gone; only the measures below remain
            row = {n: float("nan") for n in SERIES_NAMES}
            row["face_present"] = 0.0
            if res.multi_face_landmarks:
                lm = res.multi_face_landmarks[0].landmark
                pts = np.array([(q.x, q.y, q.z) for q in lm], dtype=np.float64)
                row.update(frame_measures(pts))
                row["face_present"] = 1.0
                row["landmark_jitter"] = jitter(prev, pts)
                prev = pts
            else:
                prev = None
            times.append(t)
            rows.append(row)
            i += 1
    finally:
        mesh.close()
        cap.release()
    if not rows:
        raise VideoInputError(f"video {p} has no frames")
    return FaceSeries(
        times_ms=np.array(times),
        values={n: np.array([r[n] for r in rows]) for n in SERIES_NAMES},
    )
