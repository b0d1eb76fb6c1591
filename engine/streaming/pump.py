"""Live audio into the detector runtime, so that a backlog is the runtime's to schedule.

Each stream hands its decoded audio over on the event loop (``stage``: no waiting, no
thread hop). One pump task moves everything staged into the runtime and runs one
micro-batch (``StreamingRuntime.process``: the oldest window of each of the riskiest
sessions), then again while windows wait. So when the detectors fall behind, what waits is
windows in the runtime's queue, where the bounds apply: the highest-risk sessions are served
first, a session too far behind loses its oldest windows, and past the replica's bound
(``live_max_backlog_windows``) the lowest-risk sessions' oldest windows go (all counted in
``liveguard_detector_dropped_windows_total``). Handing each block to the lane and draining
there would instead queue the backlog as thread-pool work, unbounded and first come first
served, out of the scheduler's sight.

A session's decisions raise or lower its priority: ``set_risk`` takes the latest decision's
risk into the runtime at the next step. The staged audio of one session is bounded too (a
client sending far faster than real time loses its oldest, counted as ``session_backlog``).
Every call into the runtime runs in the detector lane (it is not thread-safe).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import structlog

from detectors.runtime import Emission, SessionNotFoundError, StreamingRuntime

log = structlog.get_logger("liveguard.live")

InLane = Callable[..., Awaitable[Any]]
#: What one micro-batch hands on: its signals, and ``(session_id, party, seq)`` of every
#: window it processed (a window that gave no signal still advanced its session a hop).
Absorb = Callable[[list[Emission], list[tuple[str, str, int]]], Awaitable[None]]


class AudioPump:
    def __init__(
        self,
        drt: StreamingRuntime,
        in_lane: InLane,
        absorb: Absorb,
        first: str | None = None,
    ) -> None:
        self.drt = drt
        #: The party whose staged audio goes into the runtime first (the agent's).
        self._first = first
        self._in_lane = in_lane
        self._absorb = absorb
        self._hop = drt.config.sample_rate * drt.config.hop_ms // 1000
        # Staged beyond what the runtime would keep of one session: that much is lost anyway.
        self._cap = self._hop * (drt.config.max_pending_per_session + 1)
        self._staged: dict[tuple[str, str], deque[np.ndarray]] = {}
        self._sizes: dict[tuple[str, str], int] = {}
        self._risk: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        #: How far behind real time the detectors are (s): the oldest waiting window's wait
        #: after the last micro-batch, 0 when the pump is idle. For protocols that can ask
        #: the client to pause (AudioHook), since handing audio over never waits.
        self.lag_s = 0.0

    def stage(self, session_id: str, party: str, samples: np.ndarray) -> None:
        key = (session_id, party)
        blocks = self._staged.setdefault(key, deque())
        blocks.append(samples)
        size = self._sizes.get(key, 0) + len(samples)
        while size > self._cap and len(blocks) > 1:
            lost = blocks.popleft()
            size -= len(lost)
            # Counted in windows' worth of audio, like the runtime's own drops.
            self.drt.metrics.dropped_windows.labels("session_backlog").inc(len(lost) / self._hop)
        self._sizes[key] = size
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="detector-pump")

    def set_risk(self, session_id: str, risk: float) -> None:
        self._risk[session_id] = risk

    async def close(self, session_id: str) -> list[Emission]:
        """The session's staged audio in, its last windows processed, the session forgotten."""
        staged = {k: self._staged.pop(k) for k in list(self._staged) if k[0] == session_id}
        for k in staged:
            self._sizes.pop(k, None)
        self._risk.pop(session_id, None)

        def work() -> list[Emission]:
            self._push(staged)
            return self.drt.close_session(session_id)

        return await self._in_lane(work)  # type: ignore[no-any-return]

    async def reset(self, session_id: str, names: list[str]) -> list[str]:
        """Detector states of the session forgotten, in the runtime's lane (see
        ``StreamingRuntime.reset_states``); a session already gone resets nothing."""

        def work() -> list[str]:
            try:
                return self.drt.reset_states(session_id, names)
            except SessionNotFoundError:
                return []

        return await self._in_lane(work)  # type: ignore[no-any-return]

    async def media_consent(self, session_id: str, allowed: bool) -> list[str]:
        """The session's consent to media analysis changed (``StreamingRuntime.
        set_media_consent``). Its audio staged so far goes into the runtime first, in the
        same lane call: audio from before the change is analysed as it was consented (or
        not), never as the change says."""
        staged = {k: self._staged.pop(k) for k in list(self._staged) if k[0] == session_id}
        for k in staged:
            self._sizes.pop(k, None)

        def work() -> list[str]:
            try:
                self._push(staged)
                return self.drt.set_media_consent(session_id, allowed)
            except SessionNotFoundError:
                return []

        return await self._in_lane(work)  # type: ignore[no-any-return]

    async def idle(self) -> None:
        """Until nothing is staged or waiting (for shutdown and tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    # --- the pump -----------------------------------------------------------------------

    def _push(self, staged: dict[tuple[str, str], deque[np.ndarray]]) -> None:
        # The agent's audio first: a session's windows are processed in the order they
        # fill, and turn-taking reads a hop's caller window after the agent's of that hop
        # (engine.streaming.tracks hands the blocks over in that order; this keeps it when
        # both are staged for one step). sorted() is stable: sessions keep their order.
        first = self._first
        for (sid, party), blocks in sorted(staged.items(), key=lambda kv: kv[0][1] != first):
            with contextlib.suppress(SessionNotFoundError):  # ended meanwhile
                self.drt.push_audio(sid, np.concatenate(list(blocks)), party=party)

    def _step(
        self, staged: dict[tuple[str, str], deque[np.ndarray]], risk: dict[str, float]
    ) -> tuple[list[Emission], list[tuple[str, str, int]]]:
        for sid, r in risk.items():
            with contextlib.suppress(SessionNotFoundError):
                self.drt.set_risk(sid, r)
        self._push(staged)
        out = self.drt.process()
        self.lag_s = self.drt.oldest_wait_s()
        return out, list(self.drt.last_windows)

    async def _decide(self, emissions: list[Emission], windows: list[tuple[str, str, int]]) -> None:
        try:
            await self._absorb(emissions, windows)
        except Exception as exc:  # one batch's decisions failed; the pump goes on
            log.error("live.absorb_failed", error=type(exc).__name__, detail=str(exc)[:300])

    async def _run(self) -> None:
        deciding: asyncio.Future[None] | None = None
        try:
            while self._staged or self.drt.pending:
                staged, self._staged, self._sizes = self._staged, {}, {}
                risk, self._risk = self._risk, {}
                emissions, windows = await self._in_lane(self._step, staged, risk)
                # The previous batch's decisions are made while this batch ran; one batch
                # of decisions in flight at most.
                if deciding is not None:
                    await deciding
                deciding = asyncio.ensure_future(self._decide(emissions, windows))
            if deciding is not None:
                await deciding
            self.lag_s = 0.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next staged block starts a new pump
            log.error("live.pump_failed", error=type(exc).__name__, detail=str(exc)[:300])
