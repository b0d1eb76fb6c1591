"""Call-like degradations used by evaluation, training augmentation and tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import numpy as np
from scipy.signal import resample_poly

SR = 16_000


def mulaw_8k(x: np.ndarray) -> np.ndarray:
    """Narrowband telephony: band-limit to 8 kHz sampling, 8-bit G.711 mu-law, back to 16 kHz."""
    nb = resample_poly(x, 1, 2)
    mu = 255.0
    nb = np.clip(nb, -1.0, 1.0)
    enc = np.sign(nb) * np.log1p(mu * np.abs(nb)) / np.log1p(mu)
    q = np.round((enc + 1.0) / 2.0 * 255.0) / 255.0 * 2.0 - 1.0  # 8 bits
    dec = np.sign(q) * ((1.0 + mu) ** np.abs(q) - 1.0) / mu
    return resample_poly(dec, 2, 1).astype(np.float32)[: len(x)]


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def _ffmpeg(ff: str, args: list[str], data: bytes) -> bytes:
    """One ffmpeg run from stdin to stdout (errors only on stderr; a failure raises)."""
    return subprocess.run(
        [ff, "-v", "error", *args], input=data, capture_output=True, check=True
    ).stdout


def gsm_codec(x: np.ndarray) -> np.ndarray:
    """GSM 06.10 full-rate (13 kbit/s at 8 kHz) round trip through ffmpeg."""
    ff = shutil.which("ffmpeg")
    if ff is None:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg)")
    raw = np.clip(x, -1, 1).astype("<f4").tobytes()
    pcm = ["-f", "f32le", "-ar", str(SR), "-ac", "1"]  # our float32 mono at SR
    gsm = ["-ar", "8000", "-f", "gsm"]
    enc = _ffmpeg(ff, [*pcm, "-i", "pipe:0", "-c:a", "libgsm", *gsm, "pipe:1"], raw)
    dec = _ffmpeg(ff, [*gsm, "-i", "pipe:0", *pcm, "pipe:1"], enc)
    y = np.frombuffer(dec, dtype="<f4").astype(np.float32)
    out = np.zeros(len(x), dtype=np.float32)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def add_noise(x: np.ndarray, snr_db: float = 10.0, seed: int = 0) -> np.ndarray:
    """Pink-ish noise at `snr_db` relative to the active speech power."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(len(x))
    spec = np.fft.rfft(white)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spec / np.sqrt(f), n=len(x))
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    power = (frames**2).mean(axis=1) if len(frames) else np.array([np.mean(x**2)])
    speech_power = np.mean(power[power > np.percentile(power, 50)]) if len(power) else 0.0
    noise *= np.sqrt(speech_power / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))
    return np.clip(x + noise, -1, 1).astype(np.float32)


def drop_packets(
    x: np.ndarray, rate: float = 0.1, packet_ms: int = 20, seed: int = 0
) -> np.ndarray:
    """Zero out random 20 ms packets (no concealment), as on a lossy VoIP leg."""
    rng = np.random.default_rng(seed)
    n = SR * packet_ms // 1000
    y = x.astype(np.float32).copy()
    for i in range(0, len(y), n):
        if rng.random() < rate:
            y[i : i + n] = 0.0
    return y


CONDITIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "clean": lambda x, seed: x,
    "mulaw_8k": lambda x, seed: mulaw_8k(x),
    "gsm_codec": lambda x, seed: gsm_codec(x),
    "noise_10db": lambda x, seed: add_noise(x, 10.0, seed),
    "noise_20db": lambda x, seed: add_noise(x, 20.0, seed + 1),
    "packet_loss_10pct": lambda x, seed: drop_packets(x, 0.1, 20, seed),
}


#: What `liveguard detectors evaluate` reports by default (noise_20db is for training).
EVALUATION_CONDITIONS = ("clean", "mulaw_8k", "gsm_codec", "noise_10db", "packet_loss_10pct")


def available_conditions() -> list[str]:
    return [c for c in EVALUATION_CONDITIONS if c != "gsm_codec" or ffmpeg_available()]


def simulate_replay(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """A recording played through a small loudspeaker into a room and picked up again.

    Loudspeaker: high-pass ~250 Hz, low-pass ~7 kHz, mild saturation; room: exponentially
    decaying noise impulse response with RT60 in 0.3-0.9 s; pickup noise at ~30 dB SNR.
    """
    from scipy.signal import butter, fftconvolve, sosfilt

    rng = np.random.default_rng(seed)
    hp = butter(2, rng.uniform(200, 350), "highpass", fs=SR, output="sos")
    lp = butter(4, rng.uniform(6000, 7500), "lowpass", fs=SR, output="sos")
    y = np.tanh(1.5 * sosfilt(lp, sosfilt(hp, x))) / 1.5
    rt60 = rng.uniform(0.3, 0.9)
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    rir[0] = 1.0 / rng.uniform(0.5, 2.0)  # direct path
    rir /= np.sqrt((rir**2).sum())
    y = fftconvolve(y, rir)[: len(x)]
    y *= np.sqrt(np.mean(x**2) / (np.mean(y**2) + 1e-12))
    return add_noise(y, 30.0, seed + 1)
