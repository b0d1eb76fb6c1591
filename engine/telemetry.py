"""Telemetry: Prometheus metrics (technical health and policy outcomes) and structlog.

Metrics live in a registry owned by each app (tests build many apps; the global registry
would refuse duplicates). Operational logs are a separate stream from the decision log:
JSON when stdout is not a terminal, readable otherwise, with request and decision ids
bound from context. Secrets never reach a log line: a processor masks them by key name.

Label values come from bounded sets only: a request's content never names a time series.
Detector labels are registered detectors (``register_detectors``, from the entry points)
or the deciding policy's declared signals, anything else counts under ``other``; policy
ids and versions come from the repository, routes are templates, error codes are ours.
Every label-child cache is capped as well (``MAX_LABEL_VALUES``), a second fence should a
new caller-drivable label slip in.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic_core import to_json

from engine.core.models import Decision, DecisionRequest, SecondPassObligation

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_UNIT_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: The label value for whatever is not in a label's bounded set.
OTHER = "other"
#: Distinct values one label may take before everything new counts as ``other``.
MAX_LABEL_VALUES = 256
_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def detector_label(detector: str) -> str:
    """A signal's ``detector`` ("synthetic_voice@1.0.0") as its label: the name, no version."""
    return detector.split("@", 1)[0]


