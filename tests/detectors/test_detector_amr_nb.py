"""AMR-NB call-codec condition (detectors/amr_nb.py), checked against ffmpeg's own decoder."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from detectors import amr_nb
from detectors.degrade import available_conditions

from .helpers import speech


def _pcm8k(seconds: float = 2.0) -> np.ndarray:
    x = speech("LibriSpeech train", 0)[: int(16_000 * seconds)]
    return np.round(np.clip(x[::2], -1, 1) * 32767).astype(np.int16)


def test_frames_carry_the_storage_format_header_and_the_mode_size() -> None:
    low = amr_nb.encode(_pcm8k(0.2), "4k75")
    high = amr_nb.encode(_pcm8k(0.2), "12k2")
    assert len(low) == 10  # 0.2 s = ten 20 ms frames
    # RFC 4867 section 5.3: F=0, FT=mode, Q=1 -> (mode << 3) | 0x04; 95 / 244 speech bits
    assert {f[0] for f in low} == {0x04} and {len(f) for f in low} == {13}
    assert {f[0] for f in high} == {0x3C} and {len(f) for f in high} == {32}


def test_an_independent_decoder_reads_our_stream() -> None:
    ff = shutil.which("ffmpeg")
    assert ff, "the suite installs ffmpeg (make sysdeps)"
    frames = amr_nb.encode(_pcm8k(), "4k75")
    amr_file = b"#!AMR\n" + b"".join(frames)  # RFC 4867 section 5: single-channel storage
    out = subprocess.run(
        [ff, "-v", "error", "-f", "amr", "-i", "pipe:0", "-f", "s16le", "-ac", "1", "pipe:1"],
        input=amr_file,
        capture_output=True,
        check=True,
    ).stdout
    theirs = np.frombuffer(out, dtype="<i2").astype(float)
    ours = amr_nb.decode(frames).astype(float)
    n = min(len(theirs), len(ours))
    assert n == len(frames) * amr_nb.FRAME
    assert np.corrcoef(theirs[:n], ours[:n])[0, 1] > 0.99


def test_round_trip_keeps_length_and_removes_the_upper_band() -> None:
    x = speech("LibriSpeech train", 1)[:32_000]
    y = amr_nb.round_trip(x)
    assert y.shape == x.shape and y.dtype == np.float32
    spec = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / 16_000)
    assert spec[freqs > 4200].sum() < 1e-3 * spec[freqs < 3800].sum()
    # the decoded speech lines up with the input (the encoder's look-ahead is removed)
    c = np.correlate(y[4000:20000], x[4000 - 200 : 20000 + 200], "valid")
    assert abs(int(c.argmax()) - 200) <= 4


def test_unknown_mode_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown AMR-NB mode '3k'"):
        amr_nb.encode(_pcm8k(0.1), "3k")


def test_amr_is_an_evaluation_condition_where_the_library_exists() -> None:
    assert amr_nb.available(), "the suite installs libopencore-amrnb0 (make sysdeps)"
    assert "amr_nb_4k75" in available_conditions()
