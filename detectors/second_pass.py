"""Stage 2 in the streaming runtime: heavier detectors on one session's next windows.

A decision that carries a ``second_pass`` obligation names detectors to run on more of
that session's audio. The runtime's first-pass detectors run on every window of every
session; the second-pass *pool* holds detectors that run only where an obligation asked
for them, on that session's next ``windows`` windows, and on no other session's. Names the
obligation lists that are already first-pass detectors need nothing more (they run
anyway); names registered nowhere are skipped and reported, never an error (a policy may
name a model this replica does not ship yet).

Bounded: at most ``max_sessions`` sessions in second pass at once (past it a request is
refused and counted), at most ``max_windows`` windows per request. A pool detector's
models load on its first use, so a replica that never escalates never holds them.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from detectors.failure_log import FailureLog
from detectors.protocol import Detector, Window
from signals import Signal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SecondPassStart:
    """What ``enable`` did with an obligation's list of detectors."""

    session_id: str
    started: tuple[str, ...]  # pool detectors now running on the session's next windows
    already_running: tuple[str, ...]  # first-pass detectors: they run on every window
    skipped: tuple[str, ...]  # registered nowhere on this replica
    windows: int
    refused: str | None = None  # why nothing was started (the concurrency bound)
    failed: tuple[str, ...] = ()  # registered, but their models did not load


@dataclass
class _Active:
    names: tuple[str, ...]
    windows_left: int
    party: str
    states: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SecondPassMetrics:
    requests: Counter  # by outcome: started | first_pass_only | refused_busy
    windows: Counter  # windows a pool detector processed, per detector
    skipped: Counter  # obligation names not registered on this replica
    errors: Counter  # windows a pool detector raised on, per detector
    failed: Counter  # pool detectors whose models did not load
    active: Gauge


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, SecondPassMetrics] = (
    weakref.WeakKeyDictionary()
)


def second_pass_metrics(registry: CollectorRegistry | None = None) -> SecondPassMetrics:
    registry = registry or REGISTRY
    if registry not in _BY_REGISTRY:
        _BY_REGISTRY[registry] = SecondPassMetrics(
            requests=Counter(
                "liveguard_second_pass_requests",
                "Second-pass obligations the streaming runtime acted on, by outcome.",
                ["outcome"],
                registry=registry,
            ),
            windows=Counter(
                "liveguard_second_pass_windows",
                "Windows processed by a second-pass (pool) detector, per detector.",
                ["detector"],
                registry=registry,
            ),
            skipped=Counter(
                "liveguard_second_pass_skipped_detectors",
                "Detectors an obligation named that are not registered on this replica.",
                ["detector"],
                registry=registry,
            ),
            errors=Counter(
                "liveguard_second_pass_errors",
                "Windows a second-pass (pool) detector failed on, per detector.",
                ["detector"],
                registry=registry,
            ),
            failed=Counter(
                "liveguard_second_pass_failed_detectors",
                "Pool detectors whose models failed to load when an obligation named them.",
                ["detector"],
                registry=registry,
            ),
            active=Gauge(
                "liveguard_second_pass_sessions",
                "Sessions whose next windows run second-pass detectors.",
                registry=registry,
            ),
        )
    return _BY_REGISTRY[registry]


