"""Read a policy folder's ``pia.yaml`` and ``dataflow.yaml`` into models, never raising.

Every failure (missing file, broken YAML, schema error) becomes a ``GovernanceProblem`` so
``governance check`` can report every policy's problems in one run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from governance.dataflow import DataFlowManifest
from governance.errors import validation_messages
from governance.pia import PrivacyImpactAssessment
from governance.problems import GovernanceProblem

__all__ = ["DATAFLOW_FILE", "PIA_FILE", "load_governance", "load_model"]

PIA_FILE = "pia.yaml"
DATAFLOW_FILE = "dataflow.yaml"

M = TypeVar("M", bound=BaseModel)


def _read_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_model(
    path: Path, model: type[M], *, policy_id: str
) -> tuple[M | None, list[GovernanceProblem]]:
    """Load one YAML document into ``model``; problems instead of exceptions."""
    file = str(path)
    if not path.is_file():
        return None, [
            GovernanceProblem(policy_id, file, "manifest_missing", f"{path.name} is missing")
        ]
    try:
        data = _read_yaml(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [
            GovernanceProblem(policy_id, file, "manifest_invalid", f"{where}invalid YAML: {reason}")
        ]
    except OSError as exc:
        return None, [
            GovernanceProblem(policy_id, file, "manifest_invalid", f"cannot read: {exc.strerror}")
        ]
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
