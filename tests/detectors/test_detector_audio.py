"""audio.quality, audio.synthetic_voice, audio.replay, audio.voice_consistency on real speech."""

from __future__ import annotations

from collections import deque

import numpy as np

from detectors.audio_io import load_audio
from detectors.degrade import add_noise, drop_packets, mulaw_8k, simulate_replay
from detectors.quality import AudioQualityDetector
from detectors.replay import ReplayDetector
from detectors.synthetic_voice import SyntheticVoiceDetector
from detectors.vad import SileroVad
from detectors.voice_consistency import VoiceConsistencyDetector

from .helpers import SR, clip_path, last, noise, run_detectors, speakers_clips, speech


def codes(sig) -> set[str]:
    return {e.code for e in sig.evidence}


def test_silero_vad_hears_speech_not_noise() -> None:
    vad = SileroVad()
    x = speech()[: 3 * SR]
    p_speech = vad.run([x], [vad.new_state()])[0]
    p_noise = vad.run([noise(3.0, 0.05)], [vad.new_state()])[0]
    assert len(p_speech) == 3 * SR // 512
    assert (p_speech > 0.5).mean() > 0.4
    assert (p_noise > 0.5).mean() < 0.1


def test_quality_flags_each_degradation() -> None:
    x = speech()[: 3 * SR]
    windows = run_detectors([AudioQualityDetector()], {"remote": x})
    assert len(windows) == 3
    clean = last(windows, "audio.quality")
    assert clean is not None and clean.confidence > 0.7 and clean.score == 0.5
    assert all(codes(e.signal) == {"audio.quality_index"} for e in windows)

    narrow = last(run_detectors([AudioQualityDetector()], {"remote": mulaw_8k(x)}), "audio.quality")
    assert "audio.narrowband" in codes(narrow)

    noisy = last(
        run_detectors([AudioQualityDetector()], {"remote": add_noise(x, 0.0)}), "audio.quality"
    )
    assert "audio.low_snr" in codes(noisy) and noisy.confidence < clean.confidence

    lossy = last(
        run_detectors([AudioQualityDetector()], {"remote": drop_packets(x, 0.2)}), "audio.quality"
    )
    assert "audio.packet_loss" in codes(lossy)

    clipped = np.clip(x * 20, -1, 1)
    hot = last(run_detectors([AudioQualityDetector()], {"remote": clipped}), "audio.quality")
    assert "audio.clipping" in codes(hot)

    silent = last(
        run_detectors([AudioQualityDetector()], {"remote": noise(2.0, 0.001)}), "audio.quality"
    )
    assert "audio.no_speech" in codes(silent) and silent.confidence < 0.2


def synthetic_score(path, variant: str = "fp32", degrade=None):
    x = load_audio(path)
    if degrade is not None:
        x = degrade(x)
    det = SyntheticVoiceDetector({"variant": variant})
    return last(run_detectors([det], {"remote": x}), "audio.synthetic_voice")


def test_synthetic_voice_separates_tts_from_real_speech() -> None:
    real = [synthetic_score(clip_path("LibriSpeech train", i)) for i in range(3)]
    fake = [synthetic_score(clip_path("flite_slt", i)) for i in range(3)]
    assert max(s.score for s in real) < min(s.score for s in fake)
    assert all("audio.vocoder_artifacts" in codes(s) for s in fake)
    assert all(s.detector.startswith("synthetic_voice@") for s in real + fake)


def test_synthetic_voice_confidence_falls_on_degraded_input() -> None:
    path = clip_path("LibriSpeech train", 1)
    clean = synthetic_score(path)
    noisy = synthetic_score(path, degrade=lambda x: add_noise(x, 0.0))
    phone = synthetic_score(path, degrade=mulaw_8k)
    assert noisy.confidence < clean.confidence
    assert phone.confidence < clean.confidence


def test_int8_edge_model_agrees_with_fp32() -> None:
    for path in (clip_path("LibriSpeech train", 2), clip_path("YourTTS zero-shot TTS", 0)):
        a, b = synthetic_score(path), synthetic_score(path, variant="int8")
        assert abs(a.score - b.score) < 0.05


def test_replay_scores_a_loudspeaker_replay_higher() -> None:
    x = speech("LibriSpeech test", 3)
    live = last(run_detectors([ReplayDetector()], {"remote": x}), "audio.replay")
    replay = last(
        run_detectors([ReplayDetector()], {"remote": simulate_replay(x, 3)}), "audio.replay"
    )
    assert replay.score > 0.5 > live.score or (replay.score > live.score + 0.3)
    assert "audio.replay_cues" in codes(replay)


