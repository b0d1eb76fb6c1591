"""Shared fixtures: the repository's policy folder and request builders."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"


@pytest.fixture
def policies_dir() -> Path:
    return POLICIES


@pytest.fixture
def policy_copy(tmp_path: Path):
    """Copy one bundled policy into a temporary repository to break it safely."""

    def copy(policy_id: str) -> Path:
        dest = tmp_path / "policies" / policy_id
        shutil.copytree(POLICIES / policy_id, dest)
        return dest

    return copy


def request_dict(**overrides: Any) -> dict[str, Any]:
    """A valid wire-format request (DESIGN.md), with top-level sections overridden."""
    base: dict[str, Any] = {
        "session": {
            "id": "call-7f3a",
            "channel": "support_call",
            "kind": "password_reset",
            "participant": "external",
            "consent": {"media_analysis": True, "raw_media_escalation": False},
        },
        "identity": {
            "assurance": "low",
            "method": "knowledge_based",
            "seconds_since_auth": 40,
            "failed_attempts": 1,
        },
        "transaction": {"kind": "password_reset", "value": 0, "currency": "USD"},
        "device": {"posture": "unknown", "new_device": True, "geo_mismatch": False},
        "signals": [
            {
                "name": "audio.synthetic_voice",
                "modality": "audio",
                "score": 0.87,
                "confidence": 0.8,
                "evidence": [
                    {
                        "code": "audio.vocoder_artifacts",
                        "message": "Voice shows vocoder artifacts",
                        "value": 0.91,
                    }
                ],
                "detector": "synthetic_voice@1.0.0",
                "window_ms": 4000,
            }
        ],
        "policy": "support-password-reset",
    }
    base.update(overrides)
    return base


def signal(name: str, score: float, confidence: float = 0.9) -> dict[str, Any]:
    return {
        "name": name,
        "modality": name.split(".", 1)[0],
        "score": score,
        "confidence": confidence,
        "detector": f"{name.split('.', 1)[1]}@1.0.0",
    }
