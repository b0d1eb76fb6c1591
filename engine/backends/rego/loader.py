"""A Rego policy folder: ``policy.rego`` (and other ``*.rego``), ``data.json``, ``fusion.yaml``.

Evaluated by regorus (``engine.backends.rego.regorus_eval``) or regopy
(``engine.backends.rego.embedded``): the manifest's ``rego_engine``, else ``default_engine``
(the service's ``LIVEGUARD_REGO_ENGINE``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from engine.backends.rego.document import FUSION_FILE, FusionFile
from engine.core.fusion import FusionConfig
from engine.core.manifest import PolicyManifest
from governance.folder import validate_file

RegoEngine = Literal["regorus", "regopy"]
REGO_ENGINES: tuple[RegoEngine, ...] = ("regorus", "regopy")


def load_rego_backend(
    folder: Path,
    manifest: PolicyManifest,
    problems: list[str],
    *,
    default_engine: RegoEngine = "regorus",
) -> tuple[FusionConfig, Any] | None:
    fusion_file = validate_file(FusionFile, folder / FUSION_FILE, problems)
    evaluator: Any
    if (manifest.rego_engine or default_engine) == "regorus":
        from engine.backends.rego.regorus_eval import RegorusEvaluator, compiled_regorus_for

        compiled = compiled_regorus_for(folder, manifest, problems)
        if fusion_file is None or compiled is None:
            return None
        evaluator = RegorusEvaluator(compiled, fusion_file.fusion, fusion_file.signal_phrases)
    else:
        from engine.backends.rego.embedded import RegoEvaluator, compiled_for

        compiled_rego = compiled_for(folder, manifest, problems)
        if fusion_file is None or compiled_rego is None:
            return None
        evaluator = RegoEvaluator(compiled_rego, fusion_file.fusion, fusion_file.signal_phrases)
    return fusion_file.fusion, evaluator