class SecondPass:
    """The pool and the sessions currently in second pass. Not thread-safe: owned by the
    ``StreamingRuntime`` (whose callers already serialize every call)."""

    def __init__(
        self,
        pool: Iterable[Detector] = (),
        *,
        max_sessions: int = 16,
        max_windows: int = 30,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.pool: dict[str, Detector] = {d.name: d for d in pool}
        self.max_sessions = max_sessions
        self.max_windows = max_windows
        self.metrics = second_pass_metrics(registry)
        self._failures = FailureLog(log)
        self._active: dict[str, _Active] = {}
        self._started: set[str] = set()
        # ``load`` may run outside the runtime's thread (so loading a heavier model does not
        # stall every session's first pass); this guards the set of started detectors.
        self._loading = threading.Lock()

    def load(self, names: Iterable[str]) -> dict[str, str]:
        """Start (load the models of) the pool detectors among ``names`` not started yet;
        those that fail, with why (the others are unaffected; a later obligation tries
        again). Thread-safe; call it off the runtime's thread before ``enable``, which
        otherwise loads them itself."""
        failed: dict[str, str] = {}
        with self._loading:
            for n in names:
                if n in self.pool and n not in self._started:
                    try:
                        self.pool[n].start()
                    except Exception as exc:  # e.g. a model file not shipped on this replica
                        failed[n] = f"{type(exc).__name__}: {str(exc)[:200]}"
                        self.metrics.failed.labels(n).inc()
                        continue
                    self._started.add(n)
        return failed

    def active(self, session_id: str) -> tuple[str, ...]:
        a = self._active.get(session_id)
        return a.names if a is not None else ()

    def enable(
        self,
        session_id: str,
        names: Iterable[str],
        windows: int,
        first_pass: Iterable[str],
        party: str = "remote",
    ) -> SecondPassStart:
        """Run the pool detectors among ``names`` on ``party``'s next ``windows`` windows
        of ``session_id`` (the decision is about that party: per-session state such as a
        voice reference must not mix two voices)."""
        wanted = tuple(dict.fromkeys(names))
        base = set(first_pass)
        already = tuple(n for n in wanted if n in base)
        in_pool = tuple(n for n in wanted if n not in base and n in self.pool)
        skipped = tuple(n for n in wanted if n not in base and n not in self.pool)
        for n in skipped:
            self.metrics.skipped.labels(n).inc()
        windows = max(1, min(int(windows), self.max_windows))
        if not in_pool:
            self.metrics.requests.labels("first_pass_only").inc()
            return SecondPassStart(session_id, (), already, skipped, 0)
        current = self._active.get(session_id)
        if current is None and len(self._active) >= self.max_sessions:
            self.metrics.requests.labels("refused_busy").inc()
            return SecondPassStart(
                session_id,
                (),
                already,
                skipped,
                0,
                refused=f"{self.max_sessions} sessions are in second pass already",
            )
        failed = tuple(self.load(in_pool))  # heavier models load on first use only
        in_pool = tuple(n for n in in_pool if n not in failed)
        if not in_pool:
            self.metrics.requests.labels("failed").inc()
            return SecondPassStart(session_id, (), already, skipped, 0, failed=failed)
        if current is None:
            current = self._active[session_id] = _Active(in_pool, windows, party)
        else:  # a renewed obligation extends the run, over the union of its detectors
            current.names = tuple(dict.fromkeys((*current.names, *in_pool)))
            current.windows_left = max(current.windows_left, windows)
        for n in current.names:
            current.states.setdefault(n, self.pool[n].new_state())
        self.metrics.requests.labels("started").inc()
        self.metrics.active.set(len(self._active))
        return SecondPassStart(session_id, in_pool, already, skipped, windows, failed=failed)

    def run(self, batch: list[tuple[str, Window]]) -> list[list[Signal]]:
        """The pool detectors' signals for each window of the batch (empty for windows of
        sessions not in second pass); each window processed counts down its session's run."""
        out: list[list[Signal]] = [[] for _ in batch]
        for i, (sid, win) in enumerate(batch):
            a = self._active.get(sid)
            if a is None or win.samples is None or win.party != a.party:
                continue
            for n in a.names:
                try:
                    sig = self.pool[n].process(win, a.states[n])
                except Exception as exc:  # a failing heavier model leaves the first pass alone
                    self.metrics.errors.labels(n).inc()
                    self._failures.record(n, exc, "the second pass")
                    continue
                self.metrics.windows.labels(n).inc()
                if sig is not None:
                    out[i].append(sig)
            a.windows_left -= 1
            if a.windows_left <= 0:
                del self._active[sid]
        self.metrics.active.set(len(self._active))
        return out

    def close(self, session_id: str) -> None:
        self._active.pop(session_id, None)
        self.metrics.active.set(len(self._active))

    def stop(self) -> None:
        with self._loading:
            for n in self._started:
                self.pool[n].stop()
            self._started.clear()
        self._active.clear()


def split_detectors(
    detectors: Iterable[Detector], first_pass: Iterable[str] | None
) -> tuple[list[Detector], list[Detector]]:
    """(first-pass, pool): ``first_pass`` names the detectors run on every window (default:
    every detector not marked ``second_pass_only = True``); the rest wait in the pool for a
    ``second_pass`` obligation."""
    all_ = list(detectors)
    if first_pass is None:
        base = [d for d in all_ if not getattr(d, "second_pass_only", False)]
    else:
        names = set(first_pass)
        base = [d for d in all_ if d.name in names]
    chosen = {d.name for d in base}
    return base, [d for d in all_ if d.name not in chosen]
