"""Shared fixtures: the repository's policy folder and request builders."""

from __future__ import annotations

import json
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
    """The DESIGN.md wire example (examples/password-reset.json), sections overridden."""
    base: dict[str, Any] = json.loads((ROOT / "examples" / "password-reset.json").read_text())
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