def test_voice_consistency_notices_a_different_speaker() -> None:
    spk = [v for v in speakers_clips("VCTK").values() if len(v) >= 2]
    a1, a2 = load_audio(spk[0][0]), load_audio(spk[0][1])
    b = load_audio(spk[1][0])
    det = {"every_hops": 2}
    same = run_detectors([VoiceConsistencyDetector(det)], {"remote": np.concatenate([a1, a2])})
    changed = run_detectors([VoiceConsistencyDetector(det)], {"remote": np.concatenate([a1, b])})
    s_same = max(e.signal.score for e in same)
    s_changed = max(e.signal.score for e in changed)
    assert s_changed > s_same
    assert "audio.voice_changed" in {c for e in changed for c in codes(e.signal)}


def test_enrolled_voiceprint_is_matched_as_an_embedding_only() -> None:
    from detectors.speaker_encoder import SpeakerEncoder
    from detectors.voice_consistency import partials_from_audio

    spk = [v for v in speakers_clips("VCTK").values() if len(v) >= 3]
    enrol = partials_from_audio(load_audio(spk[0][0]))
    assert len(enrol) >= 2
    voiceprint = SpeakerEncoder().embed(np.stack(enrol)).mean(axis=0).tolist()  # 256 floats

    def run(path) -> set[str]:
        x = load_audio(path)
        em = run_detectors(
            [VoiceConsistencyDetector()],
            {"remote": np.concatenate([x, x])},
            metadata={"voiceprint": voiceprint},
        )
        return {c for e in em for c in codes(e.signal)}

    assert "audio.voiceprint_match" in run(spk[0][2])
    assert "audio.voiceprint_mismatch" in run(spk[1][0])


def test_speaker_encoder_share_of_a_batch_is_capped() -> None:
    from typing import Any

    from prometheus_client import CollectorRegistry

    from detectors.runtime import StreamingRuntime

    det = VoiceConsistencyDetector({"max_embeddings_per_batch": 2})
    rt = StreamingRuntime([det], registry=CollectorRegistry())
    rt.start()
    assert det._encoder is not None
    real = det._encoder.model.session
    sizes: list[int] = []

    class Counting:  # counts onnxruntime calls (not one of our components)
        def run(self, out: Any, feeds: dict) -> Any:
            sizes.append(len(feeds["mels"]))
            return real.run(out, feeds)

    det._encoder.model.session = Counting()  # type: ignore[assignment]
    x = speech("LibriSpeech train", 3)[: 6 * SR]
    for i in range(6):
        rt.open_session(f"s{i}")
        rt.push_audio(f"s{i}", x)
    while rt.pending:
        rt.process()
    assert sizes and max(sizes) <= 2
    assert sum(sizes) >= 6  # every session was embedded, some in a later batch


def test_voice_consistency_keeps_embeddings_only() -> None:
    from dataclasses import fields

    det = VoiceConsistencyDetector({"every_hops": 1})
    from prometheus_client import CollectorRegistry

    from detectors.runtime import StreamingRuntime

    rt = StreamingRuntime([det], registry=CollectorRegistry())
    rt.open_session("s")
    rt.push_audio("s", np.concatenate([speech("VCTK", 0), speech("VCTK", 1)]))
    rt.drain()
    st = rt._sessions["s"].states["audio.voice_consistency"]
    arrays = []
    for f in fields(st):
        v = getattr(st, f.name)
        items = list(v) if isinstance(v, list | deque) else [v]
        arrays += [a for a in items if isinstance(a, np.ndarray)]
    assert arrays, "expected reference and recent embeddings"
    assert all(a.shape == (256,) for a in arrays)  # no spectrogram frames, no samples


def test_synthetic_voice_verdict_follows_the_models_operating_point() -> None:
    class FiresOnAnything(SyntheticVoiceDetector):
        def start(self) -> None:
            super().start()
            self.operating_score = 0.0

    x = speech("LibriSpeech train", 0)
    det = SyntheticVoiceDetector()
    real = last(run_detectors([det], {"remote": x}), "audio.synthetic_voice")
    assert det.operating_score > 0.5 and "audio.vocoder_artifacts" not in codes(real)
    again = last(run_detectors([FiresOnAnything()], {"remote": x}), "audio.synthetic_voice")
    assert again.score == real.score and "audio.vocoder_artifacts" in codes(again)