def signal_detector(signal_name: str) -> str:
    """The detector label a signal name implies ("audio.synthetic_voice" → "synthetic_voice"),
    as ``detectors.protocol.detector_ref`` names a detector's signals."""
    return signal_name.split(".", 1)[-1]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # --- technical health
        self.http_requests = Counter(
            "liveguard_http_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.decision_latency = Histogram(
            "liveguard_decision_latency_seconds",
            "Decision latency: request received to durable log commit.",
            ["policy"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.policy_errors = Counter(
            "liveguard_policy_errors",
            "Policy evaluation or load failures.",
            ["policy", "code"],
            registry=r,
        )
        self.fail_mode = Counter(
            "liveguard_fail_mode_fallbacks",
            "Decisions taken by a policy's fail_mode.",
            ["policy", "action"],
            registry=r,
        )
        self.signal_confidence = Histogram(
            "liveguard_signal_confidence",
            "Confidence of incoming signals per detector.",
            ["detector"],
            buckets=_UNIT_BUCKETS,
            registry=r,
        )
        self.signals_missing = Counter(
            "liveguard_signals_missing",
            "Signals a policy weighs that a request did not carry.",
            ["policy", "signal"],
            registry=r,
        )
        self.signals_dropped = Counter(
            "liveguard_signals_dropped",
            "Signals set aside: no consent to media analysis, or undeclared in the manifest.",
            ["policy", "why"],
            registry=r,
        )
        self.degraded = Counter(
            "liveguard_degraded_decisions",
            "Decisions on too little evidence.",
            ["policy"],
            registry=r,
        )
        self.overloaded = Counter(
            "liveguard_overload_rejections",
            "Requests refused with 503 (in-flight bound).",
            registry=r,
        )
        self.in_flight = Gauge(
            "liveguard_in_flight",
            "Requests admitted (authenticated, body received) and being served.",
            registry=r,
        )
        self.receiving = Gauge(
            "liveguard_requests_receiving",
            "Requests being authenticated or still sending their body (not yet admitted).",
            registry=r,
        )
        self.slow_clients = Counter(
            "liveguard_slow_client_rejections",
            "Requests cut off with 408: the body did not arrive within the body timeout.",
            registry=r,
        )
        self.commit_batch = Histogram(
            "liveguard_store_commit_batch_size",
            "Decisions per group commit.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "liveguard_store_commit_seconds",
            "Duration of one group commit.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.shadow_errors = Counter(
            "liveguard_shadow_errors",
            "Shadow evaluations that failed (live unaffected).",
            ["policy"],
            registry=r,
        )
        # --- policy outcomes
        self.decisions = Counter(
            "liveguard_decisions",
            "Decisions by policy, version and action.",
            ["policy", "version", "action"],
            registry=r,
        )
        self.second_pass = Counter(
            "liveguard_second_pass_escalations",
            "Decisions asking for second-pass detectors.",
            ["policy", "version"],
            registry=r,
        )
        self.reviews = Counter(
            "liveguard_reviews",
            "Reviews opened and their outcomes.",
            ["policy", "version", "event"],
            registry=r,
        )
        self.raw_media = Counter(
            "liveguard_raw_media_escalations",
            "Privacy exceptions: decisions allowing raw media to leave the edge.",
            ["policy"],
            registry=r,
        )
        self.raw_media_rate = Gauge(
            "liveguard_raw_media_escalations_per_1000_sessions",
            "Raw-media escalations per 1,000 decided sessions (this process).",
            ["policy"],
            registry=r,
        )
        self.shadow_agreement = Counter(
            "liveguard_shadow_results",
            "Shadow results by agreement with the live action.",
            ["policy", "agree"],
            registry=r,
        )
        self._lock = threading.Lock()
        self._sessions: dict[str, int] = {}
        self._escalations: dict[str, int] = {}
        #: Label children bound once per (policy, version, action) and per detector:
        #: ``labels()`` hashes, locks and validates on every call. Keyed by label values
        #: (never by raw request content), so each is as bounded as its labels.
        self._outcome: dict[tuple[str, str, str], _Outcome] = {}
        self._confidence: dict[str, Any] = {}
        self._missing: dict[tuple[str, str], Any] = {}
        self._http: dict[tuple[str, int], Any] = {}
        self._error_codes: set[str] = set()
        #: Detector labels of the registered detectors (set by the service at startup).
        self.known_detectors: frozenset[str] = frozenset()
        self._declared: dict[frozenset[str], frozenset[str]] = {}

    def register_detectors(self, names: Iterable[str]) -> None:
        """Registered detectors, by entry-point name ("audio.synthetic_voice") or label."""
        self.known_detectors = frozenset(signal_detector(n) for n in names)

    def _detector(self, detector: str, declared: frozenset[str]) -> str:
        label = detector_label(detector)
        if label in self.known_detectors or label in declared:
            return label
        return OTHER

    def _error_code(self, error: str) -> str:
        code = error.split(":", 1)[0]
        if code in self._error_codes:
            return code
        if not _ERROR_CODE.match(code) or len(self._error_codes) >= MAX_LABEL_VALUES:
            return OTHER
        self._error_codes.add(code)
        return code

    def count_http(self, route: str, status: int) -> None:
        child = self._http.get((route, status))
        if child is None:
            if len(self._http) >= MAX_LABEL_VALUES:
                route = OTHER
                child = self._http.get((route, status))
            if child is None:
                child = self.http_requests.labels(route, str(status))
                self._http[(route, status)] = child
        child.inc()

    def observe_commit(self, batch: int, seconds: float) -> None:
        self.commit_batch.observe(batch)
        self.commit_seconds.observe(seconds)

    def observe_decision(
        self,
        request: DecisionRequest,
        decision: Decision,
        seconds: float,
        expected_signals: frozenset[str] = frozenset(),
    ) -> None:
        p = decision.policy
        action = decision.action.value
        key = (p.id, p.version, action)
        o = self._outcome.get(key)
        if o is None:
            o = self._outcome[key] = _Outcome(
                latency=self.decision_latency.labels(p.id),
                decisions=self.decisions.labels(p.id, p.version, action),
                degraded=self.degraded.labels(p.id),
                second_pass=self.second_pass.labels(p.id, p.version),
                review_opened=self.reviews.labels(p.id, p.version, "opened"),
                raw_media=self.raw_media.labels(p.id),
                raw_media_rate=self.raw_media_rate.labels(p.id),
            )
        o.latency.observe(seconds)
        o.decisions.inc()
        if decision.error:
            self.policy_errors.labels(p.id, self._error_code(decision.error)).inc()
            self.fail_mode.labels(p.id, action).inc()
        if decision.degraded:
            o.degraded.inc()
        present = set()
        declared = self._declared_detectors(expected_signals)
        for s in request.signals:
            present.add(s.name)
            label = self._detector(s.detector, declared)
            child = self._confidence.get(label)
            if child is None:
                child = self._confidence[label] = self.signal_confidence.labels(label)
            child.observe(s.confidence)
        if expected_signals:
            for name in expected_signals - present:
                missing = self._missing.get((p.id, name))
                if missing is None:
                    missing = self._missing[(p.id, name)] = self.signals_missing.labels(p.id, name)
                missing.inc()
        escalated = False
        for ob in decision.obligations:
            if isinstance(ob, SecondPassObligation):
                o.second_pass.inc()
                escalated = escalated or ob.raw_media_allowed
        if action == "review":
            o.review_opened.inc()
        if escalated:
            o.raw_media.inc()
        with self._lock:
            n = self._sessions[p.id] = self._sessions.get(p.id, 0) + 1
            e = self._escalations[p.id] = self._escalations.get(p.id, 0) + int(escalated)
        o.raw_media_rate.set(1000.0 * e / n)

    def _declared_detectors(self, expected_signals: frozenset[str]) -> frozenset[str]:
        """The detector labels a policy's declared signals imply (cached per signal set)."""
        got = self._declared.get(expected_signals)
        if got is None:
            got = frozenset(signal_detector(n) for n in expected_signals)
            # Signal sets come from policies (the repository), not requests: a handful.
            if len(self._declared) < MAX_LABEL_VALUES:
                self._declared[expected_signals] = got
        return got

    def observe_dropped(self, policy: str, why: str, n: int) -> None:
        if n:
            self.signals_dropped.labels(policy, why).inc(n)

    def observe_review_outcome(self, policy: str, version: str, outcome: str) -> None:
        event = {"confirmed_attack": "confirmed", "legitimate": "overturned"}.get(outcome, outcome)
        self.reviews.labels(policy, version, event).inc()


@dataclass(frozen=True, slots=True)
class _Outcome:
    latency: Any
    decisions: Any
    degraded: Any
    second_pass: Any
    review_opened: Any
    raw_media: Any
    raw_media_rate: Any


# --- logs -------------------------------------------------------------------------------

_SECRET_KEY = re.compile(r"(authorization|api[_-]?key|token|secret|password|^key$)", re.I)
_BEARER = re.compile(r"(Bearer\s+|lg_[0-9a-f]{12}_)[A-Za-z0-9_\-\.]+")


#: Key name → is it a secret's name (log lines reuse a handful of keys).
_SECRET_NAMES: dict[str, bool] = {}


def _mask_secrets(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for k, v in list(event.items()):
        secret = _SECRET_NAMES.get(k)
        if secret is None:
            secret = bool(_SECRET_KEY.search(k))
            if len(_SECRET_NAMES) < 4096:
                _SECRET_NAMES[k] = secret
        if secret:
            event[k] = "[redacted]"
        elif isinstance(v, str) and ("Bearer" in v or "lg_" in v):
            event[k] = _BEARER.sub(r"\1[redacted]", v)
    return event


def _dumps(obj: Any, default: Any = None, **_: Any) -> str:
    """JSON via pydantic-core (a fraction of json.dumps' cost per line)."""
    return to_json(obj, fallback=default).decode()


class _JsonInfoLine:
    """One INFO line rendered the way the processor chain below renders it (context vars,
    level, UTC ISO timestamp, masked secrets, JSON), minus the chain's per-call machinery.
    For the one line every decision writes; everything else goes through structlog."""

    __slots__ = ("out",)

    def __init__(self, out: Any) -> None:
        self.out = out

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        line = structlog.contextvars.get_contextvars()
        line["event"] = event
        line.update(fields)
        line["level"] = "info"
        line["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        _mask_secrets(None, "info", line)
        self.out.write(to_json(line).decode() + "\n")
        self.out.flush()


_info_line: _JsonInfoLine | None = None


def log_info(logger: Any, event: str, **fields: Any) -> None:
    """``logger.info(event, **fields)``; rendered directly when logs are JSON at INFO."""
    if _info_line is not None:
        _info_line(event, fields)
    else:
        logger.info(event, **fields)


def configure_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """structlog to stdout: JSON unless a terminal (or as ``fmt`` says)."""
    global _info_line
    as_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    _info_line = _JsonInfoLine(sys.stdout) if as_json and lvl <= logging.INFO else None
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if as_json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
