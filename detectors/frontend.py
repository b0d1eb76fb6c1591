"""Shared audio front-end: computed once per window, read by every audio detector.

One STFT per window feeds the quality measures, the synthetic-voice features, the replay
cues and the speaker embedding, so adding a detector does not add another pass over the
samples. Everything here is numpy; the functions are also used by training and evaluation
so that the model sees exactly the features the runtime computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import librosa
import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from detectors.fine_structure import N_FINE, N_FINE_STATS, fine_stats, frame_fine
from detectors.pitch import N_PITCH, VOICED, frame_pitch, pitch_stats

SR = 16_000
N_FFT = 512
WIN = 400  # 25 ms
HOP = 160  # 10 ms
N_BINS = N_FFT // 2 + 1
FREQS = np.linspace(0.0, SR / 2, N_BINS)
EPS = 1e-10


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    w = np.zeros(N_FFT, dtype=np.float32)
    w[:WIN] = np.hanning(WIN).astype(np.float32)
    return w


def power_spectrogram(x: np.ndarray) -> np.ndarray:
    """|STFT|^2, frames x bins, no centering (so windows can be processed independently)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    # The frames librosa.stft(center=False) takes with our zero-padded 25 ms Hann window
    # (what the training features were first computed with: the same values bit for bit),
    # as a strided view and one real FFT, at half librosa's per-call cost.
    frames = sliding_window_view(x, N_FFT)[::HOP] * _hann()
    spec = scipy.fft.rfft(frames, axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


@lru_cache(maxsize=1)
def linear_filterbank(n_filters: int = 30) -> np.ndarray:
    """Triangular filters equally spaced on a linear axis (LFCC front-end, ASVspoof style)."""
    edges = np.linspace(0.0, SR / 2, n_filters + 2)
    fb = np.zeros((N_BINS, n_filters), dtype=np.float32)
    for i in range(n_filters):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (FREQS - lo) / (mid - lo)
        down = (hi - FREQS) / (hi - mid)
        fb[:, i] = np.maximum(0.0, np.minimum(up, down))
    return fb


@lru_cache(maxsize=1)
def mel_filterbank(n_mels: int = 40) -> np.ndarray:
    return librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=n_mels, fmin=20, fmax=SR / 2).T.astype(
        np.float32
    )


