"""A Rego policy folder: ``policy.rego`` (and other ``*.rego``), ``data.json``, ``fusion.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.backends.rego.document import FUSION_FILE, FusionFile
from engine.backends.rego.embedded import RegoEvaluator, compiled_for
from engine.core.fusion import FusionConfig
from engine.core.manifest import PolicyManifest
from governance.folder import validate_file


def load_rego_backend(
    folder: Path, manifest: PolicyManifest, problems: list[str]
) -> tuple[FusionConfig, Any] | None:
    fusion_file = validate_file(FusionFile, folder / FUSION_FILE, problems)
    compiled = compiled_for(folder, manifest, problems)
    if fusion_file is None or compiled is None:
        return None
    evaluator: Any = RegoEvaluator(compiled, fusion_file.fusion, fusion_file.signal_phrases)
    return fusion_file.fusion, evaluator
