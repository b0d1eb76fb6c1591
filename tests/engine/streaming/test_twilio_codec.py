"""The Twilio adapter's pieces: μ-law, the 8 → 16 kHz resampler, ordering by chunk."""

from __future__ import annotations

import numpy as np

from engine.streaming.twilio import ChunkOrder, Upsampler, mulaw_decode, mulaw_encode


def test_mulaw_round_trip_is_within_the_codec_error() -> None:
    x = np.linspace(-0.9, 0.9, 2001)
    y = mulaw_decode(mulaw_encode(x))
    # G.711 μ-law: relative error about 1/16 at the top of each segment.
    assert np.all(np.abs(y - x) <= np.maximum(0.07 * np.abs(x), 2e-3))


def test_mulaw_decode_matches_g711_reference_points() -> None:
    assert mulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00])).tolist() == [
        0.0,
        0.0,
        32124 / 32768,
        -32124 / 32768,
    ]


def test_upsampling_keeps_a_tone_in_chunks() -> None:
    t = np.arange(8000) / 8000
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    up = Upsampler()
    y = np.concatenate([up(tone[i : i + 160]) for i in range(0, 8000, 160)])
    assert len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y[1000:]))
    peak_hz = np.argmax(spectrum) * 16000 / len(y[1000:])
    assert abs(peak_hz - 1000) < 5


def test_chunks_come_out_in_order_with_duplicates_discarded() -> None:
    order = ChunkOrder()
    out = [b for c in [2, 1, 1, 3, 2] for b in order.add(c, bytes([c]))]
    assert out == [b"\x01", b"\x02", b"\x03"]
    assert order.discarded == 2


def test_a_missing_chunk_is_given_up_as_a_gap() -> None:
    order = ChunkOrder(window=3)
    out = [b for c in [1, 3, 4, 5, 6] for b in order.add(c, bytes([c]))]
    assert out == [b"\x01", b"\x03", b"\x04", b"\x05", b"\x06"]
    assert order.gaps == 1


def test_a_chunk_arriving_after_its_gap_was_given_up_is_discarded() -> None:
    order = ChunkOrder(window=1)
    for c in [1, 3, 4]:
        order.add(c, b"x")
    assert order.add(2, b"late") == []
    assert order.discarded == 1