@lru_cache(maxsize=4)
def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II rows 1..n_out (c0 dropped: it is only loudness)."""
    k = np.arange(1, n_out + 1)[:, None]
    n = np.arange(n_in)[None, :]
    return (np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))).T.astype(np.float32)


def frame_db(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(power.sum(axis=1) + EPS)


def speech_frame_mask(
    db: np.ndarray, floor_db: float = -75.0, range_db: float = 35.0
) -> np.ndarray:
    """Frames within `range_db` of the loudest: a cheap, level-invariant speech selector.

    Statistics over speech frames only keep a model from learning each corpus's silence
    (digital zeros in TTS output, hiss in audiobooks) instead of the voice.
    """
    if db.size == 0:
        return np.zeros(0, dtype=bool)
    return (db > db.max() - range_db) & (db > floor_db)


# --- synthetic-voice frame features -------------------------------------------------------

N_LFCC = 20
N_MFCC = 20
FRAME_FEATURES = 2 * N_LFCC + N_MFCC + 4
FEATURE_NAMES: tuple[str, ...] = (
    *(f"lfcc{i}" for i in range(1, N_LFCC + 1)),
    *(f"dlfcc{i}" for i in range(1, N_LFCC + 1)),
    *(f"mfcc{i}" for i in range(1, N_MFCC + 1)),
    "flatness",
    "flatness_hi",
    "hi_lo_ratio_db",
    "rolloff95",
)
HI_BIN = int(4000 / (SR / 2) * (N_BINS - 1))


def frame_features(power: np.ndarray) -> np.ndarray:
    """Per-frame feature vectors (frames x FRAME_FEATURES)."""
    logp = np.log(power + EPS)
    lin = np.log(power @ linear_filterbank() + EPS)
    lfcc = lin @ dct_matrix(lin.shape[1], N_LFCC)
    dlfcc = np.zeros_like(lfcc)
    if len(lfcc) > 2:
        dlfcc[1:-1] = (lfcc[2:] - lfcc[:-2]) / 2.0
    mel = np.log(power @ mel_filterbank() + EPS)
    mfcc = mel @ dct_matrix(mel.shape[1], N_MFCC)
    flat = logp.mean(axis=1) - np.log(power.mean(axis=1) + EPS)
    hi = power[:, HI_BIN:]
    flat_hi = np.log(hi + EPS).mean(axis=1) - np.log(hi.mean(axis=1) + EPS)
    ratio = 10.0 * np.log10((hi.sum(axis=1) + EPS) / (power[:, :HI_BIN].sum(axis=1) + EPS))
    cum = np.cumsum(power, axis=1)
    rolloff = (cum < 0.95 * cum[:, -1:]).sum(axis=1) / N_BINS
    return np.concatenate(
        [lfcc, dlfcc, mfcc, flat[:, None], flat_hi[:, None], ratio[:, None], rolloff[:, None]],
        axis=1,
    ).astype(np.float32)


@dataclass(slots=True)
class FeatureStats:
    """Sufficient statistics of frame features over speech frames of one window: the
    synthetic_voice 1.x input (`window_stats`, `aggregate`), kept for that recipe's
    evaluation (`liveguard detectors evaluate --recipe v1`); the shipped 4.x reads
    `window_stats_v3` instead.

    Kept per session instead of audio: a rolling multi-second context for the model costs
    2 x FRAME_FEATURES floats per second and no samples.
    """

    n: int
    s1: np.ndarray
    s2: np.ndarray

    @staticmethod
    def empty() -> FeatureStats:
        return FeatureStats(0, np.zeros(FRAME_FEATURES), np.zeros(FRAME_FEATURES))

    @staticmethod
    def of(feats: np.ndarray) -> FeatureStats:
        f = feats.astype(np.float64)
        return FeatureStats(len(f), f.sum(axis=0), (f * f).sum(axis=0))


def window_stats(power: np.ndarray) -> FeatureStats:
    mask = speech_frame_mask(frame_db(power))
    if mask.sum() == 0:
        return FeatureStats.empty()
    return FeatureStats.of(frame_features(power)[mask])


def aggregate(stats: list[FeatureStats]) -> tuple[np.ndarray, int]:
    """Model input vector (mean and std of frame features) and the number of frames behind it."""
    n = sum(s.n for s in stats)
    if n == 0:
        return np.zeros(2 * FRAME_FEATURES, dtype=np.float32), 0
    s1 = sum(s.s1 for s in stats)
    s2 = sum(s.s2 for s in stats)
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
    return np.concatenate([mean, std]).astype(np.float32), n


def clip_vectors(x: np.ndarray, hop_s: float = 1.0, context_windows: int = 4) -> np.ndarray:
    """Feature vectors exactly as the streaming runtime would produce them, one per hop."""
    hop = int(hop_s * SR)
    stats: list[FeatureStats] = []
    out = []
    for start in range(0, max(len(x) - hop // 2, 1), hop):
        chunk = x[start : start + hop]
        if len(chunk) < N_FFT:
            break
        stats.append(window_stats(power_spectrogram(chunk)))
        stats = stats[-context_windows:]
        vec, n = aggregate(stats)
        if n > 0:
            out.append(vec)
    return np.array(out, dtype=np.float32).reshape(-1, 2 * FRAME_FEATURES)


# --- per-window bundle -----------------------------------------------------------------------


@dataclass(slots=True)
class AudioFeatures:
    """What the runtime computes once per window and passes to every audio detector."""

    power: np.ndarray | None  # frames x bins; released with the samples
    db: np.ndarray  # frame energy in dB (10 ms): compact, kept
    envelope: np.ndarray  # RMS per 10 ms frame: compact, used by lip sync
    vad: np.ndarray  # speech probability per 32 ms chunk
    quality: QualityReport
    extras: dict[str, object] = field(default_factory=dict)

    def release(self) -> None:
        self.power = None


@dataclass(slots=True, frozen=True)
class QualityReport:
    speech_ratio: float  # share of VAD chunks with p > 0.5
    snr_db: float
    bandwidth_hz: float
    narrowband: bool
    clipping_ratio: float
    gap_ratio: float  # share of the window in digital-silence gaps inside speech
    rms_db: float
    noise_floor_db: float
    quality: float  # [0,1] overall usability of the window for media detectors


def envelope(x: np.ndarray) -> np.ndarray:
    n = len(x) // HOP
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    frames = x[: n * HOP].reshape(n, HOP)
    return np.sqrt((frames * frames).mean(axis=1)).astype(np.float32)


def _gap_ratio(x: np.ndarray, min_run: int = 160) -> float:
    """Share of samples in runs of exact zeros >= 10 ms that sit between non-silent audio.

    Packet-loss concealment-free streams show such holes; natural pauses are never exactly
    zero once there is any microphone noise.
    """
    zero = np.abs(x) < 1e-6
    if not zero.any() or zero.all():
        return 0.0
    padded = np.concatenate([[False], zero, [False]])
    d = np.diff(padded.astype(np.int8))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    lengths = ends - starts
    inner = (starts > 0) & (ends < len(x)) & (lengths >= min_run)
    return float(lengths[inner].sum() / len(x))


_MID = (FREQS > 3000) & (FREQS < 3800)
_HIGH = (FREQS > 5000) & (FREQS < 7500)


def _bandwidth(power: np.ndarray, mask: np.ndarray) -> tuple[float, bool]:
    """(bandwidth estimate in Hz, narrowband?) from the long-term speech spectrum.

    Narrowband = the 5-7.5 kHz band sits more than 35 dB under the 3-3.8 kHz band: speech
    always has some energy up there on a wideband channel (fricatives), a telephone
    channel has none. The level comparison is per window, so it does not depend on voice.
    """
    if mask.sum() == 0:
        return 0.0, False
    ltas = 10 * np.log10(power[mask].mean(axis=0) + EPS)
    narrow = bool(ltas[_HIGH].max() - ltas[_MID].max() < -35.0)
    above = np.flatnonzero(ltas > max(ltas[_MID].max() - 35.0, ltas.max() - 60.0))
    return (float(FREQS[above[-1]]) if above.size else 0.0), narrow


NOISE_RISE_DB = 3.0  # how fast the tracked noise floor may rise per window


def quality_report(
    x: np.ndarray,
    power: np.ndarray,
    db: np.ndarray,
    vad: np.ndarray,
    noise_floor_db: float | None = None,
) -> QualityReport:
    speech_ratio = float((vad > 0.5).mean()) if vad.size else 0.0
    rms_db = float(20 * np.log10(np.sqrt(np.mean(x * x)) + EPS)) if len(x) else -200.0
    if db.size:
        # Minimum-statistics noise floor: a window of continuous speech has no pause to
        # measure noise in, so the floor is tracked across windows (it may fall at once
        # and rise slowly) — one float of state per session and party.
        noise, speech = (float(v) for v in np.percentile(db, [10, 95]))  # one sort
        if noise_floor_db is not None:
            noise = min(noise, noise_floor_db + NOISE_RISE_DB)
        snr = float(np.clip(speech - noise, 0.0, 60.0))
    else:
        noise = noise_floor_db if noise_floor_db is not None else -100.0
        snr = 0.0
    mask = speech_frame_mask(db, range_db=25.0)
    bw, narrow = _bandwidth(power, mask)
    peak = np.abs(x)
    clipping = float((peak >= 0.999).mean()) if len(x) else 0.0
    gaps = _gap_ratio(x)
    speech_q = min(1.0, speech_ratio / 0.3)
    snr_q = float(np.clip((snr - 3.0) / 17.0, 0.0, 1.0))  # 20 dB and up: clean enough
    bw_q = 0.6 if narrow else 1.0
    clip_q = float(np.clip(1.0 - clipping * 50.0, 0.0, 1.0))
    gap_q = float(np.clip(1.0 - gaps * 5.0, 0.0, 1.0))
    quality = speech_q * (0.3 + 0.7 * snr_q) * bw_q * clip_q * gap_q
    return QualityReport(
        speech_ratio=speech_ratio,
        snr_db=snr,
        bandwidth_hz=bw,
        narrowband=narrow,
        clipping_ratio=clipping,
        gap_ratio=gaps,
        rms_db=rms_db,
        noise_floor_db=noise,
        quality=float(np.clip(quality, 0.0, 1.0)),
    )


def compute_features(
    x: np.ndarray, vad_probs: np.ndarray, noise_floor_db: float | None = None
) -> AudioFeatures:
    power = power_spectrogram(x)
    db = frame_db(power)
    return AudioFeatures(
        power=power,
        db=db,
        envelope=envelope(x),
        vad=vad_probs,
        quality=quality_report(x, power, db, vad_probs, noise_floor_db),
    )


# --- synthetic_voice 2.x input: log linear-band energies per frame of each window ----------

N_BANDS = 64
WINDOW_FRAMES = (SR - WIN) // HOP + 1  # 98 frames in a 1 s window (no centering)
#: columns of a window array: log bands, frame dB, valid flag, then the spectral fine
#: structure of each frame (`fine_structure.frame_fine`, new in windows-v3), then its
#: periodicity and pitch (`pitch.frame_pitch`, new in windows-v4)
FINE_COL = N_BANDS + 2
PITCH_COL = FINE_COL + N_FINE
WINDOW_COLUMNS = PITCH_COL + N_PITCH


def log_bands(power: np.ndarray) -> np.ndarray:
    """Natural-log energies of N_BANDS linear triangular bands, 0-8 kHz (frames x N_BANDS)."""
    return np.log(power @ linear_filterbank(N_BANDS) + EPS).astype(np.float32)


def window_frames(power: np.ndarray, pitch: bool = True) -> np.ndarray:
    """(WINDOW_FRAMES, WINDOW_COLUMNS): log bands, frame dB, a valid flag, the frame's
    spectral fine structure and its periodicity and pitch, zero-padded.

    The same array the runtime builds from each window's power spectrogram; training caches it.
    `pitch=False` leaves the pitch columns NaN instead (a detector whose model does not read
    them saves their cost per window; NaN, not zeros, so a model that did would fail loudly).
    """
    out = np.zeros((WINDOW_FRAMES, WINDOW_COLUMNS), dtype=np.float32)
    n = min(len(power), WINDOW_FRAMES)
    if n:
        out[:n, :N_BANDS] = log_bands(power[:n])
        out[:n, N_BANDS] = frame_db(power[:n])
        out[:n, N_BANDS + 1] = 1.0
        out[:n, FINE_COL:PITCH_COL] = frame_fine(power[:n])
        out[:n, PITCH_COL:] = frame_pitch(power[:n]) if pitch else np.nan
    return out


def window_bands(x: np.ndarray, hop_s: float = 1.0) -> np.ndarray:
    """Per-window frame arrays exactly as the streaming runtime would see them (float16).

    Full 1 s windows, plus the final partial window when it is at least 0.25 s long (the
    runtime scores such a tail when the session closes).
    """
    hop = int(hop_s * SR)
    out = []
    for start in range(0, len(x), hop):
        chunk = x[start : start + hop]
        if len(chunk) < SR // 4:
            break
        out.append(window_frames(power_spectrogram(chunk)))
    if not out:
        return np.zeros((0, WINDOW_FRAMES, WINDOW_COLUMNS), dtype=np.float16)
    return np.stack(out).astype(np.float16)


N_CEPS = 20
#: synthetic_voice 2.x window statistics, in this order (what the shipped model reads);
#: "shape" (the mean normalised spectrum) also exists, measured and not kept: it carries channel
STATS_V2_PARTS = ("band_std", "band_flux", "cep_std", "dcep_std")


def speech_mask_frames(windows: np.ndarray, range_db: float = 35.0) -> np.ndarray:
    """Speech frames of window arrays (N, T, WINDOW_COLUMNS): valid, within `range_db` of the
    window's loudest frame and above -75 dB (level-invariant, like `speech_frame_mask`)."""
    db = windows[:, :, N_BANDS].astype(np.float32)
    valid = windows[:, :, N_BANDS + 1] > 0
    top = np.where(valid, db, -1e4).max(axis=1, keepdims=True)
    return valid & (db > top - range_db) & (db > -75.0)


