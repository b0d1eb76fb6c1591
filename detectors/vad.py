"""Silero VAD (the ONNX model shipped inside the `silero-vad` wheel), batched across sessions.

The package is located with `find_spec` and never imported: its `__init__` imports torch,
which the runtime must not need (the wheel is installed with `--no-deps`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort

SR = 16_000
CHUNK = 512  # samples per VAD step at 16 kHz (32 ms)
CONTEXT = 64  # samples of left context the v5+ model expects before each chunk
STATE_SHAPE = (2, 128)


class VadUnavailableError(RuntimeError):
    code = "detector_unavailable"


def silero_model_path() -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadUnavailableError(
            "silero-vad is not installed (pip install --no-deps 'silero-vad>=5.1')"
        )
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "data" / "silero_vad.onnx"
        if path.is_file():
            return path
    raise VadUnavailableError("silero-vad is installed but data/silero_vad.onnx is missing")


def session_options() -> ort.SessionOptions:
    """One thread per model: the runtime scales by batching, not by intra-op threads."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return so


class SileroVad:
    """Speech probability per 32 ms chunk for a batch of equally long windows."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or silero_model_path()
        self._sess = ort.InferenceSession(
            str(self.path), session_options(), providers=["CPUExecutionProvider"]
        )
        self._sr = np.array(SR, dtype=np.int64)

    @staticmethod
    def new_state() -> np.ndarray:
        return np.zeros(STATE_SHAPE, dtype=np.float32)

    def run(self, windows: list[np.ndarray], states: list[np.ndarray]) -> list[np.ndarray]:
        """Speech probabilities for each window; `states` (per session) are updated in place.

        Windows of different lengths are padded with silence to the longest; the trailing
        partial chunk is not scored. Left context starts at zero for every window so that no
        raw samples of a previous window are kept in the state.
        """
        if not windows:
            return []
        n_chunks = [len(w) // CHUNK for w in windows]
        steps = max(n_chunks)
        if steps == 0:
            return [np.zeros(0, dtype=np.float32) for _ in windows]
        batch = np.zeros((len(windows), steps * CHUNK), dtype=np.float32)
        for i, w in enumerate(windows):
            batch[i, : n_chunks[i] * CHUNK] = w[: n_chunks[i] * CHUNK]
        state = np.ascontiguousarray(np.stack(states, axis=1), dtype=np.float32)
        probs = np.zeros((len(windows), steps), dtype=np.float32)
        context = np.zeros((len(windows), CONTEXT), dtype=np.float32)
        for s in range(steps):
            chunk = batch[:, s * CHUNK : (s + 1) * CHUNK]
            x = np.concatenate([context, chunk], axis=1)
            out, new_state = self._sess.run(None, {"input": x, "state": state, "sr": self._sr})
            # Sessions whose window is already over keep their state unchanged.
            active = np.array([s < n for n in n_chunks])
            state = np.where(active[None, :, None], new_state, state)
            probs[:, s] = out[:, 0]
            context = chunk[:, -CONTEXT:]
        for i in range(len(windows)):
            states[i][...] = state[:, i, :]
        return [probs[i, : n_chunks[i]] for i in range(len(windows))]
