"""Generated decision requests for the Rego tests: numpy in bulk, hypothesis where it fits.

Both cover what the twin policies branch on: identity assurance, age and failures, device
posture and flags, transaction value around the 10k/250k steps, consent, missing sections,
and signals from none to several (declared and undeclared, confident and weak).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

ASSURANCE = ("none", "low", "substantial", "high")
POSTURE = ("managed", "known", "unknown", "compromised")
SIGNALS = (
    "audio.synthetic_voice",
    "audio.replay",
    "audio.voice_consistency",
    "behavior.turn_taking",
    "session.anomaly",
    "av.lipsync",
    "video.face_dynamics",
)
VALUES = (0.0, 500.0, 9999.99, 10000.0, 80000.0, 249999.0, 250000.0, 2_000_000.0)


def _signal(name: str, score: float, confidence: float) -> dict[str, Any]:
    return {
        "name": name,
        "modality": name.split(".", 1)[0],
        "score": score,
        "confidence": confidence,
        "evidence": [{"code": f"{name}.evidence", "message": "generated", "value": score}],
        "detector": f"{name.split('.', 1)[1]}@1.0.0",
        "window_ms": 4000,
    }


def build(
    *,
    i: int,
    assurance: str,
    seconds: int | None,
    failed: int,
    posture: str | None,
    new_device: bool,
    geo: bool,
    value: float | None,
    media: bool,
    raw: bool,
    signals: list[tuple[str, float, float]],
    kind: str = "password_reset",
) -> dict[str, Any]:
    req: dict[str, Any] = {
        "session": {
            "id": f"gen-{i}",
            "channel": "support_call",
            "kind": kind,
            "participant": "external",
            "consent": {"media_analysis": media, "raw_media_escalation": raw},
        },
        "identity": {"assurance": assurance, "failed_attempts": failed},
        "signals": [_signal(n, s, c) for n, s, c in signals],
    }
    if seconds is not None:
        req["identity"]["seconds_since_auth"] = seconds
    if posture is not None:
        req["device"] = {"posture": posture, "new_device": new_device, "geo_mismatch": geo}
    if value is not None:
        req["transaction"] = {"kind": kind, "value": value, "currency": "USD"}
    return req


def bulk(n: int, seed: int, kind: str = "password_reset") -> list[dict[str, Any]]:
    """``n`` varied requests from one seed (fast: no shrinking, no per-example overhead)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(0, 5))
        names = rng.choice(len(SIGNALS), size=k, replace=True)
        signals = []
        for j in names:
            # Scores near both ends and in the middle; confidence from useless to certain.
            score = float(np.clip(rng.beta(0.6, 0.6), 0.001, 0.999))
            conf = float(rng.choice([0.05, 0.15, 0.3, 0.6, 0.9, 1.0, rng.random()]))
            signals.append((SIGNALS[int(j)], round(score, 4), round(conf, 3)))
        out.append(
            build(
                i=i,
                assurance=ASSURANCE[int(rng.integers(0, 4))],
                seconds=None
                if rng.random() < 0.2
                else int(rng.choice([5, 60, 299, 300, 301, 4000])),
                failed=int(rng.choice([0, 0, 1, 2, 3, 4, 5, 9])),
                posture=None if rng.random() < 0.15 else POSTURE[int(rng.integers(0, 4))],
                new_device=bool(rng.random() < 0.4),
                geo=bool(rng.random() < 0.3),
                value=None if rng.random() < 0.15 else float(rng.choice(VALUES)),
                media=bool(rng.random() < 0.85),
                raw=bool(rng.random() < 0.5),
                signals=signals,
                kind=kind,
            )
        )
    return out


_signal_st = st.tuples(
    st.sampled_from(SIGNALS),
    st.floats(0.001, 0.999, allow_nan=False),
    st.floats(0.0, 1.0, allow_nan=False),
)


@st.composite
def requests(draw: st.DrawFn, kind: str = "password_reset") -> dict[str, Any]:
    return build(
        i=draw(st.integers(0, 10**6)),
        assurance=draw(st.sampled_from(ASSURANCE)),
        seconds=draw(st.none() | st.integers(0, 100_000)),
        failed=draw(st.integers(0, 12)),
        posture=draw(st.none() | st.sampled_from(POSTURE)),
        new_device=draw(st.booleans()),
        geo=draw(st.booleans()),
        value=draw(st.none() | st.sampled_from(VALUES) | st.floats(0, 5e6, allow_nan=False)),
        media=draw(st.booleans()),
        raw=draw(st.booleans()),
        signals=draw(st.lists(_signal_st, max_size=5)),
        kind=kind,
    )
