"""av.lipsync, behavior.turn_taking and session.anomaly."""

from __future__ import annotations

import numpy as np

from detectors.frontend import envelope
from detectors.lipsync import LipSyncDetector, sync_offset
from detectors.session_anomaly import SessionAnomalyDetector
from detectors.turn_taking import TurnTakingDetector

from .helpers import SR, last, noise, run_detectors, speech


def mouth_from(x: np.ndarray, lag_ms: int = 0, fps: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """A mouth-openness track that follows the audio envelope (as lips do), lagged by lag_ms."""
    env = np.convolve(envelope(x), np.ones(8) / 8, mode="same")
    t_ms = np.arange(0, len(env) * 10, 1000 // fps, dtype=float)
    values = np.interp(t_ms - lag_ms, np.arange(len(env)) * 10.0, env)
    rng = np.random.default_rng(1)
    return t_ms, values / (values.max() + 1e-9) + rng.normal(0, 0.03, len(values))


def test_sync_offset_recovers_a_known_lag() -> None:
    x = speech("LibriSpeech train", 4)
    env = envelope(x)
    for lag in (0, 200, -300, 480):
        t, v = mouth_from(x, lag)
        mouth = np.interp(np.arange(len(env)) * 10.0, t, v)
        res = sync_offset(env, mouth)
        assert res is not None and abs(res.offset_ms - lag) <= 40, (lag, res)


def test_lipsync_in_sync_shifted_and_unrelated() -> None:
    x = speech("LibriSpeech train", 5)
    other = speech("LibriSpeech train", 6)

    def run(series: tuple[np.ndarray, np.ndarray]):
        em = run_detectors([LipSyncDetector()], {"remote": x}, series={"mouth_openness": series})
        return last(em, "av.lipsync")

    ok, shifted, unrelated = run(mouth_from(x)), run(mouth_from(x, 450)), run(mouth_from(other))
    assert ok is not None and shifted is not None and unrelated is not None
    assert ok.score < 0.5 and {e.code for e in ok.evidence} >= {"av.lipsync_ok"}
    assert shifted.score > 0.5 and abs(shifted.evidence[0].value - 450) <= 40
    assert unrelated.score > 0.5
    assert ok.modality.value == "av"


def test_lipsync_is_silent_without_a_mouth_series() -> None:
    em = run_detectors([LipSyncDetector()], {"remote": speech()})
    assert last(em, "av.lipsync") is None


def conversation(latencies_ms: list[int]) -> dict[str, np.ndarray]:
    """Two parties alternating turns: the caller answers each agent turn after latency_ms
    (negative = starts talking over the agent)."""
    pieces = [speech("LibriSpeech train", i)[int(0.3 * SR) : int(1.8 * SR)] for i in range(8)]
    agent = np.zeros(0, np.float32)
    caller = np.zeros(0, np.float32)
    t = 0
    for k, lat in enumerate(latencies_ms):
        a, c = pieces[k % 4], pieces[4 + k % 4]
        start_c = t + len(a) + lat * SR // 1000
        end = start_c + len(c) + int(0.9 * SR)
        agent = np.concatenate([agent, np.zeros(end - len(agent), np.float32)])
        caller = np.concatenate([caller, np.zeros(end - len(caller), np.float32)])
        agent[t : t + len(a)] += a
        caller[start_c : start_c + len(c)] += c
        t = end
    floor = noise(len(agent) / SR, 0.002)  # microphones are never digitally silent
    return {"agent": agent + floor, "remote": caller + noise(len(caller) / SR, 0.002, seed=2)}


def test_turn_taking_flags_constant_latency_and_passes_human_rhythm() -> None:
    bot = last(
        run_detectors([TurnTakingDetector()], conversation([700] * 7)), "behavior.turn_taking"
    )
    human_lat = [250, 1400, -700, 900, 400, 1800, 600]
    human = last(
        run_detectors([TurnTakingDetector()], conversation(human_lat)), "behavior.turn_taking"
    )
    assert bot is not None and human is not None
    assert bot.score > 0.5 > human.score or bot.score > human.score + 0.3
    assert "behavior.machine_turn_taking" in {e.code for e in bot.evidence}
    overlap = {e.code: e.value for e in human.evidence}["behavior.overlap_rate"]
    assert overlap is not None and overlap > 0  # the caller talked over the agent once
    assert bot.modality.value == "behavior"


def test_turn_taking_needs_both_parties() -> None:
    em = run_detectors([TurnTakingDetector()], {"remote": speech()})
    assert last(em, "behavior.turn_taking") is None


def test_session_anomaly_from_metadata_only() -> None:
    det = SessionAnomalyDetector()
    calm = det.evaluate(
        {
            "device_posture": "managed",
            "new_device": False,
            "geo_mismatch": False,
            "local_hour": 14,
            "failed_attempts": 0,
        }
    )
    risky = det.evaluate(
        {
            "device_posture": "compromised",
            "new_device": True,
            "geo_mismatch": True,
            "local_hour": 3,
            "failed_attempts": 3,
        }
    )
    assert calm is not None and risky is not None
    assert calm.score < 0.1 < 0.9 < risky.score
    assert calm.confidence == 1.0
    assert {e.code for e in risky.evidence} == {
        "session.compromised_device",
        "session.new_device",
        "session.geo_mismatch",
        "session.odd_hour",
        "session.failed_auth",
    }
    assert det.evaluate({}) is None
    partial = det.evaluate({"new_device": True})
    assert partial is not None and partial.confidence < 0.5


def test_session_anomaly_emits_again_only_when_metadata_changes() -> None:
    from prometheus_client import CollectorRegistry

    from detectors.runtime import StreamingRuntime

    rt = StreamingRuntime([SessionAnomalyDetector()], registry=CollectorRegistry())
    rt.open_session("s", metadata={"device_posture": "known"})
    rt.push_audio("s", noise(3.0))
    assert len(rt.drain()) == 1
    rt.update_metadata("s", geo_mismatch=True)
    rt.push_audio("s", noise(1.0))
    out = rt.drain()
    assert len(out) == 1 and "session.geo_mismatch" in {e.code for e in out[0].signal.evidence}
