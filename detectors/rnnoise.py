"""RNNoise (xiph/rnnoise, BSD-3-Clause) noise suppression, for the training views and evaluation.

Conferencing and softphone clients run a neural noise suppressor before the audio leaves the
caller's machine; what it does to real speech (spectral holes, smeared harmonics, gated
pauses) is a known source of false alarms for a synthetic-voice detector. RNNoise is the
suppressor of Jitsi, OBS and many WebRTC stacks: a small recurrent network with its weights
compiled into the library. The shared data's noise-suppressed corpus was made with another
one (DeepFilterNet3), so training on RNNoise leaves that corpus an honest test of a
suppressor the models never saw.

The library comes from the `pyrnnoise` wheel (installed with `--no-deps`: its Python
wrapper imports matplotlib and an audio I/O stack we do not need). The wheel is located
with `find_spec` and never imported; the C interface is `rnnoise.h`: 480 samples (10 ms at
48 kHz) of float PCM on the 16-bit scale per frame, processed in place.
"""

from __future__ import annotations

import ctypes
import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

RATE = 48_000  # RNNoise works at 48 kHz only
FRAME = 480  # samples per frame (rnnoise_get_frame_size)
DELAY = 2 * FRAME


@cache
def _library() -> ctypes.CDLL | None:
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "librnnoise.so"
        if not path.is_file():
            continue
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        lib.rnnoise_process_frame.restype = ctypes.c_float
        lib.rnnoise_process_frame.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_float),
            ctypes.POINTER(ctypes.c_float),
        ]
        if lib.rnnoise_get_frame_size() != FRAME:
            continue
        return lib
    return None


def available() -> bool:
    return _library() is not None


def suppress(x: np.ndarray, sr: int = 16_000) -> np.ndarray:
    """`x` (float, [-1, 1], at `sr`) through RNNoise at 48 kHz and back, same length."""
    lib = _library()
    if lib is None:
        raise RuntimeError(
            "noise suppression needs RNNoise (pip install --no-deps 'pyrnnoise==0.4.5')"
        )
    if sr != 16_000:
        raise ValueError(f"suppress expects 16 kHz audio, got {sr} Hz")
    up = resample_poly(np.asarray(x, dtype=np.float64), 3, 1) * 32767.0
    n = -(-len(up) // FRAME) * FRAME
    buf = np.zeros(n, dtype=np.float32)
    buf[: len(up)] = up
    state = lib.rnnoise_create(None)
    try:
        for s in range(0, n, FRAME):
            frame = buf[s : s + FRAME]  # a view: processed in place
            ptr = frame.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            lib.rnnoise_process_frame(state, ptr, ptr)
    finally:
        lib.rnnoise_destroy(state)
    # RNNoise delays by two frames (20 ms, measured: its frame and its look-ahead); taken
    # out so the output lines up with the input.
    out = np.concatenate([buf[DELAY:], np.zeros(DELAY, dtype=np.float32)])[: len(up)]
    y = resample_poly(out.astype(np.float64) / 32767.0, 1, 3)[: len(x)]
    return np.clip(y, -1.0, 1.0).astype(np.float32)