def window_stats_v2(
    windows: np.ndarray,
    parts: tuple[str, ...] = STATS_V2_PARTS,
    speech: np.ndarray | None = None,
) -> np.ndarray:
    """Per-window statistics of the gain-normalised log bands over speech frames (N, D).

    band_std: each band's spread over time (the window's mean spectrum removed, so a fixed
    channel or loudness adds nothing); band_flux: mean |frame-to-frame change| per band;
    cep_std / dcep_std: spread of the first 20 cepstra of the normalised bands and of their
    deltas; shape: the mean normalised spectrum (carries channel: measured with and without).
    `speech`: the windows' `speech_mask_frames`, when the caller has it already.
    """
    w = windows.astype(np.float32, copy=False)  # read only: no copy when already float32
    speech = speech_mask_frames(w) if speech is None else speech
    m = speech.astype(np.float32)[:, :, None]  # (N, T, 1)
    n = np.maximum(m.sum(axis=1), 1.0)  # (N, 1)
    bands = w[:, :, :N_BANDS]
    x = bands - bands.mean(axis=2, keepdims=True)  # frame gain out
    mu = (x * m).sum(axis=1) / n
    xc = (x - mu[:, None, :]) * m
    out = []
    if "band_std" in parts:
        out.append(np.sqrt((xc**2).sum(axis=1) / n))
    both = m[:, 1:] * m[:, :-1]
    nb = np.maximum(both.sum(axis=1), 1.0)
    dx = (x[:, 1:] - x[:, :-1]) * both
    if "band_flux" in parts:
        out.append(np.abs(dx).sum(axis=1) / nb)
    dct = dct_matrix(N_BANDS, N_CEPS)
    if "cep_std" in parts:
        cep = xc @ dct
        out.append(np.sqrt((cep**2).sum(axis=1) / n))
    if "dcep_std" in parts:
        dcep = dx @ dct
        dmu = dcep.sum(axis=1) / nb
        out.append(np.sqrt((((dcep - dmu[:, None]) * both) ** 2).sum(axis=1) / nb))
    if "shape" in parts:
        out.append(mu)
    return np.concatenate(out, axis=1).astype(np.float32)


