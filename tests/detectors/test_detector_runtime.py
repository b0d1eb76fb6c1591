"""Streaming runtime: bounded buffers, release of raw samples, micro-batching, dropping, priority."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from detectors.base import BaseDetector
from detectors.protocol import Window
from detectors.quality import AudioQualityDetector
from detectors.runtime import RuntimeConfig, SessionNotFoundError, StreamingRuntime
from detectors.synthetic_voice import SyntheticVoiceDetector
from signals import Modality, Signal

from .helpers import SR, noise, speech


class Recorder(BaseDetector):
    """A real plugin (not a stand-in for ours) that records what the runtime hands it."""

    name: ClassVar[str] = "audio.recorder"
    version: ClassVar[str] = "1.0.0"
    modality: ClassVar[Modality] = Modality.audio
    consumes: ClassVar[tuple[str, ...]] = ("raw_audio",)

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[tuple[str, int]]] = []
        self.windows: list[Window] = []
        self.sample_sizes: list[int] = []

    def process(self, window: Window, state: Any) -> Signal | None:
        return self.process_batch([window], [state])[0]

    def process_batch(
        self, windows: Sequence[Window], states: Sequence[Any]
    ) -> list[Signal | None]:
        self.batches.append([(w.session_id, w.seq) for w in windows])
        for w in windows:
            assert w.samples is not None and w.features is not None
            self.sample_sizes.append(w.samples.size)
            self.windows.append(w)
        return [self.signal(0.5, 1.0, [], w.duration_ms) for w in windows]


def make_runtime(*dets: Any, **cfg: Any) -> StreamingRuntime:
    rt = StreamingRuntime(dets, RuntimeConfig(**cfg), registry=CollectorRegistry())
    rt.start()
    return rt


def test_samples_are_gone_after_their_window_is_processed() -> None:
    rec = Recorder()
    rt = make_runtime(rec)
    rt.open_session("s1")
    x = speech()[: int(2.5 * SR)]
    assert rt.push_audio("s1", x) == 2
    stats = rt.session_stats("s1")
    assert stats["queued_samples"] == 2 * SR and stats["buffered_samples"] == SR // 2
    out = rt.drain()
    assert [e.signal.name for e in out] == ["audio.recorder", "audio.recorder"]
    assert rec.sample_sizes == [SR, SR]
    for w in rec.windows:  # the runtime released every window the detector saw
        assert w.samples is None
        assert w.features is not None and w.features.power is None
    stats = rt.session_stats("s1")
    assert stats["queued_samples"] == 0
    assert stats["buffered_samples"] == SR // 2  # only the incomplete current hop remains
    rt.close_session("s1")  # the 0.5 s tail is processed and released too
    assert rec.sample_sizes[-1] == SR // 2 and rec.windows[-1].samples is None


def test_windows_of_many_sessions_share_one_batch_and_one_model_call() -> None:
    rec = Recorder()
    sv = SyntheticVoiceDetector()
    rt = make_runtime(rec, sv)
    assert sv._model is not None
    calls: list[int] = []
    real = sv._model.session

    class CountingSession:  # wraps onnxruntime's session (not ours) to count calls
        def run(self, out: Any, feeds: dict[str, np.ndarray]) -> Any:
            calls.append(len(feeds["features"]))
            return real.run(out, feeds)

    sv._model.session = CountingSession()  # type: ignore[assignment]
    x = speech()[:SR]
    for i in range(6):
        rt.open_session(f"s{i}")
        rt.push_audio(f"s{i}", x)
    out = rt.process()
    assert len(rec.batches) == 1 and len(rec.batches[0]) == 6
    assert calls == [6]  # one onnxruntime call scored all six sessions
    assert {e.session_id for e in out if e.signal.name == "audio.synthetic_voice"} == {
        f"s{i}" for i in range(6)
    }


def test_a_session_contributes_one_window_per_batch_in_order() -> None:
    rec = Recorder()
    rt = make_runtime(rec)
    rt.open_session("a")
    rt.push_audio("a", noise(3.0))
    rt.drain()
    assert rec.batches == [[("a", 0)], [("a", 1)], [("a", 2)]]


def test_backlog_drops_oldest_windows_and_counts_them() -> None:
    registry = CollectorRegistry()
    rec = Recorder()
    rt = StreamingRuntime([rec], RuntimeConfig(max_pending=4), registry=registry)
    rt.start()
    for sid in ("a", "b"):
        rt.open_session(sid)
    for _ in range(5):  # 10 windows arrive, room for 4
        rt.push_audio("a", noise(1.0))
        rt.push_audio("b", noise(1.0))
    assert rt.pending == 4
    assert rt.session_stats("a")["dropped"] + rt.session_stats("b")["dropped"] == 6
    dropped = registry.get_sample_value(
        "liveguard_detector_windows_dropped_total", {"detector": "audio.recorder"}
    )
    assert dropped == 6
    rt.drain()
    seen = sorted(s for batch in rec.batches for s in batch)
    assert seen == [("a", 3), ("a", 4), ("b", 3), ("b", 4)]  # the newest survived


def test_per_session_backlog_is_bounded() -> None:
    rt = make_runtime(Recorder(), max_pending_per_session=3)
    rt.open_session("a")
    rt.push_audio("a", noise(10.0))
    assert rt.session_stats("a")["pending"] == 3
    assert rt.session_stats("a")["dropped"] == 7
    assert rt.session_stats("a")["queued_samples"] == 3 * SR


def test_higher_risk_sessions_are_served_first() -> None:
    rec = Recorder()
    rt = make_runtime(rec, max_batch=1)
    for sid, risk in (("low", 0.1), ("high", 0.9), ("mid", 0.5)):
        rt.open_session(sid, risk=risk)
        rt.push_audio(sid, noise(1.0))
    rt.drain()
    assert [b[0][0] for b in rec.batches] == ["high", "mid", "low"]
    rt.set_risk("low", 1.0)
    rt.push_audio("mid", noise(1.0))
    rt.push_audio("low", noise(1.0))
    rt.drain()
    assert [b[0][0] for b in rec.batches[3:]] == ["low", "mid"]


def test_latency_metrics_per_detector() -> None:
    registry = CollectorRegistry()
    rt = StreamingRuntime([AudioQualityDetector(), Recorder()], registry=registry)
    rt.open_session("a")
    rt.push_audio("a", noise(2.0))
    rt.drain()
    for name in ("audio.quality", "audio.recorder", "frontend"):
        n = registry.get_sample_value(
            "liveguard_detector_latency_seconds_count", {"detector": name}
        )
        assert n == 2, name
    assert registry.get_sample_value("liveguard_detector_window_to_signal_seconds_count") == 2


class Exploding(Recorder):
    name: ClassVar[str] = "audio.exploding"

    def process_batch(
        self, windows: Sequence[Window], states: Sequence[Any]
    ) -> list[Signal | None]:
        raise RuntimeError("boom")


def test_a_failing_detector_is_counted_and_does_not_stop_the_others() -> None:
    registry = CollectorRegistry()
    rt = StreamingRuntime([Exploding(), AudioQualityDetector()], registry=registry)
    rt.open_session("a")
    rt.push_audio("a", noise(1.0))
    out = rt.drain()
    assert [e.signal.name for e in out] == ["audio.quality"]
    assert (
        registry.get_sample_value(
            "liveguard_detector_errors_total", {"detector": "audio.exploding"}
        )
        == 1
    )


def test_closing_a_session_names_the_detectors_that_failed_on_it() -> None:
    rt = StreamingRuntime([Exploding(), AudioQualityDetector()], registry=CollectorRegistry())
    rt.open_session("a")
    rt.open_session("b")
    rt.push_audio("a", noise(1.5))
    rt.drain()
    failed_a: set[str] = set()
    failed_b: set[str] = set()
    rt.close_session("a", failed_a)
    rt.close_session("b", failed_b)  # no window: nothing ran, nothing failed
    assert failed_a == {"audio.exploding"}
    assert failed_b == set()


def test_a_failing_detector_is_logged_once_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rt = StreamingRuntime([Exploding(), AudioQualityDetector()], registry=CollectorRegistry())
    rt.open_session("a")
    with caplog.at_level(logging.ERROR, logger="detectors.runtime"):
        rt.push_audio("a", noise(3.0))
        rt.drain()
    [rec] = [r for r in caplog.records if "audio.exploding" in r.getMessage()]
    assert "RuntimeError: boom" in rec.getMessage()


def test_unknown_session_is_a_clear_error() -> None:
    rt = make_runtime(Recorder())
    with pytest.raises(SessionNotFoundError, match="no open session 'nope'"):
        rt.push_audio("nope", noise(0.1))


def test_feature_series_are_bounded_in_time_and_count() -> None:
    rt = make_runtime(Recorder(), series_keep_ms=2_000, series_max_points=50)
    rt.open_session("a")
    t = np.arange(0, 10_000, 10.0)  # 1,000 points over 10 s
    rt.push_series("a", "mouth_openness", t, np.ones_like(t))
    kept = rt._sessions["a"].series["mouth_openness"]
    assert len(kept) == 50 and kept[0][0] >= 8_000


def test_each_registry_gets_its_own_metrics() -> None:
    import gc

    from detectors.metrics import runtime_metrics

    for _ in range(20):  # new registries often reuse a collected one's address
        registry = CollectorRegistry()
        m = runtime_metrics(registry)
        m.errors.labels("audio.x").inc()
        assert (
            registry.get_sample_value("liveguard_detector_errors_total", {"detector": "audio.x"})
            == 1
        )
        del registry, m
        gc.collect()
