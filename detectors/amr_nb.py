"""AMR-NB (3GPP TS 26.071/26.073) round trip through Debian's opencore-amr, for evaluation.

Debian's ffmpeg decodes AMR-NB but is built without an AMR-NB encoder, so the call-codec
condition calls the codec library itself (package `libopencore-amrnb0`, installed by
`make sysdeps`) through ctypes: the interface of opencore-amr's `interf_enc.h` /
`interf_dec.h` — 160 samples (20 ms at 8 kHz) of 16-bit PCM per frame in, one frame in the
RFC 4867 storage format (a table-of-contents byte, then the speech bits) out, and back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import numpy as np
from scipy.signal import resample_poly

FRAME = 160  # samples per AMR frame at 8 kHz (20 ms)
MAX_FRAME_BYTES = 32  # MR122: 1 header byte + 31 speech bytes
#: the encoder's look-ahead (5 ms at 8 kHz), measured: removed so the decoded speech lines up
DELAY = 40
#: enum Mode of interf_enc.h: MR475 = 0 (4.75 kbit/s) ... MR122 = 7 (12.2 kbit/s)
MODES = {"4k75": 0, "5k15": 1, "5k9": 2, "6k7": 3, "7k4": 4, "7k95": 5, "10k2": 6, "12k2": 7}


@cache
def _library() -> ctypes.CDLL | None:
    for path in (ctypes.util.find_library("opencore-amrnb"), "libopencore-amrnb.so.0"):
        if not path:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.Encoder_Interface_init.restype = ctypes.c_void_p
        lib.Encoder_Interface_init.argtypes = [ctypes.c_int]
        lib.Encoder_Interface_exit.argtypes = [ctypes.c_void_p]
        lib.Encoder_Interface_Encode.restype = ctypes.c_int
        lib.Encoder_Interface_Encode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_short),
            ctypes.POINTER(ctypes.c_ubyte),
            ctypes.c_int,
        ]
        lib.Decoder_Interface_init.restype = ctypes.c_void_p
        lib.Decoder_Interface_exit.argtypes = [ctypes.c_void_p]
        lib.Decoder_Interface_Decode.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_ubyte),
            ctypes.POINTER(ctypes.c_short),
            ctypes.c_int,
        ]
        return lib
    return None


def available() -> bool:
    return _library() is not None


def _require() -> ctypes.CDLL:
    lib = _library()
    if lib is None:
        raise RuntimeError("AMR-NB needs libopencore-amrnb0 (apt-get install libopencore-amrnb0)")
    return lib


def encode(pcm8k: np.ndarray, mode: str = "4k75") -> list[bytes]:
    """16-bit PCM at 8 kHz -> AMR-NB frames (storage format), the last frame zero-padded."""
    lib = _require()
    if mode not in MODES:
        raise ValueError(f"unknown AMR-NB mode {mode!r}; known: {', '.join(MODES)}")
    n = -(-len(pcm8k) // FRAME) * FRAME
    x = np.zeros(n, dtype=np.int16)
    x[: len(pcm8k)] = pcm8k
    state = lib.Encoder_Interface_init(0)  # no DTX: every frame is coded speech
    out = (ctypes.c_ubyte * MAX_FRAME_BYTES)()
    frames: list[bytes] = []
    try:
        for i in range(0, n, FRAME):
            chunk = np.ascontiguousarray(x[i : i + FRAME])
            k = lib.Encoder_Interface_Encode(
                state, MODES[mode], chunk.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), out, 0
            )
            if k <= 0:
                raise RuntimeError(f"AMR-NB encoder failed on frame {i // FRAME}")
            frames.append(bytes(out[:k]))
    finally:
        lib.Encoder_Interface_exit(state)
    return frames


def decode(frames: list[bytes]) -> np.ndarray:
    """AMR-NB frames (storage format) -> 16-bit PCM at 8 kHz."""
    lib = _require()
    state = lib.Decoder_Interface_init()
    pcm = np.zeros(len(frames) * FRAME, dtype=np.int16)
    buf = (ctypes.c_ubyte * MAX_FRAME_BYTES)()
    try:
        for i, f in enumerate(frames):
            ctypes.memmove(buf, f, len(f))
            dst = pcm[i * FRAME : (i + 1) * FRAME]
            lib.Decoder_Interface_Decode(
                state, buf, dst.ctypes.data_as(ctypes.POINTER(ctypes.c_short)), 0
            )
    finally:
        lib.Decoder_Interface_exit(state)
    return pcm


def round_trip(x: np.ndarray, mode: str = "4k75", sr: int = 16_000) -> np.ndarray:
    """Float audio at `sr` (16 kHz) through AMR-NB at 8 kHz and back, same length."""
    nb = resample_poly(np.asarray(x, np.float64), 1, sr // 8000)
    pcm = np.round(np.clip(nb, -1.0, 1.0) * 32767.0).astype(np.int16)
    dec = decode(encode(pcm, mode))[DELAY:].astype(np.float64) / 32768.0
    y = resample_poly(dec, sr // 8000, 1).astype(np.float32)
    out = np.zeros(len(x), dtype=np.float32)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out
