"""Prometheus metrics of the detector runtime: per-detector latency, drops, errors, backlog."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class RuntimeMetrics:
    latency: Histogram  # per detector, per window (batch time shared across its windows)
    window_to_signal: Histogram  # from window complete to signals emitted
    dropped: Counter  # windows dropped before a detector saw them, per detector
    dropped_windows: Counter  # windows dropped under backlog, by reason (bounded labels)
    errors: Counter  # detector exceptions, per detector
    pending: Gauge
    sessions: Gauge


# Keyed by the registry object itself (weakly): keying by id() would hand a new registry
# the metrics of a collected one that happened to live at the same address.
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, RuntimeMetrics] = (
    weakref.WeakKeyDictionary()
)


def runtime_metrics(registry: CollectorRegistry | None = None) -> RuntimeMetrics:
    """Metric objects for `registry`, created once (prometheus forbids registering twice)."""
    registry = registry or REGISTRY
    if registry not in _BY_REGISTRY:
        _BY_REGISTRY[registry] = RuntimeMetrics(
            latency=Histogram(
                "liveguard_detector_latency_seconds",
                "Processing time per window and detector.",
                ["detector"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            window_to_signal=Histogram(
                "liveguard_detector_window_to_signal_seconds",
                "Time from a completed window to its signals.",
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            dropped=Counter(
                "liveguard_detector_windows_dropped_total",
                "Windows dropped under backlog (oldest first), per detector that missed them.",
                ["detector"],
                registry=registry,
            ),
            dropped_windows=Counter(
                "liveguard_detector_dropped_windows_total",
                "Windows dropped under backlog, by reason: session_backlog (one session "
                "more than its bound ahead of the detectors: its oldest go), replica_backlog "
                "(all sessions over the replica's bound: the lowest-risk sessions' oldest go).",
                ["reason"],
                registry=registry,
            ),
            errors=Counter(
                "liveguard_detector_errors_total",
                "Exceptions raised by a detector while processing a window.",
                ["detector"],
                registry=registry,
            ),
            pending=Gauge(
                "liveguard_detector_pending_windows",
                "Windows waiting for processing.",
                registry=registry,
            ),
            sessions=Gauge(
                "liveguard_detector_sessions", "Open streaming sessions.", registry=registry
            ),
        )
    return _BY_REGISTRY[registry]
