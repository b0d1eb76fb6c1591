"""Stage 2 in the streaming runtime: pool detectors run on one session's next N windows
only; names registered nowhere are skipped and reported; the concurrency bound refuses."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from detectors.protocol import Detector
from detectors.quality import AudioQualityDetector
from detectors.runtime import RuntimeConfig, StreamingRuntime
from detectors.second_pass import SecondPass, split_detectors
from detectors.synthetic_voice import SyntheticVoiceDetector

from .helpers import SR, speech


def _runtime(
    max_sessions: int = 16, *more_pool: Detector
) -> tuple[StreamingRuntime, CollectorRegistry]:
    """Quality on the first pass; the screener (and `more_pool`) in the second-pass pool."""
    reg = CollectorRegistry()
    pool = SecondPass(
        [SyntheticVoiceDetector(), *more_pool], max_sessions=max_sessions, registry=reg
    )
    rt = StreamingRuntime([AudioQualityDetector()], RuntimeConfig(), registry=reg, second_pass=pool)
    rt.start()
    return rt, reg


def _names_by_session(rt: StreamingRuntime, seconds: int) -> dict[str, list[set[str]]]:
    x = speech()[: seconds * SR]
    out: dict[str, dict[int, set[str]]] = {"a": {}, "b": {}}
    for i in range(0, len(x), SR // 10):
        for sid in ("a", "b"):
            rt.push_audio(sid, x[i : i + SR // 10])
        for e in rt.drain():
            out[e.session_id].setdefault(e.seq, set()).add(e.signal.name)
    return {sid: [w[k] for k in sorted(w)] for sid, w in out.items()}


def test_second_pass_runs_on_the_obligated_session_only_for_n_windows() -> None:
    rt, reg = _runtime()
    rt.open_session("a")
    rt.open_session("b")
    plan = rt.enable_second_pass(
        "a", ["audio.synthetic_voice", "audio.quality", "audio.synthetic_voice_deep"], windows=2
    )
    assert plan.started == ("audio.synthetic_voice",)
    assert plan.already_running == ("audio.quality",)
    assert plan.skipped == ("audio.synthetic_voice_deep",)
    names = _names_by_session(rt, 4)
    assert len(names["a"]) == len(names["b"]) == 4
    # a: the heavier detector on its next two windows, then back to the first pass
    assert ["audio.synthetic_voice" in w for w in names["a"]] == [True, True, False, False]
    assert not any("audio.synthetic_voice" in w for w in names["b"])
    assert all("audio.quality" in w for w in names["a"] + names["b"])
    windows = reg.get_sample_value(
        "liveguard_second_pass_windows_total", {"detector": "audio.synthetic_voice"}
    )
    assert windows == 2
    skipped = reg.get_sample_value(
        "liveguard_second_pass_skipped_detectors_total", {"detector": "audio.synthetic_voice_deep"}
    )
    assert skipped == 1
    assert rt.second_pass.active("a") == ()  # the run is over, nothing held for it


def test_the_concurrency_bound_refuses_and_counts() -> None:
    rt, reg = _runtime(max_sessions=1)
    rt.open_session("a")
    rt.open_session("b")
    assert rt.enable_second_pass("a", ["audio.synthetic_voice"], 3).started
    refused = rt.enable_second_pass("b", ["audio.synthetic_voice"], 3)
    assert refused.started == () and refused.refused
    assert (
        reg.get_sample_value("liveguard_second_pass_requests_total", {"outcome": "refused_busy"})
        == 1
    )
    rt.close_session("a")  # a closed session gives its slot back
    assert rt.enable_second_pass("b", ["audio.synthetic_voice"], 3).started


def test_only_first_pass_names_start_nothing() -> None:
    rt, _ = _runtime()
    rt.open_session("a")
    plan = rt.enable_second_pass("a", ["audio.quality"], 3)
    assert plan.started == () and plan.already_running == ("audio.quality",)
    assert rt.second_pass.active("a") == ()


def test_split_keeps_second_pass_only_detectors_out_of_the_first_pass() -> None:
    q, sv = AudioQualityDetector(), SyntheticVoiceDetector()
    sv.second_pass_only = True  # type: ignore[attr-defined]
    first, pool = split_detectors([q, sv], None)
    assert first == [q] and pool == [sv]
    first, pool = split_detectors([q, sv], ["audio.synthetic_voice"])
    assert first == [sv] and pool == [q]


class _Unshipped(SyntheticVoiceDetector):
    """A real detector whose model file is not on this replica."""

    name = "audio.synthetic_voice_deep"

    def start(self) -> None:
        raise FileNotFoundError("model file synthetic_voice_deep.onnx is missing")


def test_a_pool_detector_that_fails_to_load_is_reported_and_the_rest_run() -> None:
    rt, reg = _runtime(16, _Unshipped())
    rt.open_session("a")
    rt.open_session("b")
    plan = rt.enable_second_pass("a", ["audio.synthetic_voice_deep", "audio.synthetic_voice"], 2)
    assert plan.failed == ("audio.synthetic_voice_deep",)
    assert plan.started == ("audio.synthetic_voice",)
    names = _names_by_session(rt, 2)
    assert all("audio.synthetic_voice" in w for w in names["a"])
    assert (
        reg.get_sample_value(
            "liveguard_second_pass_failed_detectors_total",
            {"detector": "audio.synthetic_voice_deep"},
        )
        == 1
    )


class _Raising(SyntheticVoiceDetector):
    """A pool model that loads but fails on every window (e.g. a model file that does not
    match its code's input width)."""

    name = "audio.synthetic_voice_deep"

    def process(self, window, state):  # type: ignore[no-untyped-def]
        raise ValueError("input width 360, expected 408")


def test_a_pool_detector_failing_on_windows_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rt, reg = _runtime(16, _Raising())
    rt.open_session("a")
    rt.open_session("b")
    rt.enable_second_pass("a", ["audio.synthetic_voice_deep", "audio.synthetic_voice"], 3)
    with caplog.at_level(logging.ERROR, logger="detectors.second_pass"):
        names = _names_by_session(rt, 3)
    assert all("audio.synthetic_voice" in w for w in names["a"])  # the others still run
    errors = reg.get_sample_value(
        "liveguard_second_pass_errors_total", {"detector": "audio.synthetic_voice_deep"}
    )
    assert errors == 3
    [rec] = [r for r in caplog.records if "audio.synthetic_voice_deep" in r.getMessage()]
    assert "ValueError: input width 360, expected 408" in rec.getMessage()
