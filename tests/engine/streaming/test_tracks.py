"""The order and the bounds in which a call's two parties reach the detector runtime
(``engine.streaming.tracks``): the agent's block of a span before the caller's, however the
wire interleaves them, and a caller never held back more than MAX_WAIT_BLOCKS blocks."""

from __future__ import annotations

import numpy as np

from engine.streaming.sessions import AGENT, CALLER
from engine.streaming.tracks import MAX_WAIT_BLOCKS, PartyBlocks

BLOCK = 800
CHUNK = 160  # 20 ms at 8 kHz, one Twilio media frame


def _chunk(value: float) -> np.ndarray:
    return np.full(CHUNK, value, dtype=np.float32)


def _released(blocks: PartyBlocks, sends: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """(party, first sample) of every released block, in release order."""
    out = []
    for party, v in sends:
        out += [(p, float(x[0])) for p, x in blocks.add(party, _chunk(v))]
    return out


def test_the_agents_block_of_a_span_is_handed_over_before_the_callers() -> None:
    blocks = PartyBlocks(BLOCK, agent=True, consented=lambda: True)
    # The caller's chunk of each 20 ms arrives first, as it may on the wire.
    sends = [(party, float(i)) for i in range(20) for party in (CALLER, AGENT)]
    released = _released(blocks, sends)
    assert [p for p, _ in released] == [AGENT, CALLER] * 4
    # Each pair covers the same span: the blocks starting at chunks 0, 5, 10, 15.
    assert [v for _, v in released] == [0.0, 0.0, 5.0, 5.0, 10.0, 10.0, 15.0, 15.0]


def test_a_silent_agent_side_holds_the_caller_back_by_at_most_the_bound() -> None:
    blocks = PartyBlocks(BLOCK, agent=True, consented=lambda: True)
    chunks_per_block = BLOCK // CHUNK
    first = None
    for i in range(10 * chunks_per_block):
        if blocks.add(CALLER, _chunk(1.0)):
            first = i + 1
            break
    assert first == (1 + MAX_WAIT_BLOCKS) * chunks_per_block


def test_without_consent_the_agents_audio_is_dropped_and_holds_nothing_back() -> None:
    consent = {"media_analysis": True}
    blocks = PartyBlocks(BLOCK, agent=True, consented=lambda: consent["media_analysis"])
    consent["media_analysis"] = False  # withdrawn during the call
    sends = [(party, 1.0) for _ in range(10) for party in (CALLER, AGENT)]
    released = _released(blocks, sends)
    assert [p for p, _ in released] == [CALLER, CALLER]
    assert blocks.agent_skipped == 10 * CHUNK
    assert blocks.flush() == []


def test_a_caller_only_call_hands_each_block_over_as_it_fills() -> None:
    blocks = PartyBlocks(BLOCK, agent=False, consented=lambda: True)
    released = _released(blocks, [(CALLER, float(i)) for i in range(10)])
    assert released == [(CALLER, 0.0), (CALLER, 5.0)]


def test_the_end_of_the_stream_flushes_the_agent_first() -> None:
    blocks = PartyBlocks(BLOCK, agent=True, consented=lambda: True)
    _released(blocks, [(CALLER, 1.0), (AGENT, 2.0)])
    assert [(p, len(x)) for p, x in blocks.flush()] == [(AGENT, CHUNK), (CALLER, CHUNK)]
