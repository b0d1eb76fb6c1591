"""A call's two parties into the detector runtime: blocks, the agent's before the caller's.

Every protocol hands its decoded audio to the registry in blocks (about 100 ms: fewer
thread hops than one per wire frame), per party, resampled to 16 kHz where the wire is
8 kHz. The caller's audio is what decisions are about; the agent's (Twilio's outbound
track, AudioHook's internal channel, the native protocol's declared agent) is analysed only
for the conversation's rhythm (``behavior.turn_taking``), and costs the frontend (STFT and
VAD) of one more window per hop.

Order matters for that rhythm: turn-taking judges a caller's turn against the agent's track
"already updated to the end of this hop", so the agent's window of a hop must reach the
runtime before the caller's window of the same hop (the runtime processes a session's
windows in the order they fill). Otherwise a reply that starts in the hop where the agent
stopped is taken for talking over the agent. AudioHook carries both channels in one frame;
Twilio and the native protocol carry each party in its own messages, so either may run a
little ahead. A caller block therefore waits for the agent's audio covering the same span,
at most ``MAX_WAIT_BLOCKS`` blocks: an agent track that lags or sends nothing delays the
caller's blocks by at most that, and never stalls its decisions. What waits is bounded: at most ``1 + MAX_WAIT_BLOCKS`` blocks
of the caller and one of the agent.

Consent: the agent's audio is analysed only while the session's consent to media analysis
holds (checked at every block, so a context update withdrawing it stops the agent's feed at
once). The flag covers the call's voice analysis; ``behavior.turn_taking`` reads both
parties' voice activity but is not a media-derived signal, so ``Runtime.decide`` would not
set it aside without consent: not feeding the agent's track is what keeps it out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.streaming.sessions import AGENT, CALLER

#: How many blocks past its own a caller block may wait for the agent's.
MAX_WAIT_BLOCKS = 2

Resample = Callable[[np.ndarray], np.ndarray]


class PartyBlocks:
    """Per-party blocks of ``block`` input samples; ``add`` returns the ``(party, 16 kHz
    samples)`` blocks ready to push, in the order to push them."""

    def __init__(
        self,
        block: int,
        *,
        agent: bool,
        consented: Callable[[], bool],
        resampler: Callable[[], Resample] | None = None,
    ) -> None:
        self.block = block
        #: Whether this call carries the agent's audio at all (a track, a channel, a party).
        self.agent = agent
        self._consented = consented
        parties = (AGENT, CALLER) if agent else (CALLER,)
        self._pending: dict[str, list[np.ndarray]] = {p: [] for p in parties}
        self._size = dict.fromkeys(parties, 0)
        #: Input samples handed over (or, for the agent without consent, passed by) so far.
        self._pos = dict.fromkeys(parties, 0)
        self._resample = {p: resampler() for p in parties} if resampler else {}
        #: The agent's samples not analysed for want of consent (counted for the stream log).
        self.agent_skipped = 0

    def add(self, party: str, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        if party not in self._pending:
            return []  # an agent track on a call that declared none: nothing to analyse
        if party == AGENT and not self._consented():
            # Passed by, not kept: the caller's blocks need not wait for it.
            self._pos[AGENT] += len(x)
            self.agent_skipped += len(x)
            return self._caller_ready()
        self._pending[party].append(x)
        self._size[party] += len(x)
        out: list[tuple[str, np.ndarray]] = []
        if party == AGENT and self._size[AGENT] >= self.block:
            out.append(self._take(AGENT))
        return out + self._caller_ready()

    def flush(self) -> list[tuple[str, np.ndarray]]:
        """Everything still waiting (the end of the stream, a gap): the agent's first."""
        return [self._take(p) for p in self._pending if self._size[p]]

    def _caller_ready(self) -> list[tuple[str, np.ndarray]]:
        size = self._size[CALLER]
        if size < self.block:
            return []
        covered = not self.agent or self._pos[AGENT] >= self._pos[CALLER] + size
        if covered or size >= (1 + MAX_WAIT_BLOCKS) * self.block:
            return [self._take(CALLER)]
        return []

    def _take(self, party: str) -> tuple[str, np.ndarray]:
        x = np.concatenate(self._pending[party])
        self._pending[party], self._size[party] = [], 0
        self._pos[party] += len(x)
        resample = self._resample.get(party)
        return party, (resample(x) if resample else x)
