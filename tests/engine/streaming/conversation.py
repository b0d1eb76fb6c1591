"""A two-party call built from real recordings of the shared data set (never copied into
the repository): the agent speaks one clip, falls silent while the caller answers with
another clip after a fixed delay, and so on, turn after turn. A reply after the same delay
every time is the rhythm of a voice bot (ASR → LLM → TTS), what ``behavior.turn_taking``
flags."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.audio_io import load_audio, shared_data_dir

SR = 16_000
TURNS = 5
AGENT_S = 1.0  # each agent turn: this much of one clip's speech
CALLER_S = 1.0  # each reply: this much of another clip's speech
REPLY_AFTER_S = 0.6  # the caller answers this long after the agent's turn ends, every time
GAP_S = 0.6  # and the agent speaks again this long after the reply
LEAD_S = 0.4  # silence on both tracks before the agent's first turn


@dataclass(frozen=True)
class Call:
    agent: np.ndarray  # float32, 16 kHz, the agent's track
    caller: np.ndarray  # float32, 16 kHz, the caller's track, as long as the agent's

    @property
    def seconds(self) -> float:
        return len(self.caller) / SR

    @property
    def caller_windows(self) -> int:
        """Full 1 s windows of the caller's track: one ``live:hop`` decision each."""
        return len(self.caller) // SR


def _clips(prefix: str, n: int) -> list[str]:
    manifest = shared_data_dir() / "audio" / "manifest.csv"
    if not manifest.is_file():
        raise AssertionError(f"shared data not found at {manifest} (set LIVEGUARD_SHARED_DATA)")
    rows = [line.split(",")[0] for line in manifest.read_text().splitlines()[1:]]
    found = [r for r in rows if r.startswith(prefix)][:n]
    assert len(found) == n, f"fewer than {n} clips under {prefix}"
    return found


def _speech(path: str, seconds: float) -> np.ndarray:
    """``seconds`` of a clip from its first voiced 20 ms frame (recordings start silent)."""
    x = load_audio(shared_data_dir() / "audio" / path)
    frames = x[: len(x) // 320 * 320].reshape(-1, 320)
    rms = np.sqrt((frames**2).mean(axis=1))
    first = int(np.argmax(rms > 0.1 * rms.max())) * 320
    out = x[first : first + int(seconds * SR)]
    assert len(out) == int(seconds * SR), f"{path}: too little speech"
    return out.astype(np.float32)


def bot_like_call() -> Call:
    """TURNS agent turns (VCTK speaker p225), each answered after REPLY_AFTER_S by the
    caller (speaker p226), the other party silent (zeros) meanwhile."""
    agent_clips = _clips("vctk/bonafide/p225_", TURNS)
    caller_clips = _clips("vctk/bonafide/p226_", TURNS)
    a: list[np.ndarray] = [np.zeros(int(LEAD_S * SR), np.float32)]
    c: list[np.ndarray] = [np.zeros(int(LEAD_S * SR), np.float32)]
    for ap, cp in zip(agent_clips, caller_clips, strict=True):
        turn = _speech(ap, AGENT_S)
        reply = _speech(cp, CALLER_S)
        pause = np.zeros(int(REPLY_AFTER_S * SR), np.float32)
        gap = np.zeros(int(GAP_S * SR), np.float32)
        a += [turn, pause, np.zeros_like(reply), gap]
        c += [np.zeros_like(turn), pause, reply, gap]
    return Call(np.concatenate(a), np.concatenate(c))


def pcm16(x: np.ndarray) -> bytes:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