def window_stats_v3(windows: np.ndarray) -> np.ndarray:
    """synthetic_voice 3.x input (N, 168 + 48): `window_stats_v2`, then the spectral fine
    structure statistics of the same speech frames (`fine_structure.fine_stats`)."""
    w = windows.astype(np.float32, copy=False)  # read only
    speech = speech_mask_frames(w)  # one mask for both parts
    fine = fine_stats(w[:, :, FINE_COL:PITCH_COL], speech)
    return np.concatenate([window_stats_v2(w, speech=speech), fine], axis=1)


def window_stats_split(windows: np.ndarray) -> np.ndarray:
    """(N, 168 + 2 x 48 + 1), a candidate (recipe v8): `window_stats_v2`, then the spectral
    fine-structure statistics over the voiced and over the unvoiced speech frames apart
    (`pitch.VOICED`), then the voiced fraction. A vocoder renders harmonics and noise by
    different means; over all speech frames at once the two average out."""
    w = windows.astype(np.float32, copy=False)  # read only
    speech = speech_mask_frames(w)
    voiced = w[:, :, PITCH_COL] > VOICED
    fine = w[:, :, FINE_COL:PITCH_COL]
    n = np.maximum(speech.sum(axis=1), 1)
    frac = ((speech & voiced).sum(axis=1) / n)[:, None].astype(np.float32)
    return np.concatenate(
        [
            window_stats_v2(w, speech=speech),
            fine_stats(fine, speech & voiced),
            fine_stats(fine, speech & ~voiced),
            frac,
        ],
        axis=1,
    )


def window_stats_split_all(windows: np.ndarray) -> np.ndarray:
    """(N, 216 + 2 x 48 + 1), a candidate (recipe v9): `window_stats_v3` (the fine structure
    over all speech frames) and the voiced / unvoiced split of `window_stats_split`."""
    w = windows.astype(np.float32, copy=False)  # read only
    split = window_stats_split(w)
    n2 = split.shape[1] - 2 * N_FINE_STATS - 1  # window_stats_v2's part
    fine = fine_stats(w[:, :, FINE_COL:PITCH_COL], speech_mask_frames(w))
    return np.concatenate([split[:, :n2], fine, split[:, n2:]], axis=1)


def window_stats_v4(windows: np.ndarray) -> np.ndarray:
    """(N, 216 + 9): `window_stats_v3`, then the voicing and pitch statistics of the same
    speech frames (`pitch.pitch_stats`)."""
    w = windows.astype(np.float32, copy=False)  # read only
    voice = pitch_stats(w[:, :, PITCH_COL:], speech_mask_frames(w))
    return np.concatenate([window_stats_v3(w), voice], axis=1)
