"""Consent to media analysis in the streaming runtime: without it the media detectors read
none of a session's windows; granted mid-call, nothing from before it reaches them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from detectors.base import BaseDetector
from detectors.protocol import Window
from signals import Modality, Signal

from .helpers import noise
from .test_detector_runtime import Recorder, make_runtime


class Rhythm(BaseDetector):
    """A real non-media plugin (behavior): it counts the windows it was handed."""

    name: ClassVar[str] = "behavior.rhythm"
    version: ClassVar[str] = "1.0.0"
    modality: ClassVar[Modality] = Modality.behavior
    consumes: ClassVar[tuple[str, ...]] = ("vad",)

    def new_state(self) -> dict[str, int]:
        return {"windows": 0}

    def process(self, window: Window, state: Any) -> Signal | None:
        return self.process_batch([window], [state])[0]

    def process_batch(
        self, windows: Sequence[Window], states: Sequence[Any]
    ) -> list[Signal | None]:
        for st in states:
            st["windows"] += 1
        return [self.signal(0.1, 1.0, [], w.duration_ms) for w in windows]


class Accumulator(Recorder):
    """A media plugin whose state grows with every window it reads (as an enrolment does)."""

    name: ClassVar[str] = "audio.accumulator"

    def new_state(self) -> dict[str, int]:
        return {"windows": 0}

    def process_batch(
        self, windows: Sequence[Window], states: Sequence[Any]
    ) -> list[Signal | None]:
        for st in states:
            st["windows"] += 1
        return super().process_batch(windows, states)


def test_without_consent_no_media_detector_reads_a_window() -> None:
    rec, rhythm = Recorder(), Rhythm()
    rt = make_runtime(rec, rhythm)
    rt.open_session("nc", media=False)
    rt.open_session("ok")
    rt.push_audio("nc", noise(3.0))
    rt.push_audio("ok", noise(3.0))
    out = rt.drain()
    assert {w.session_id for w in rec.windows} == {"ok"}
    assert sorted(e.signal.name for e in out if e.session_id == "nc") == ["behavior.rhythm"] * 3


def test_windows_without_a_signal_are_still_reported_as_processed() -> None:
    rt = make_runtime(Recorder())
    rt.open_session("nc", media=False)
    rt.push_audio("nc", noise(1.0))
    assert rt.process() == []
    assert rt.last_windows == [("nc", "remote", 0)]


def test_consent_granted_mid_call_reads_only_audio_from_after_it() -> None:
    acc = Accumulator()
    rt = make_runtime(acc)
    rt.open_session("s", media=False)
    rt.push_audio("s", noise(2.5))  # two windows queued, half a hop buffered
    rt.set_media_consent("s", True)
    rt.push_audio("s", noise(2.0, seed=1))
    rt.drain()
    # The queued windows 0 and 1 stay unread; the buffered half hop is skipped, so the
    # first window read starts 2.5 s into the call and holds only consented audio.
    assert [(w.seq, w.start_ms) for w in acc.windows] == [(2, 2500), (3, 3500)]


def test_consent_granted_mid_call_starts_the_media_state_afresh() -> None:
    acc = Accumulator()
    rt = make_runtime(acc)
    rt.open_session("s")
    rt.push_audio("s", noise(2.0))
    rt.drain()
    rt.set_media_consent("s", False)
    rt.push_audio("s", noise(1.0))
    rt.drain()
    assert rt.set_media_consent("s", True) == ["audio.accumulator"]
    rt.push_audio("s", noise(1.0))
    rt.drain()
    assert rt._sessions["s"].states["audio.accumulator"] == {"windows": 1}


def test_consent_withdrawn_leaves_queued_windows_unread() -> None:
    rec, rhythm = Recorder(), Rhythm()
    rt = make_runtime(rec, rhythm)
    rt.open_session("s")
    rt.push_audio("s", noise(3.0))
    rt.set_media_consent("s", False)
    out = rt.drain()
    assert rec.windows == []
    assert len(out) == 3 and {e.signal.name for e in out} == {"behavior.rhythm"}


def test_an_unchanged_consent_resets_nothing() -> None:
    rt = make_runtime(Accumulator())
    rt.open_session("s")
    rt.push_audio("s", noise(1.0))
    rt.drain()
    assert rt.set_media_consent("s", True) == []
    assert rt._sessions["s"].states["audio.accumulator"] == {"windows": 1}
