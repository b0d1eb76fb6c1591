"""Read a policy folder's ``pia.yaml`` and ``dataflow.yaml`` into models, never raising.

Files are read through ``governance.files`` (size cap, no symlinks, alias and depth bounds).

Every failure (missing file, broken YAML, schema error) becomes a ``GovernanceProblem`` so
``governance check`` can report every policy's problems in one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from governance.dataflow import DataFlowManifest
from governance.errors import validation_messages
from governance.files import FileRefused, load_yaml
from governance.pia import PrivacyImpactAssessment
from governance.problems import GovernanceProblem

__all__ = ["DATAFLOW_FILE", "PIA_FILE", "load_governance", "load_model"]

PIA_FILE = "pia.yaml"
DATAFLOW_FILE = "dataflow.yaml"

M = TypeVar("M", bound=BaseModel)


def load_model(
    path: Path, model: type[M], *, policy_id: str
) -> tuple[M | None, list[GovernanceProblem]]:
    """Load one YAML document into ``model``; problems instead of exceptions."""
    file = str(path)
    try:
        # Bounded like every policy file: size cap, no symlinks, no alias bombs.
        data = load_yaml(path)
    except FileRefused as exc:
        code = "manifest_missing" if exc.kind == "missing" else "manifest_invalid"
        reason = f"{path.name} is missing" if exc.kind == "missing" else exc.reason
        return None, [GovernanceProblem(policy_id, file, code, reason)]
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        return None, [
            GovernanceProblem(
                policy_id, file, "manifest_invalid", f"expected a YAML mapping, got {got}"
            )
        ]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, [
            GovernanceProblem(policy_id, file, "manifest_invalid", f"{loc}: {msg}")
            for loc, msg in validation_messages(exc)
        ]


def load_governance(
    policy_dir: Path,
) -> tuple[PrivacyImpactAssessment | None, DataFlowManifest | None, list[GovernanceProblem]]:
    """Both governance documents of one policy folder, plus every loading problem."""
    policy_dir = Path(policy_dir)
    policy_id = policy_dir.name
    pia, pia_problems = load_model(
        policy_dir / PIA_FILE, PrivacyImpactAssessment, policy_id=policy_id
    )
    dataflow, df_problems = load_model(
        policy_dir / DATAFLOW_FILE, DataFlowManifest, policy_id=policy_id
    )
    return pia, dataflow, pia_problems + df_problems
