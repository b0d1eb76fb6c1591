"""Call-like degradations used by evaluation, training augmentation and tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import numpy as np
from scipy.signal import resample_poly

from detectors import amr_nb, rnnoise

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


def _ffmpeg_round_trip(x: np.ndarray, encode: list[str], fmt: list[str]) -> np.ndarray:
    """Encode with ffmpeg (`encode` = codec options, `fmt` = container/rate) and decode back."""
    ff = shutil.which("ffmpeg")
    if ff is None:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg)")
    raw = np.clip(x, -1, 1).astype("<f4").tobytes()
    pcm = ["-f", "f32le", "-ar", str(SR), "-ac", "1"]
    enc = _ffmpeg(ff, [*pcm, "-i", "pipe:0", *encode, *fmt, "pipe:1"], raw)
    dec = _ffmpeg(ff, ["-i", "pipe:0", *pcm, "pipe:1"], enc)
    y = np.frombuffer(dec, dtype="<f4").astype(np.float32)
    out = np.zeros(len(x), dtype=np.float32)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def alaw_8k(x: np.ndarray) -> np.ndarray:
    """G.711 A-law at 8 kHz (European telephony), through ffmpeg's pcm_alaw."""
    return _ffmpeg_round_trip(x, ["-c:a", "pcm_alaw", "-ar", "8000"], ["-f", "wav"])


def opus_low(x: np.ndarray) -> np.ndarray:
    """Opus (libopus, VoIP mode) at 12 kbit/s: a congested WebRTC / conferencing leg."""
    enc = ["-c:a", "libopus", "-b:a", "12k", "-application", "voip"]
    return _ffmpeg_round_trip(x, enc, ["-f", "ogg"])


def mp3_low(x: np.ndarray) -> np.ndarray:
    """MP3 (LAME) at 24 kbit/s, 16 kHz: a re-encoded web or voicemail recording."""
    return _ffmpeg_round_trip(x, ["-c:a", "libmp3lame", "-b:a", "24k"], ["-f", "mp3"])


def vorbis_q3(x: np.ndarray) -> np.ndarray:
    """Ogg Vorbis (libvorbis) at quality 3, its default (about 40 kbit/s at 16 kHz): a
    recording saved by a browser, a messaging app or a web page. Real speech through it
    scored as synthetic before 4.2 (its quantisation noise reads like a vocoder's)."""
    return _ffmpeg_round_trip(x, ["-c:a", "libvorbis", "-q:a", "3"], ["-f", "ogg"])


def mp3_high(x: np.ndarray) -> np.ndarray:
    """MP3 (LAME) at 128 kbit/s, 16 kHz: a downloaded or archived recording; LAME low-passes
    it near 7.3 kHz, a sharp edge no microphone has."""
    return _ffmpeg_round_trip(x, ["-c:a", "libmp3lame", "-b:a", "128k"], ["-f", "mp3"])


def opus_wide(x: np.ndarray) -> np.ndarray:
    """Opus (libopus, audio mode) at 24 kbit/s: a voice message or a web video's sound track."""
    enc = ["-c:a", "libopus", "-b:a", "24k", "-application", "audio"]
    return _ffmpeg_round_trip(x, enc, ["-f", "ogg"])


def aac_96k(x: np.ndarray) -> np.ndarray:
    """AAC-LC (ffmpeg's encoder) at 96 kbit/s in ADTS: a phone's or a video site's audio."""
    return _ffmpeg_round_trip(x, ["-c:a", "aac", "-b:a", "96k"], ["-f", "adts"])


