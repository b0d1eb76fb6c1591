"""Random but plausible decision requests, for equivalence tests and throughput baselines."""

from __future__ import annotations

import random

from engine.core.models import DecisionRequest

SIGNALS = (
    "audio.synthetic_voice",
    "audio.replay",
    "audio.voice_consistency",
    "av.lipsync",
    "video.face_dynamics",
    "behavior.turn_taking",
    "session.anomaly",
)


def random_request(rng: random.Random) -> DecisionRequest:
    raw = {
        "session": {
            "id": "sim",
            "channel": rng.choice(["conference", "support_call"]),
            "kind": rng.choice(
                ["webinar", "executive_meeting", "password_reset", "payout_authorization"]
            ),
            "participant": rng.choice(["internal", "external"]),
            "consent": {
                "media_analysis": rng.random() < 0.8,
                "raw_media_escalation": rng.random() < 0.5,
            },
        },
        "identity": {
            "assurance": rng.choice(["none", "low", "substantial", "high"]),
            "seconds_since_auth": rng.choice([None, rng.randint(0, 5000)]),
            "failed_attempts": rng.choice([0, 0, 1, 2, 3, 5]),
        },
        "signals": [
            {
                "name": n,
                "modality": n.split(".")[0],
                "score": rng.random() ** rng.choice([0.3, 1, 3]),
                "confidence": rng.random(),
                "detector": f"{n.split('.')[1]}@1.0.0",
            }
            for n in rng.sample(SIGNALS, rng.randint(0, len(SIGNALS)))
        ],
    }
    if rng.random() < 0.7:
        raw["transaction"] = {
            "kind": rng.choice(["payout", "wire_transfer", "payment_instruction"]),
            "value": rng.choice([0, 500, 12_000, 60_000, 300_000, 3e6]),
        }
    if rng.random() < 0.8:
        raw["device"] = {
            "posture": rng.choice(["managed", "known", "unknown", "compromised"]),
            "new_device": rng.random() < 0.3,
            "geo_mismatch": rng.random() < 0.2,
        }
    return DecisionRequest.model_validate(raw)


def random_requests(n: int, seed: int | str = 0) -> list[DecisionRequest]:
    rng = random.Random(seed)
    return [random_request(rng) for _ in range(n)]
