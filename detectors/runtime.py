"""Streaming runtime: many concurrent sessions, bounded buffers, micro-batched inference.

Frames from every session go into a per-session, per-party hop buffer (at most one hop of
samples). A full hop becomes a `Window` in the session's pending queue. `process()` takes
the oldest pending window of up to `max_batch` sessions, highest risk first, runs the VAD
and every batch-capable model once for the whole batch, then lets each detector turn its
window into a signal. After that the window's samples are released, so no raw media
outlives its window. Under backlog memory stays bounded and the riskiest calls keep their
analysis: a session more than `max_pending_per_session` windows behind loses its oldest
(reason `session_backlog`); when more windows wait than `max_pending` across sessions, the
oldest windows of the lowest-risk sessions are dropped (`replica_backlog`). Drops are
counted per session, per detector that missed them and by reason.

Consent to media analysis is the session's (`open_session(media=...)`,
`set_media_consent`): without it the media detectors (audio, video, audio-visual) and the
second pass do not run on its windows at all, so nothing is measured of a voice or face
the caller did not allow; the non-media detectors (behavior, session) still do. When
consent is granted mid-call, what is buffered from before it (the partial hop, the VAD's
state) is dropped and the media detectors start afresh: no audio from before the consent
reaches a media signal. `last_windows` names the windows of the last micro-batch, signal or
no signal, so a caller can tell which sessions advanced a hop.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field

from detectors.failure_log import FailureLog
from detectors.frontend import compute_features
from detectors.metrics import RuntimeMetrics, runtime_metrics
from detectors.protocol import Detector, Series, Window
from detectors.second_pass import SecondPass, SecondPassStart
from detectors.vad import SileroVad
from signals import MEDIA_MODALITIES, Signal

log = logging.getLogger(__name__)


class RuntimeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_rate: int = Field(16_000, description="Input frames must already be at this rate.")
    hop_ms: int = Field(1_000, ge=100, le=10_000)
    max_pending: int = Field(4_096, ge=1, description="Windows waiting across all sessions.")
    max_pending_per_session: int = Field(8, ge=1)
    max_batch: int = Field(128, ge=1)
    series_keep_ms: int = Field(10_000, description="How much of each feature series is kept.")
    series_max_points: int = Field(2_000, ge=10, description="Points kept per series at most.")


class SessionNotFoundError(KeyError):
    code = "session_unknown"


@dataclass(slots=True)
class Emission:
    session_id: str
    seq: int
    start_ms: int
    party: str
    signal: Signal


@dataclass
class _Party:
    buffer: np.ndarray
    fill: int = 0
    samples_seen: int = 0
    vad_state: np.ndarray = field(default_factory=SileroVad.new_state)
    noise_floor_db: float | None = None
    #: The VAD and noise floor start afresh at the first window from this seq on (consent
    #: granted mid-call: what they carry from before it must not reach a media signal).
    fresh_from_seq: int | None = None


@dataclass
class _Session:
    id: str
    risk: float
    metadata: dict[str, Any]
    parties: dict[str, _Party] = field(default_factory=dict)
    pending: deque[tuple[int, float, Window]] = field(default_factory=deque)
    states: dict[str, Any] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)  # detectors that raised on its windows
    series: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    seq: int = 0
    processed: int = 0
    dropped: int = 0
    #: The first window seq the media detectors may read (consent to media analysis from
    #: that window on); None: no consent, they read none of this session's windows.
    media_from_seq: int | None = 0


class StreamingRuntime:
    def __init__(
        self,
        detectors: Iterable[Detector],
        config: RuntimeConfig | None = None,
        registry: CollectorRegistry | None = None,
        vad: SileroVad | None = None,
        second_pass: SecondPass | None = None,
    ) -> None:
        self.config = config or RuntimeConfig()
        self.detectors: list[Detector] = list(detectors)
        self.metrics: RuntimeMetrics = runtime_metrics(registry)
        self._failures = FailureLog(log)
        # Stage 2: pool detectors run only on the next windows of sessions obligated to.
        self.second_pass = second_pass or SecondPass(registry=registry)
        self._vad = vad
        self._sessions: dict[str, _Session] = {}
        self._enqueued = 0  # global order of windows, for "oldest first" dropping
        self._pending = 0
        self._hop = self.config.sample_rate * self.config.hop_ms // 1000
        self.started = False
        #: ``(session_id, party, seq)`` of every window of the last ``process()`` call.
        self.last_windows: list[tuple[str, str, int]] = []

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._vad is None:
            self._vad = SileroVad()
        for det in self.detectors:
            det.start()
        self.started = True

    def stop(self) -> None:
        for det in self.detectors:
            det.stop()
        self.second_pass.stop()
        self.started = False

    def open_session(
        self,
        session_id: str,
        risk: float = 0.0,
        metadata: Mapping[str, Any] | None = None,
        *,
        media: bool = True,
    ) -> None:
        """``media``: whether the caller consented to media analysis (see the module)."""
        if session_id not in self._sessions:
            sess = _Session(
                id=session_id,
                risk=risk,
                metadata=dict(metadata or {}),
                media_from_seq=0 if media else None,
            )
            sess.states = {d.name: d.new_state() for d in self.detectors}
            self._sessions[session_id] = sess
            self.metrics.sessions.set(len(self._sessions))

    def close_session(self, session_id: str, failures: set[str] | None = None) -> list[Emission]:
        """Process what is left of the session (a final partial hop) and forget it.

        `failures`, when given, receives the names of the detectors that raised on any of
        the session's windows (their signals are missing for a reason, not for lack of
        speech)."""
        sess = self._session(session_id)
        for party in list(sess.parties):
            self._enqueue_partial(sess, party)
        out: list[Emission] = []
        while sess.pending:
            out.extend(self._run_batch([self._pop(sess)]))
        if failures is not None:
            failures.update(sess.failed)
        del self._sessions[session_id]
        self.second_pass.close(session_id)
        self.metrics.sessions.set(len(self._sessions))
        return out

    def set_risk(self, session_id: str, risk: float) -> None:
        """Higher-risk sessions are served first (e.g. a payout call, or a high fused risk)."""
        self._session(session_id).risk = float(risk)

    def reset_states(self, session_id: str, names: Iterable[str]) -> list[str]:
        """Forget what the named detectors accumulated for the session (a withdrawn consent:
        nothing measured under it goes on being signalled). Returns the names reset."""
        sess = self._session(session_id)
        wanted = set(names)
        done = []
        for d in self.detectors:
            if d.name in wanted:
                sess.states[d.name] = d.new_state()
                done.append(d.name)
        return done

    def set_media_consent(self, session_id: str, allowed: bool) -> list[str]:
        """The session's consent to media analysis changed. Withdrawn: the media
        detectors read none of its later windows (windows already queued included) and
        forget what they hold. Granted: they start afresh at the next window, and the audio
        buffered before it (a partial hop, the VAD's state, the noise floor) is dropped.
        Returns the names of the detectors reset (none when nothing changed)."""
        sess = self._session(session_id)
        if allowed == (sess.media_from_seq is not None):
            return []
        if allowed:
            for p in sess.parties.values():
                # Skipped, not windowed: start times stay those of the call.
                p.samples_seen += p.fill
                p.buffer[: p.fill] = 0.0
                p.fill = 0
                p.fresh_from_seq = sess.seq
            sess.media_from_seq = sess.seq  # windows queued before it stay unread
        else:
            sess.media_from_seq = None
            self.second_pass.close(session_id)
        media = [d.name for d in self.detectors if d.modality in MEDIA_MODALITIES]
        return self.reset_states(session_id, media)

    def update_metadata(self, session_id: str, **metadata: Any) -> None:
        self._session(session_id).metadata.update(metadata)

    def enable_second_pass(
        self, session_id: str, names: Iterable[str], windows: int = 5, party: str = "remote"
    ) -> SecondPassStart:
        """Run the listed pool detectors on this session's next ``windows`` windows only
        (a ``second_pass`` obligation); see ``detectors.second_pass``."""
        self._session(session_id)
        first = [d.name for d in self.detectors]
        return self.second_pass.enable(session_id, names, windows, first, party)

    # --- input ---------------------------------------------------------------------------

    def push_audio(self, session_id: str, samples: np.ndarray, party: str = "remote") -> int:
        """Append mono float32 frames; returns how many windows became ready."""
        sess = self._session(session_id)
        p = sess.parties.get(party)
        if p is None:
            p = sess.parties[party] = _Party(buffer=np.zeros(self._hop, dtype=np.float32))
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        ready = 0
        while len(x):
            take = min(len(x), self._hop - p.fill)
            p.buffer[p.fill : p.fill + take] = x[:take]
            p.fill += take
            x = x[take:]
            if p.fill == self._hop:
                self._enqueue(sess, party, p.buffer.copy())
                ready += 1
        return ready

    def push_series(
        self, session_id: str, name: str, times_ms: np.ndarray, values: np.ndarray
    ) -> None:
        """Compact feature series from the edge (e.g. `mouth_openness`), in session time."""
        sess = self._session(session_id)
        # bounded by time (series_keep_ms) and by count, whatever the sender does
        q = sess.series.setdefault(name, deque(maxlen=self.config.series_max_points))
        for t, v in zip(np.asarray(times_ms, float), np.asarray(values, float), strict=True):
            q.append((float(t), float(v)))
        if q:
            horizon = q[-1][0] - self.config.series_keep_ms
            while q and q[0][0] < horizon:
                q.popleft()

    # --- scheduling ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return self._pending

    def session_stats(self, session_id: str) -> dict[str, int]:
        s = self._session(session_id)
        buffered = sum(p.fill for p in s.parties.values())
        queued = sum(w.samples.size for _, _, w in s.pending if w.samples is not None)
        return {
            "processed": s.processed,
            "dropped": s.dropped,
            "pending": len(s.pending),
            "buffered_samples": buffered,
            "queued_samples": queued,
        }

    def oldest_wait_s(self) -> float:
        """How long the oldest window still waiting has waited (0.0 when none waits): how
        far behind real time the detectors are."""
        waits = [s.pending[0][1] for s in self._sessions.values() if s.pending]
        return time.perf_counter() - min(waits) if waits else 0.0

    def process(self, max_batch: int | None = None) -> list[Emission]:
        """Run one micro-batch: the oldest window of each of the riskiest sessions."""
        limit = max_batch or self.config.max_batch
        self.last_windows = []
        ready = [s for s in self._sessions.values() if s.pending]
        if not ready:
            return []
        ready.sort(key=lambda s: (-s.risk, s.pending[0][0]))
        return self._run_batch([self._pop(s) for s in ready[:limit]])

    def drain(self) -> list[Emission]:
        out: list[Emission] = []
        while self._pending:
            out.extend(self.process())
        return out

    # --- internals ------------------------------------------------------------------------

    def _session(self, session_id: str) -> _Session:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise SessionNotFoundError(f"no open session {session_id!r}") from None

    def _enqueue_partial(self, sess: _Session, party: str) -> None:
        p = sess.parties[party]
        if p.fill >= self.config.sample_rate // 4:  # shorter tails carry too little
            self._enqueue(sess, party, p.buffer[: p.fill].copy())
        p.buffer[: p.fill] = 0.0
        p.fill = 0

    def _enqueue(self, sess: _Session, party: str, samples: np.ndarray) -> None:
        p = sess.parties[party]
        start_ms = p.samples_seen * 1000 // self.config.sample_rate
        p.samples_seen += len(samples)
        p.fill = 0
        win = Window(
            session_id=sess.id,
            seq=sess.seq,
            start_ms=start_ms,
            duration_ms=len(samples) * 1000 // self.config.sample_rate,
            sample_rate=self.config.sample_rate,
            samples=samples,
            party=party,
        )
        sess.seq += 1
        self._enqueued += 1
        sess.pending.append((self._enqueued, time.perf_counter(), win))
        self._pending += 1
        if len(sess.pending) > self.config.max_pending_per_session:
            self._drop(sess, "session_backlog")
        while self._pending > self.config.max_pending:
            # The lowest-risk session gives up its oldest window first: under overload the
            # calls that matter most keep their analysis (ties: the oldest window goes).
            victim = min(
                (s for s in self._sessions.values() if s.pending),
                key=lambda s: (s.risk, s.pending[0][0]),
            )
            self._drop(victim, "replica_backlog")
        self.metrics.pending.set(self._pending)

    def _drop(self, sess: _Session, reason: str) -> None:
        _, _, win = sess.pending.popleft()
        win.release()
        self._pending -= 1
        sess.dropped += 1
        self.metrics.dropped_windows.labels(reason).inc()
        for det in self.detectors:
            self.metrics.dropped.labels(det.name).inc()

    def _pop(self, sess: _Session) -> tuple[_Session, float, Window]:
        _, t0, win = sess.pending.popleft()
        self._pending -= 1
        return sess, t0, win

    def _series_for(self, sess: _Session, win: Window) -> dict[str, Series]:
        out = {}
        for name, q in sess.series.items():
            if q:
                arr = np.array(q, dtype=np.float64)
                out[name] = Series(times_ms=arr[:, 0], values=arr[:, 1])
        return out

    def _run_batch(self, batch: list[tuple[_Session, float, Window]]) -> list[Emission]:
        if not batch:
            return []
        if not self.started:
            self.start()
        assert self._vad is not None
        t_front = time.perf_counter()
        wins = [w for _, _, w in batch]
        for s, _, w in batch:
            p = s.parties[w.party]
            if p.fresh_from_seq is not None and w.seq >= p.fresh_from_seq:
                p.vad_state, p.noise_floor_db, p.fresh_from_seq = SileroVad.new_state(), None, None
        samples = [w.samples for w in wins]
        vad_states = [s.parties[w.party].vad_state for s, _, w in batch]
        probs = self._vad.run([x for x in samples if x is not None], vad_states)
        for (sess, _, w), vp in zip(batch, probs, strict=True):
            assert w.samples is not None
            party = sess.parties[w.party]
            w.features = compute_features(w.samples, vp, party.noise_floor_db)
            party.noise_floor_db = w.features.quality.noise_floor_db
            w.risk = sess.risk
            w.metadata = sess.metadata
            w.series = self._series_for(sess, w)
        front_each = (time.perf_counter() - t_front) / len(batch)
        self.metrics.latency.labels("frontend").observe(front_each)

        results: list[list[Signal]] = [[] for _ in batch]
        # Windows the media detectors may read: of sessions consenting since before them.
        media_ok = [
            i
            for i, (s, _, w) in enumerate(batch)
            if s.media_from_seq is not None and w.seq >= s.media_from_seq
        ]
        everyone = list(range(len(batch)))
        for det in self.detectors:
            idx = media_ok if det.modality in MEDIA_MODALITIES else everyone
            if not idx:
                continue
            its_wins = [wins[i] for i in idx]
            states = [batch[i][0].states[det.name] for i in idx]
            t0 = time.perf_counter()
            try:
                batch_fn = getattr(det, "process_batch", None)
                if batch_fn is not None:
                    sigs = batch_fn(its_wins, states)
                else:
                    sigs = [det.process(w, st) for w, st in zip(its_wins, states, strict=True)]
            except Exception as exc:
                # A failing detector must not take the others down; it is counted instead
                # (and its first failure logged, so the missing signal has a reason).
                self.metrics.errors.labels(det.name).inc(len(idx))
                self._failures.record(det.name, exc, "the edge runtime")
                for i in idx:
                    batch[i][0].failed.add(det.name)
                continue
            per = (time.perf_counter() - t0) / len(idx)
            for i, sig in zip(idx, sigs, strict=True):
                self.metrics.latency.labels(det.name).observe(per)
                if sig is not None:
                    results[i].append(sig)

        # The second pass is media analysis too.
        extras = self.second_pass.run([(batch[i][0].id, wins[i]) for i in media_ok])
        for i, extra in zip(media_ok, extras, strict=True):
            results[i].extend(extra)

        out: list[Emission] = []
        now = time.perf_counter()
        for i, (sess, t0, w) in enumerate(batch):
            w.release()
            sess.processed += 1
            self.last_windows.append((sess.id, w.party, w.seq))
            self.metrics.window_to_signal.observe(now - t0)
            out.extend(Emission(sess.id, w.seq, w.start_ms, w.party, sig) for sig in results[i])
        self.metrics.pending.set(self._pending)
        return out