def band_limit(x: np.ndarray) -> np.ndarray:
    """300-3400 Hz telephone band at 16 kHz sampling, without a codec."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(6, [300, 3400], "bandpass", fs=SR, output="sos")
    return sosfiltfilt(sos, x).astype(np.float32)


def gain_clip(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """An over-driven input: gain to a peak 6-12 dB above full scale, then hard clipping."""
    rng = np.random.default_rng(seed)
    peak = float(np.abs(x).max()) + 1e-9
    g = 10 ** (rng.uniform(6.0, 12.0) / 20) / peak
    return np.clip(x * g, -1.0, 1.0).astype(np.float32)


def quiet(x: np.ndarray) -> np.ndarray:
    """30 dB quieter: level must not carry the label (audio_neural is peak-normalised)."""
    return (x * 10 ** (-30 / 20)).astype(np.float32)


def reverb(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Room reverberation: exponentially decaying noise impulse response, RT60 0.3-0.8 s."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    rt60 = rng.uniform(0.3, 0.8)
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.3
    rir[0] = 1.0
    rir /= np.sqrt((rir**2).sum())
    y = fftconvolve(x, rir)[: len(x)]
    y *= np.sqrt(np.mean(x**2) / (np.mean(y**2) + 1e-12))
    return np.clip(y, -1, 1).astype(np.float32)


def denoised(x: np.ndarray, snr_db: float = 10.0, seed: int = 0) -> np.ndarray:
    """Noise at `snr_db`, then a conferencing client's neural noise suppressor (RNNoise):
    what reaches us from a softphone in a noisy room."""
    return rnnoise.suppress(add_noise(x, snr_db, seed))


CONDITIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "clean": lambda x, seed: x,
    "mulaw_8k": lambda x, seed: mulaw_8k(x),
    "alaw_8k": lambda x, seed: alaw_8k(x),
    "gsm_codec": lambda x, seed: gsm_codec(x),
    "opus_12k": lambda x, seed: opus_low(x),
    "amr_nb_4k75": lambda x, seed: amr_nb.round_trip(x, "4k75"),
    "mp3_24k": lambda x, seed: mp3_low(x),
    "mp3_128k": lambda x, seed: mp3_high(x),
    "vorbis_q3": lambda x, seed: vorbis_q3(x),
    "opus_24k": lambda x, seed: opus_wide(x),
    "aac_96k": lambda x, seed: aac_96k(x),
    "noise_10db": lambda x, seed: add_noise(x, 10.0, seed),
    "noise_20db": lambda x, seed: add_noise(x, 20.0, seed + 1),
    "denoised_10db": lambda x, seed: denoised(x, 10.0, seed + 3),
    "packet_loss_10pct": lambda x, seed: drop_packets(x, 0.1, 20, seed),
    "band_limit": lambda x, seed: band_limit(x),
    "gain_clip": lambda x, seed: gain_clip(x, seed),
    "quiet_30db": lambda x, seed: quiet(x),
    "reverb": lambda x, seed: reverb(x, seed + 2),
}

#: Conditions that need ffmpeg (Debian's build: libgsm, libopus, libmp3lame, libvorbis,
#: G.711, its own AAC encoder).
FFMPEG_CONDITIONS = frozenset(
    {"alaw_8k", "gsm_codec", "opus_12k", "mp3_24k", "mp3_128k", "vorbis_q3", "opus_24k", "aac_96k"}
)

#: AMR-NB at its lowest rate (4.75 kbit/s, what a mobile call falls back to on a weak link):
#: Debian's ffmpeg has no AMR-NB encoder, so `detectors.amr_nb` calls opencore-amr directly.
#: RNNoise from the pyrnnoise wheel (`detectors.rnnoise`, installed by `make setup`).
LIBRARY_CONDITIONS = {"amr_nb_4k75": amr_nb.available, "denoised_10db": rnnoise.available}

#: What `liveguard detectors evaluate` reports by default (noise_20db is for training).
EVALUATION_CONDITIONS = (
    "clean",
    "mulaw_8k",
    "alaw_8k",
    "gsm_codec",
    "opus_12k",
    "amr_nb_4k75",
    "mp3_24k",
    "mp3_128k",
    "vorbis_q3",
    "opus_24k",
    "aac_96k",
    "noise_10db",
    "denoised_10db",
    "packet_loss_10pct",
    "band_limit",
    "gain_clip",
    "quiet_30db",
    "reverb",
)


def available_conditions() -> list[str]:
    return [
        c
        for c in EVALUATION_CONDITIONS
        if (c not in FFMPEG_CONDITIONS or ffmpeg_available())
        and LIBRARY_CONDITIONS.get(c, lambda: True)()
    ]


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
